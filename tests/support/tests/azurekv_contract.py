"""The fake Azure (tests/support/src/fakes/azurekv.rs) against Microsoft's official SDKs,
azure-keyvault-secrets, azure-keyvault-certificates, azure-keyvault-keys and azure-identity:
ordinary calls must get the documented answers.

Usage: azurekv_contract.py VAULT_URL AUTHORITY TENANT CA_PEM_FILE CLIENT_PEM_FILE
The CA is trusted through REQUESTS_CA_BUNDLE (set by the Rust test); the vault URL is
https://127.0.0.1:PORT, so the SDK's challenge-resource check (which wants the vault host to
end in .vault.azure.net) is switched off with verify_challenge_resource=False.
"""

import datetime
import sys

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.certificates import ApiVersion as CertificatesApiVersion
from azure.keyvault.certificates import CertificateClient, CertificateContentType, CertificatePolicy
from azure.keyvault.keys import ApiVersion as KeysApiVersion
from azure.keyvault.keys import JsonWebKey, KeyClient
from azure.keyvault.secrets import ApiVersion, SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

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

# certificates: import a PKCS#12 and a PEM (the Import Certificate API), read, delete
certs = CertificateClient(
    vault_url, good, api_version=CertificatesApiVersion.V7_4, verify_challenge_resource=False
)
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")])
now = datetime.datetime.now(datetime.timezone.utc)
leaf = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(rsa_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now)
    .not_valid_after(now + datetime.timedelta(days=30))
    .sign(rsa_key, hashes.SHA256())
)
leaf_der = leaf.public_bytes(serialization.Encoding.DER)
pfx = pkcs12.serialize_key_and_certificates(
    b"tls", rsa_key, leaf, None, serialization.NoEncryption()
)
imported = certs.import_certificate("tls", pfx, tags={"managed-by": "external-secrets"})
assert imported.cer == leaf_der, "the imported certificate is the PKCS#12's"
assert imported.properties.tags == {"managed-by": "external-secrets"}, imported.properties.tags
got = certs.get_certificate("tls")
assert got.cer == leaf_der and got.properties.version == imported.properties.version
pkcs8 = rsa_key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
pem = leaf.public_bytes(serialization.Encoding.PEM) + pkcs8
as_pem = certs.import_certificate(
    "tls-pem", pem, policy=CertificatePolicy(content_type=CertificateContentType.pem)
)
assert as_pem.cer == leaf_der
# Key Vault wants the PEM's key as PKCS#8: a PKCS#1 key is refused.
pkcs1 = rsa_key.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.NoEncryption(),
)
try:
    certs.import_certificate(
        "tls-bad",
        leaf.public_bytes(serialization.Encoding.PEM) + pkcs1,
        policy=CertificatePolicy(content_type=CertificateContentType.pem),
    )
    raise AssertionError("a PEM with a PKCS#1 key was imported")
except HttpResponseError as e:
    assert e.status_code == 400 and e.error.code == "BadParameter", e
gone = certs.begin_delete_certificate("tls").result()
assert gone.recovery_id.endswith("/deletedcertificates/tls"), gone.recovery_id
try:
    certs.get_certificate("tls")
    raise AssertionError("a deleted certificate was found")
except ResourceNotFoundError as e:
    assert "CertificateNotFound" in str(e), e

# keys: import a private RSA and EC JSON Web Key (the Import Key API), read, delete
keys = KeyClient(vault_url, good, api_version=KeysApiVersion.V7_4, verify_challenge_resource=False)
n = rsa_key.private_numbers()


def raw(i):
    return i.to_bytes((i.bit_length() + 7) // 8, "big")


jwk = JsonWebKey(
    kty="RSA", n=raw(n.public_numbers.n), e=raw(n.public_numbers.e), d=raw(n.d),
    p=raw(n.p), q=raw(n.q), dp=raw(n.dmp1), dq=raw(n.dmq1), qi=raw(n.iqmp),
)
signing = keys.import_key("signing", jwk, tags={"managed-by": "external-secrets"})
assert signing.key.n == raw(n.public_numbers.n) and signing.key.kty == "RSA"
assert signing.key.d is None, "the answer carries only the public key"
assert keys.get_key("signing").properties.tags == {"managed-by": "external-secrets"}
ec_key = ec.generate_private_key(ec.SECP256R1()).private_numbers()
ec_jwk = JsonWebKey(
    kty="EC", crv="P-256", x=ec_key.public_numbers.x.to_bytes(32, "big"),
    y=ec_key.public_numbers.y.to_bytes(32, "big"), d=ec_key.private_value.to_bytes(32, "big"),
)
assert keys.import_key("ec-signing", ec_jwk).key.crv == "P-256"
try:
    keys.import_key("public-only", JsonWebKey(kty="RSA", n=jwk.n, e=jwk.e))
    raise AssertionError("a public key was imported")
except HttpResponseError as e:
    assert e.status_code == 400 and e.error.code == "BadParameter", e
deleted_key = keys.begin_delete_key("signing").result()
assert deleted_key.recovery_id.endswith("/deletedkeys/signing"), deleted_key.recovery_id
try:
    keys.get_key("signing")
    raise AssertionError("a deleted key was found")
except ResourceNotFoundError as e:
    assert "KeyNotFound" in str(e), e

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
