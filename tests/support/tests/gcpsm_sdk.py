"""Google's official Python client for Secret Manager (PyPI `google-cloud-secret-manager`,
REST transport) and `google-auth` against the in-repo fake.

Run by gcpsm_sdk.rs with the fake's URL, a project the key may use and one it may not, two
service-account key files (the fake knows the first key; the second is signed by a key it has
never seen), and REQUESTS_CA_BUNDLE naming the fake's CA, which `requests` (and so
google-auth's AuthorizedSession under the REST transport) trusts. The client is pointed at
the fake with `client_options={"api_endpoint": URL}` and the key's `token_uri` names the
fake's `/token`. Every check raises on a wrong answer; "contract ok" at the end tells the
Rust test that all of them ran.
"""

import json
import os

import google.auth.transport.requests
from google.api_core import exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import secretmanager
from google.oauth2 import credentials as oauth_credentials
from google.oauth2 import service_account

URL = os.environ["GCPSM_URL"]
PROJECT = os.environ["GCPSM_PROJECT"]
OTHER_PROJECT = os.environ["GCPSM_OTHER_PROJECT"]
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def key(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def client(credentials):
    return secretmanager.SecretManagerServiceClient(
        credentials=credentials,
        transport="rest",
        client_options={"api_endpoint": URL},
    )


def fails_with(kind, call, text=None):
    try:
        call()
    except kind as e:
        if text is not None and text not in str(e):
            raise AssertionError(f"{kind.__name__} without {text!r}: {e}") from e
        return e
    raise AssertionError(f"expected {kind.__name__}")


good = key(os.environ["GCPSM_KEY"])
bad = key(os.environ["GCPSM_BAD_KEY"])

# 1. Service-account credentials as the client uses them by default: a self-signed JWT
#    (AIP-4111) sent as the Bearer token.
sa = service_account.Credentials.from_service_account_info(good)
sm = client(sa)
parent = f"projects/{PROJECT}"
created = sm.create_secret(
    parent=parent,
    secret_id="contract-db",
    secret={"replication": {"automatic": {}}, "labels": {"team": "a", "env": "prd"}},
)
assert created.name == f"{parent}/secrets/contract-db", created.name
assert dict(created.labels) == {"team": "a", "env": "prd"}, created.labels
v1 = sm.add_secret_version(parent=created.name, payload={"data": b"first"})
assert v1.name == f"{created.name}/versions/1", v1.name
assert v1.state == secretmanager.SecretVersion.State.ENABLED, v1.state
v2 = sm.add_secret_version(parent=created.name, payload={"data": b'{"user":"admin","password":"s3cr3t"}'})
assert v2.name.endswith("/versions/2"), v2.name

latest = sm.access_secret_version(name=f"{created.name}/versions/latest")
assert latest.name == v2.name, latest.name
assert latest.payload.data == b'{"user":"admin","password":"s3cr3t"}'
assert latest.payload.data_crc32c > 0
first = sm.access_secret_version(name=v1.name)
assert first.payload.data == b"first"

fetched = sm.get_secret(name=created.name)
assert fetched.labels["team"] == "a"
version = sm.get_secret_version(name=v1.name)
assert version.state == secretmanager.SecretVersion.State.ENABLED

sm.create_secret(
    parent=parent,
    secret_id="contract-api",
    secret={"replication": {"automatic": {}}, "labels": {"team": "b"}},
)
# The fake pages by one item: the pager follows nextPageToken.
names = [s.name for s in sm.list_secrets(request={"parent": parent})]
assert f"{parent}/secrets/contract-db" in names and f"{parent}/secrets/contract-api" in names, names
by_label = [s.name for s in sm.list_secrets(request={"parent": parent, "filter": "labels.team=a"})]
assert by_label == [f"{parent}/secrets/contract-db"], by_label
versions = [v.name for v in sm.list_secret_versions(request={"parent": created.name})]
assert versions == [v2.name, v1.name], versions

# 2. Documented failures.
fails_with(exceptions.NotFound, lambda: sm.access_secret_version(name=f"{parent}/secrets/nope/versions/latest"))
fails_with(exceptions.NotFound, lambda: sm.access_secret_version(name=f"{created.name}/versions/9"))
fails_with(exceptions.Conflict, lambda: sm.create_secret(parent=parent, secret_id="contract-db", secret={"replication": {"automatic": {}}}))
# Over REST, google-api-core maps by HTTP status: 403 is Forbidden, 409 Conflict.
fails_with(exceptions.Forbidden, lambda: sm.access_secret_version(name=f"projects/{OTHER_PROJECT}/secrets/x/versions/latest"), "secretmanager.versions.access")
fails_with(exceptions.BadRequest, lambda: sm.access_secret_version(name=f"{parent}/secrets/disabled/versions/latest"), "DISABLED")
bad_sm = client(service_account.Credentials.from_service_account_info(bad))
fails_with(exceptions.Unauthorized, lambda: bad_sm.get_secret(name=created.name))

# 3. The OAuth 2.0 JWT-bearer flow at the key's token_uri (what ESO's Go client does): a
#    signed assertion for the cloud-platform scope buys an access token.
scoped = service_account.Credentials.from_service_account_info(good, scopes=[SCOPE])
scoped.refresh(google.auth.transport.requests.Request())
assert scoped.token and scoped.expiry is not None
by_token = client(oauth_credentials.Credentials(scoped.token))
assert by_token.access_secret_version(name=v1.name).payload.data == b"first"
unknown = service_account.Credentials.from_service_account_info(bad, scopes=[SCOPE])
fails_with(auth_exceptions.RefreshError, lambda: unknown.refresh(google.auth.transport.requests.Request()), "invalid_grant")
# An unknown access token answers 401, upon which the session tries to refresh a token that
# cannot be refreshed.
fails_with(auth_exceptions.RefreshError, lambda: client(oauth_credentials.Credentials("ya29.made-up")).get_secret(name=created.name), "refresh")

# 4. Regional secrets: projects/p/locations/l/secrets/... on the same API.
regional_parent = f"{parent}/locations/europe-west1"
regional = sm.create_secret(parent=regional_parent, secret_id="regional-db", secret={"labels": {"team": "a"}})
sm.add_secret_version(parent=regional.name, payload={"data": b"eu"})
assert sm.access_secret_version(name=f"{regional.name}/versions/latest").payload.data == b"eu"
assert [s.name for s in sm.list_secrets(request={"parent": regional_parent})] == [regional.name]

# 5. Delete.
sm.delete_secret(name=f"{parent}/secrets/contract-api")
fails_with(exceptions.NotFound, lambda: sm.get_secret(name=f"{parent}/secrets/contract-api"))

# 6. Writes as ESO's push makes them: labels and annotations patched with the etag just
#    read (a stale one refused), versions listed by state, delete guarded by the etag.
pushed = sm.create_secret(
    parent=parent,
    secret_id="contract-push",
    secret={"replication": {"automatic": {}}, "labels": {"managed-by": "external-secrets"}},
)
sm.add_secret_version(parent=pushed.name, payload={"data": b"one"})
current = sm.get_secret(name=pushed.name)
assert current.etag, current
updated = sm.update_secret(
    secret={
        "name": pushed.name,
        "etag": current.etag,
        "labels": {"managed-by": "external-secrets", "team": "a"},
        "annotations": {"owner": "me"},
    },
    update_mask={"paths": ["labels", "annotations"]},
)
assert dict(updated.labels) == {"managed-by": "external-secrets", "team": "a"}, updated.labels
assert dict(updated.annotations) == {"owner": "me"}, updated.annotations
assert updated.etag != current.etag, (updated.etag, current.etag)
fails_with(
    exceptions.BadRequest,
    lambda: sm.update_secret(
        secret={"name": pushed.name, "etag": current.etag, "labels": {}},
        update_mask={"paths": ["labels"]},
    ),
    "etag",
)
disabled = f"{parent}/secrets/disabled"
enabled = [v.name for v in sm.list_secret_versions(request={"parent": disabled, "filter": "state:ENABLED"})]
assert enabled == [], enabled
off = [v.name for v in sm.list_secret_versions(request={"parent": disabled, "filter": "state:DISABLED"})]
assert off == [f"{disabled}/versions/1"], off
fails_with(exceptions.BadRequest, lambda: sm.delete_secret(request={"name": pushed.name, "etag": current.etag}), "etag")
sm.delete_secret(request={"name": pushed.name, "etag": updated.etag})
fails_with(exceptions.NotFound, lambda: sm.get_secret(name=pushed.name))

# 7. The GKE metadata server as google-auth reads it (GCE_METADATA_HOST names the fake's
#    plain-HTTP port): project and cluster attributes, the Metadata-Flavor header both ways.
from google.auth.compute_engine import _metadata  # noqa: E402

http = google.auth.transport.requests.Request()
assert _metadata.ping(http), "the metadata server answers with Metadata-Flavor: Google"
assert _metadata.get_project_id(http) == os.environ["GCPSM_CLUSTER_PROJECT"]
assert _metadata.get(http, "instance/attributes/cluster-name") == "my-cluster"
assert _metadata.get(http, "instance/attributes/cluster-location") == "us-central1"
fails_with(auth_exceptions.TransportError, lambda: _metadata.get(http, "instance/attributes/nothing"))

# 8. Workload Identity Federation as google-auth does it (an `external_account` file whose
#    subject token is a file): STS at the fake's /v1/token for the pool provider, then
#    generateAccessToken for the service account to impersonate; a token for another
#    audience refused by STS.
from google.auth import identity_pool  # noqa: E402

def federated(subject_file, impersonate):
    info = {
        "type": "external_account",
        "audience": os.environ["GCPSM_POOL_PROVIDER"],
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": f"{URL}/v1/token",
        "credential_source": {"file": subject_file},
    }
    if impersonate:
        info["service_account_impersonation_url"] = (
            f"{URL}/v1/projects/-/serviceAccounts/{os.environ['GCPSM_IMPERSONATED']}:generateAccessToken"
        )
    return identity_pool.Credentials.from_info(info, scopes=[SCOPE])

direct = federated(os.environ["GCPSM_SUBJECT_TOKEN"], impersonate=False)
direct.refresh(http)
assert direct.token and direct.token.startswith("ya29."), direct.token
via = federated(os.environ["GCPSM_SUBJECT_TOKEN"], impersonate=True)
via.refresh(http)
assert via.token and via.expiry is not None
assert client(via).access_secret_version(name=v1.name).payload.data == b"first"
fails_with(auth_exceptions.OAuthError, lambda: federated(os.environ["GCPSM_WRONG_SUBJECT_TOKEN"], False).refresh(http), "audience")

print("contract ok")
