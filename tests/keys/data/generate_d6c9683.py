"""Generate keystore_d6c9683.* with the code of commit d6c9683 (see README.md)."""

import base64
import json
from pathlib import Path

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.keys import FileKeyStore

out = Path(".")
LocalKeyProvider.create_key_file(out / "keystore_d6c9683.master.key")
keyring = Keyring(
    LocalKeyProvider.from_file(out / "keystore_d6c9683.master.key"),
    FileKeyStore(out / "keystore_d6c9683.json"),
).load()
ctx = Context("customers", "email")
tokens = {}
for scope in ("customers.email", "subject:1", "subject:2"):
    tokens[scope] = [keyring.cipher(scope).encrypt(f"{scope} v1", context=ctx)]
keyring.rotate("customers.email")
tokens["customers.email"].append(
    keyring.cipher("customers.email").encrypt("customers.email v2", context=ctx)
)
keyring.rotate_root()
keyring.destroy("subject:2")
(out / "keystore_d6c9683.tokens.json").write_text(
    json.dumps(
        {s: [base64.b64encode(t).decode() for t in ts] for s, ts in tokens.items()}, indent=1
    )
    + "\n"
)
