"""``securecustomer demo``: the library's story in one run, on a local key file."""

from __future__ import annotations

import tempfile
from pathlib import Path

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import DecryptionError, KeyDestroyedError
from securecustomer.keys import FileKeyStore

__all__ = ["run_demo"]


def _step(title: str) -> None:
    print(f"\n== {title}")


def _show(token: bytes) -> str:
    head, nonce, body = token[:6].hex(), token[6:18].hex(), token[18:].hex()
    return f"{head} | {nonce} | {body}  ({len(token)} bytes)"


def run_demo(directory: str | None = None) -> int:
    """Print the demo; returns 0 when every step behaved as the library promises."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="securecustomer-demo-") as tmp:
            return _run(Path(tmp))
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return _run(path)


def _run(directory: Path) -> int:
    _step("1. A master key in a local key file (mode 0600) and a key store next to it")
    key_file = directory / "master.key"
    provider = (
        LocalKeyProvider.from_file(key_file)
        if key_file.exists()
        else LocalKeyProvider.create_key_file(key_file)
    )
    keyring = Keyring(provider, FileKeyStore(directory / "keys.json")).load()
    print(f"key file:  {key_file} (mode {key_file.stat().st_mode & 0o777:04o})")
    print(f"keyring:   {keyring!r}")

    _step("2. Encrypt a customer's e-mail address, bound to its table, column and row")
    email = keyring.cipher("customers.email")
    row_7 = Context("customers", "email", row=7)
    token = email.encrypt("ada@example.com", context=row_7)
    print("plaintext: 'ada@example.com' (15 bytes)")
    print(f"token:     {_show(token)}")
    print("           header(version, algorithm+type, key id) | nonce | ciphertext+tag")
    print(f"decrypted: {email.decrypt(token, context=row_7)!r}")

    _step("3. The same token pasted into another row does not decrypt")
    try:
        email.decrypt(token, context=Context("customers", "email", row=8))
    except DecryptionError as exc:
        print(f"row 8:     {type(exc).__name__}: {exc}")
    else:  # pragma: no cover - would be a security bug
        print("row 8:     decrypted - this must never happen")
        return 1

    _step("4. Rotate the data key: new writes use version 2, old values still decrypt")
    status = keyring.rotate("customers.email")
    new_token = email.encrypt("ada@new.example", context=row_7)
    print(f"new key:   id {status.key_id:#010x}, version {status.version}")
    print(f"old token key id {token[2:6].hex()}, new token key id {new_token[2:6].hex()}")
    print(f"old value: {email.decrypt(token, context=row_7)!r}")
    print(f"new value: {email.decrypt(new_token, context=row_7)!r}")

    _step("5. Crypto-shredding: destroy a customer's own key scope")
    erased = {r.scope for r in keyring.store.all_data_keys() if r.scope.startswith("subject:")}
    scope = f"subject:{7 + len(erased)}"  # a customer not erased by an earlier run in --dir
    subject = keyring.cipher(scope)
    notes = Context("customers", "notes", row=7)
    secret = subject.encrypt({"allergies": ["penicillin"]}, context=notes)
    print(f"{scope} value: {subject.decrypt(secret, context=notes)!r}")
    destroyed = keyring.destroy(scope)
    print(f"destroyed keys:  {', '.join(f'{k:#010x}' for k in destroyed)}")
    try:
        subject.decrypt(secret, context=notes)
    except KeyDestroyedError as exc:
        print(f"after erasure:   {type(exc).__name__}: {exc}")
    else:  # pragma: no cover - would be a security bug
        print("after erasure:   decrypted - this must never happen")
        return 1

    _step("6. Key status (no secret in it)")
    for row in keyring.status():
        ident = f"{row.key_id:#010x}" if row.key_id is not None else "-"
        print(
            f"{row.kind:<5} {row.scope or '(root)':<16} v{row.version} {ident:<11} "
            f"{row.state.value:<13} enc={row.encryptions} dec={row.decryptions}"
        )
    print("\nDemo finished: every step behaved as expected.")
    return 0
