"""1Password's official Connect SDK for Python (PyPI `onepasswordconnectsdk`) against the
in-repo Connect fake.

Run by onepassword_sdk.rs with OP_URL, a good token, a token for one vault only and a bad
token in the environment. `new_client(url, token)` takes the server URL as its first argument,
so nothing else is needed to point it at the fake. Every check raises on a wrong answer;
"contract ok" at the end tells the Rust test that all of them ran.
"""

import os
import tempfile

from onepasswordconnectsdk.client import new_client
from onepasswordconnectsdk.errors import (
    FailedToRetrieveItemException,
    FailedToRetrieveVaultException,
)
from onepasswordconnectsdk.models import Field, Item, ItemVault

URL = os.environ["OP_URL"]


def fails_with(status, message, call):
    try:
        call()
    except (FailedToRetrieveItemException, FailedToRetrieveVaultException) as e:
        assert f"Received {status}" in str(e) and message in str(e), str(e)
        return
    raise AssertionError(f"expected HTTP {status}")


op = new_client(URL, os.environ["OP_TOKEN"])
narrow = new_client(URL, os.environ["NARROW_TOKEN"])
bad = new_client(URL, os.environ["BAD_TOKEN"])

# Vaults: list, by name, by ID.
vaults = {v.name: v for v in op.get_vaults()}
assert sorted(vaults) == ["Personal", "Production"], sorted(vaults)
prod = op.get_vault_by_title("Production")
assert prod.id == vaults["Production"].id and len(prod.id) == 26, prod
assert op.get_vault(prod.id).name == "Production"
assert [v.name for v in narrow.get_vaults()] == ["Production"]

# Items: by title, by ID, through get_item with either, and the summaries of a list.
db = op.get_item_by_title("database", prod.id)
assert db.title == "database" and db.category == "LOGIN", db
fields = {f.label: f.value for f in db.fields}
assert fields == {"username": "admin", "password": "s3cr3t"}, fields
assert op.get_item_by_id(db.id, prod.id).title == "database"
assert op.get_item(db.id, "Production").id == db.id
assert op.get_item("database", "Production").id == db.id
listed = op.get_items(prod.id)
assert sorted(i.title for i in listed) == ["database", "tls"], [i.title for i in listed]
assert all(not i.to_dict().get("fields") for i in listed)
filtered = op.get_items(prod.id, 'title eq "tls"')
assert [i.title for i in filtered] == ["tls"], filtered
assert filtered[0].tags == ["web"], filtered[0].tags

# Files: list, metadata, content, download.
tls = filtered[0]
files = op.get_files(tls.id, prod.id)
assert [f.name for f in files] == ["cert.pem"], files
assert op.get_file_content(files[0].id, tls.id, prod.id) == b"-----BEGIN CERTIFICATE-----\n"
with tempfile.TemporaryDirectory() as d:
    op.download_file(files[0].id, tls.id, prod.id, d)
    with open(os.path.join(d, "cert.pem"), "rb") as f:
        assert f.read() == b"-----BEGIN CERTIFICATE-----\n"

# Create, update, delete.
created = op.create_item(
    prod.id,
    Item(
        vault=ItemVault(id=prod.id),
        title="api",
        category="API_CREDENTIAL",
        tags=["pushed"],
        fields=[Field(label="credential", value="k-1", type="CONCEALED")],
    ),
)
assert created.id and len(created.id) == 26 and created.version == 1, created
assert created.fields[0].id, created.fields
created.fields[0].value = "k-2"
updated = op.update_item(created.id, prod.id, created)
assert updated.version == 2 and updated.fields[0].value == "k-2", updated
assert op.get_item_by_title("api", prod.id).fields[0].value == "k-2"
op.delete_item(created.id, prod.id)
fails_with(404, "Item not found", lambda: op.get_item_by_id(created.id, prod.id))
assert op.get_items(prod.id, 'title eq "api"') == []

# Not found.
fails_with(404, "Vault not found", lambda: op.get_vault("zzzzzzzzzzzzzzzzzzzzzzzzzz"))
fails_with(404, "Item not found", lambda: op.get_item_by_id("zzzzzzzzzzzzzzzzzzzzzzzzzz", prod.id))
try:
    op.get_item_by_title("no-such-item", prod.id)
    raise AssertionError("a missing title must raise")
except FailedToRetrieveItemException as e:
    assert "Found 0 items" in str(e), str(e)

# A vault the token may not read; a bad token.
fails_with(403, "Access to vault denied", lambda: narrow.get_vault(vaults["Personal"].id))
fails_with(401, "Invalid token signature", lambda: bad.get_vaults())
fails_with(401, "Invalid token signature", lambda: bad.get_item_by_id(db.id, prod.id))

print("contract ok")
