"""The fake Azure (tests/support/src/fakes/azurekv.rs) against Microsoft's official SDKs,
azure-keyvault-secrets and azure-identity: ordinary calls must get the documented answers.

Usage: azurekv_contract.py VAULT_URL AUTHORITY TENANT CA_PEM_FILE CLIENT_PEM_FILE
The CA is trusted through REQUESTS_CA_BUNDLE (set by the Rust test); the vault URL is
https://127.0.0.1:PORT, so the SDK's challenge-resource check (which wants the vault host to
end in .vault.azure.net) is switched off with verify_challenge_resource=False.
"""

import sys

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.secrets import ApiVersion, SecretClient

vault_url, authority, tenant, _ca, client_pem = sys.argv[1:6]


def client(credential):
    return SecretClient(
        vault_url,
        credential,
        api_version=ApiVersion.V7_4,
        verify_challenge_resource=False,
    )


good = ClientSecretCredential(
    tenant, "app-rw", "s3cret", authority=authority, disable_instance_discovery=True
)
kv = client(good)

# set / get / versions / tags
first = kv.set_secret("db-password", "hunter2", tags={"team": "a"})
assert first.value == "hunter2", first.value
assert first.properties.tags == {"team": "a"}, first.properties.tags
second = kv.set_secret("db-password", "hunter3", tags={"team": "a", "env": "prod"})
assert second.properties.version != first.properties.version
assert kv.get_secret("db-password").value == "hunter3"
assert kv.get_secret("db-password", first.properties.version).value == "hunter2"
versions = sorted(p.version for p in kv.list_properties_of_secret_versions("db-password"))
assert versions == sorted([first.properties.version, second.properties.version]), versions
assert kv.get_secret("db-password").properties.tags == {"team": "a", "env": "prod"}

# list with paging: 30 secrets over pages of 25 (nextLink)
for i in range(30):
    kv.set_secret(f"bulk-{i:02}", str(i))
names = [p.name for p in kv.list_properties_of_secrets(max_page_size=25)]
assert len(names) == 31, names
assert "bulk-29" in names and "db-password" in names

# not found
try:
    kv.get_secret("nope")
    raise AssertionError("a missing secret was found")
except ResourceNotFoundError as e:
    assert "SecretNotFound" in str(e), e

# delete (soft delete, polled until deleted), then purge
poller = kv.begin_delete_secret("bulk-00")
deleted = poller.result()
assert deleted.name == "bulk-00", deleted.name
assert deleted.recovery_id.endswith("/deletedsecrets/bulk-00"), deleted.recovery_id
kv.purge_deleted_secret("bulk-00")
try:
    kv.get_secret("bulk-00")
    raise AssertionError("a deleted secret was found")
except ResourceNotFoundError:
    pass

# permission denied: a valid token without access
denied = client(
    ClientSecretCredential(
        tenant, "app-none", "other", authority=authority, disable_instance_discovery=True
    )
)
try:
    denied.get_secret("db-password")
    raise AssertionError("a principal without access read a secret")
except HttpResponseError as e:
    assert e.status_code == 403, e.status_code
    assert e.error.code == "Forbidden", e.error.code

# a wrong client secret: Entra ID's AADSTS error
bad = client(
    ClientSecretCredential(
        tenant, "app-rw", "wrong", authority=authority, disable_instance_discovery=True
    )
)
try:
    bad.get_secret("db-password")
    raise AssertionError("a wrong client secret got a token")
except ClientAuthenticationError as e:
    assert "AADSTS7000215" in str(e), e

# a certificate credential: a JWT client assertion signed with the certificate's key
cert = client(
    CertificateCredential(
        tenant, "app-cert", certificate_path=client_pem, authority=authority,
        disable_instance_discovery=True,
    )
)
assert cert.get_secret("db-password").value == "hunter3"

print("ok")
