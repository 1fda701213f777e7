"""Akeyless's official Python SDK (PyPI `akeyless`) against the in-repo fake.

Run by akeyless_sdk.rs with AKEYLESS_URL, an access id and key, a Kubernetes auth access
id, config name and JWT in the environment. The SDK's own `akeyless.Configuration(host=...)`
points it at the fake; once at the bare URL (the SaaS layout) and once below `/v2` (a
Gateway's layout). Every check raises on a wrong answer; "contract ok" at the end tells the
Rust test that all of them ran.
"""

import base64
import json
import os

import akeyless
from akeyless.rest import ApiException

URL = os.environ["AKEYLESS_URL"]
ACCESS_ID = os.environ["ACCESS_ID"]
ACCESS_KEY = os.environ["ACCESS_KEY"]


def api(host):
    return akeyless.V2Api(akeyless.ApiClient(akeyless.Configuration(host=host)))


def fails_with(status, call):
    try:
        call()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        body = json.loads(e.body)
        assert list(body) == ["error"] and body["error"], body
        return body["error"]
    raise AssertionError(f"expected HTTP {status}")


for host in (URL, URL + "/v2"):
    v2 = api(host)

    # Access-key auth; a wrong key is 401.
    out = v2.auth(akeyless.Auth(access_id=ACCESS_ID, access_key=ACCESS_KEY))
    token = out.token
    assert token and token.startswith("t-"), out
    fails_with(401, lambda: v2.auth(akeyless.Auth(access_id=ACCESS_ID, access_key="wrong")))

    # Kubernetes auth: the ServiceAccount JWT base64-encoded.
    jwt = base64.b64encode(os.environ["K8S_JWT"].encode()).decode()
    k8s = v2.auth(akeyless.Auth(
        access_id=os.environ["K8S_ACCESS_ID"], access_type="k8s",
        k8s_auth_config_name=os.environ["K8S_CONF"], k8s_service_account_token=jwt))
    assert k8s.token, k8s
    fails_with(401, lambda: v2.auth(akeyless.Auth(
        access_id=os.environ["K8S_ACCESS_ID"], access_type="k8s",
        k8s_auth_config_name="other-conf", k8s_service_account_token=jwt)))

    name = "/contract/db" if host == URL else "/contract/gw-db"
    # Create, read, describe.
    created = v2.create_secret(akeyless.CreateSecret(
        name=name, value='{"user":"admin","password":"pw-1"}', tags=["team-a"], token=token))
    assert created.name == name, created
    fails_with(409, lambda: v2.create_secret(akeyless.CreateSecret(name=name, value="x", token=token)))
    got = v2.get_secret_value(akeyless.GetSecretValue(names=[name], token=token))
    assert json.loads(got[name]) == {"user": "admin", "password": "pw-1"}
    item = v2.describe_item(akeyless.DescribeItem(name=name, token=token))
    assert item.item_name == name and item.item_type == "STATIC_SECRET", item
    assert item.item_tags == ["team-a"] and item.last_version == 1, item

    # Update makes a new version; older versions stay readable.
    updated = v2.update_secret_val(akeyless.UpdateSecretVal(name=name, value="v2-text", token=token))
    assert updated.name == name, updated
    got = v2.get_secret_value(akeyless.GetSecretValue(names=[name], token=token))
    assert got[name] == "v2-text", "latest"
    got = v2.get_secret_value(akeyless.GetSecretValue(names=[name], version=1, token=token))
    assert json.loads(got[name])["user"] == "admin", "version 1"
    assert v2.describe_item(akeyless.DescribeItem(name=name, token=token)).last_version == 2

    # Dynamic, rotated and certificate reads of the items the test seeded.
    dynamic = v2.get_dynamic_secret_value(akeyless.GetDynamicSecretValue(name="/seed/dynamic", token=token))
    assert dynamic == {"user": "tmp-user", "password": "tmp-pw", "ttl_in_minutes": "60"}, dynamic
    rotated = v2.get_rotated_secret_value(akeyless.GetRotatedSecretValue(names="/seed/rotated", token=token))
    assert rotated == {"value": {"username": "svc", "password": "rot-pw"}}, rotated
    cert = v2.get_certificate_value(akeyless.GetCertificateValue(name="/seed/cert", token=token))
    assert cert.certificate_pem.startswith("-----BEGIN CERTIFICATE-----"), "certificate"
    assert cert.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----"), "key"

    # List with a filter, types and a tag, page by page.
    seen, page = [], None
    while True:
        listed = v2.list_items(akeyless.ListItems(
            filter="/seed/", type=["static-secret", "dynamic-secret", "rotated-secret"],
            pagination_token=page, token=token))
        seen += [i.item_name for i in listed.items]
        if not listed.next_page:
            break
        page = listed.next_page
    assert seen == ["/seed/dynamic", "/seed/rotated", "/seed/static-a", "/seed/static-b"], seen
    tagged = v2.list_items(akeyless.ListItems(tag="team-a", token=token))
    assert name in [i.item_name for i in tagged.items], "tag filter"

    # Delete; afterwards describe, read, update and delete are 404.
    deleted = v2.delete_item(akeyless.DeleteItem(name=name, token=token))
    assert deleted.item_name == name, deleted
    fails_with(404, lambda: v2.describe_item(akeyless.DescribeItem(name=name, token=token)))
    fails_with(404, lambda: v2.get_secret_value(akeyless.GetSecretValue(names=[name], token=token)))
    fails_with(404, lambda: v2.update_secret_val(akeyless.UpdateSecretVal(name=name, value="x", token=token)))
    fails_with(404, lambda: v2.delete_item(akeyless.DeleteItem(name=name, token=token)))

    # A bad token and no token at all are 401 on every operation.
    fails_with(401, lambda: v2.describe_item(akeyless.DescribeItem(name="/seed/static-a", token="t-forged")))
    fails_with(401, lambda: v2.get_secret_value(akeyless.GetSecretValue(names=["/seed/static-a"])))
    fails_with(401, lambda: v2.list_items(akeyless.ListItems(token="t-forged")))

print("contract ok")
