"""Doppler's official Python SDK (PyPI `doppler-sdk`) against the in-repo fake.

Run by doppler_sdk.rs with DOPPLER_URL, a service token, a personal token and a bad
token in the environment. The SDK's own base-URL setter (`DopplerSDK.set_base_url`)
points it at the fake. Every check raises on a wrong answer; "contract ok" at the end
tells the Rust test that all of them ran.
"""

import os

import requests
from dopplersdk import DopplerSDK
from dopplersdk.models.SecretsUpdateRequest import (
    SecretsUpdateRequest,
    SecretsUpdateRequestChangeRequests,
)

URL = os.environ["DOPPLER_URL"]


def sdk(token):
    client = DopplerSDK()
    client.set_base_url(URL)
    client.set_access_token(token)
    return client


def fails_with(status, call):
    try:
        call()
    except Exception as e:  # the SDK raises one class per status
        text = f"{type(e).__name__} {e}"
        assert str(status) in text or {401: "Unauthorized", 404: "NotFound", 403: "Forbidden"}[status] in text, text
        return
    raise AssertionError(f"expected HTTP {status}")


service = sdk(os.environ["SERVICE_TOKEN"])
personal = sdk(os.environ["PERSONAL_TOKEN"])
bad = sdk(os.environ["BAD_TOKEN"])

# Retrieve one secret: raw and computed values.
got = service.secrets.get(name="DB_PASSWORD", project="backend", config="prd")
assert got.name == "DB_PASSWORD", vars(got)
value = got.value if isinstance(got.value, dict) else vars(got.value)
assert value["raw"] == "s3cr3t" and value["computed"] == "s3cr3t", value

# List: every secret with raw and computed.
listed = service.secrets.list(project="backend", config="prd")
names = sorted(listed.secrets.keys() if isinstance(listed.secrets, dict) else vars(listed.secrets).keys())
assert names == ["API_KEY", "DB_PASSWORD"], names

# Download as JSON, with Doppler's own keys, and with a name transformer. The SDK's
# generated DownloadResponse model keeps only the keys of the API's example (STRIPE, ...),
# so the JSON downloads go through the SDK's own transport and headers before that model.
def download(client, **query):
    headers = {}
    client.secrets._add_required_headers(headers)
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return client.secrets._http.get(URL + "/v3/configs/config/secrets/download?" + params, headers, True)


plain = download(service, project="backend", config="prd")
assert service.secrets.download(project="backend", config="prd") is not None
assert plain["DB_PASSWORD"] == "s3cr3t" and plain["DOPPLER_CONFIG"] == "prd", plain
camel = download(service, project="backend", config="prd", name_transformer="camel")
assert camel["dbPassword"] == "s3cr3t" and camel["apiKey"] == "k-123", camel
snake = download(service, project="backend", config="prd", name_transformer="lower-snake")
assert snake["db_password"] == "s3cr3t", snake
kebab = service.secrets.download(project="backend", config="prd", format="docker", name_transformer="lower-kebab")
assert "db-password=s3cr3t" in kebab.text.splitlines(), kebab.text
env = service.secrets.download(project="backend", config="prd", format="env")
assert 'DB_PASSWORD="s3cr3t"' in env.text.splitlines(), env.text

# The download's ETag: unchanged content answers 304 with no body (the SDK has no
# If-None-Match parameter, so this uses the same request by hand).
auth = {"Authorization": "Bearer " + os.environ["SERVICE_TOKEN"]}
download_url = URL + "/v3/configs/config/secrets/download?project=backend&config=prd&format=json"
first = requests.get(download_url, headers=auth)
etag = first.headers["ETag"]
again = requests.get(download_url, headers={**auth, "If-None-Match": etag})
assert again.status_code == 304 and again.content == b"", (again.status_code, again.content)

# Update and delete, then read back.
service.secrets.update(
    SecretsUpdateRequest(project="backend", config="prd", secrets={"NEW_ONE": "fresh"})
)
assert service.secrets.get(name="NEW_ONE", project="backend", config="prd").name == "NEW_ONE"
changed = requests.get(download_url, headers={**auth, "If-None-Match": etag})
assert changed.status_code == 200 and changed.json()["NEW_ONE"] == "fresh", changed.text
service.secrets.update(
    SecretsUpdateRequest(
        project="backend",
        config="prd",
        change_requests=[
            SecretsUpdateRequestChangeRequests(
                value=None, originalName="NEW_ONE", name="NEW_ONE", shouldDelete=True
            )
        ],
    )
)
fails_with(404, lambda: service.secrets.get(name="NEW_ONE", project="backend", config="prd"))
# "Secrets: Delete": DELETE /v3/configs/config/secret, then 404 for what is gone.
service.secrets.update(
    SecretsUpdateRequest(project="backend", config="prd", secrets={"TEMP_ONE": "t"})
)
service.secrets.delete(name="TEMP_ONE", project="backend", config="prd")
fails_with(404, lambda: service.secrets.get(name="TEMP_ONE", project="backend", config="prd"))
fails_with(404, lambda: service.secrets.delete(name="TEMP_ONE", project="backend", config="prd"))

# Not found, another config, a bad token.
fails_with(404, lambda: service.secrets.get(name="MISSING", project="backend", config="prd"))
fails_with(403, lambda: service.secrets.get(name="DB_PASSWORD", project="backend", config="dev"))
fails_with(401, lambda: bad.secrets.get(name="DB_PASSWORD", project="backend", config="prd"))
fails_with(401, lambda: bad.projects.list())

# A personal token reads any config it names; projects and me.
assert download(personal, project="backend", config="dev")["DB_PASSWORD"] == "dev-pw"
projects = personal.projects.list()
slugs = sorted(p["slug"] if isinstance(p, dict) else p.slug for p in projects.projects)
assert slugs == ["backend"], slugs
me = service.auth.me()
assert (me["type"] if isinstance(me, dict) else me.type_) in ("service_token",), vars(me) if not isinstance(me, dict) else me

print("contract ok")
