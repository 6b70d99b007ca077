"""Worker processes over a key store, for tests that race two processes (spawned)."""

from __future__ import annotations

import base64
import multiprocessing
import time
from typing import Any

import pytest

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import KeyDestroyedError, KeyStateError
from securecustomer.keys import FileKeyStore, KeyState, KeyStore

CTX = Context("customers", "email")
ROUNDS = 12
SPAWN = multiprocessing.get_context("spawn")


def open_store(kind: str, where: str) -> KeyStore:
    """A `FileKeyStore` at path *where*, or a `SqlKeyStore` on database URL *where*."""
    if kind == "file":
        return FileKeyStore(where)
    import sqlalchemy as sa

    from securecustomer.sqlalchemy import SqlKeyStore

    return SqlKeyStore(sa.create_engine(where))


def rotate_in_child(key_file: str, kind: str, where: str, scope: str, out: Any) -> None:
    """Rotate *scope* and encrypt under each new key until it is destroyed; put the
    tokens (base64) on the queue *out*."""
    keyring = Keyring(LocalKeyProvider.from_file(key_file), open_store(kind, where)).load()
    tokens: list[str] = []
    try:
        for _ in range(2_000):
            keyring.rotate(scope)
            token = keyring.cipher(scope).encrypt("v", context=CTX)
            tokens.append(base64.b64encode(token).decode())
    except KeyDestroyedError:
        pass
    except KeyStateError as exc:  # destroyed between the rotation and the encryption
        if "was destroyed" not in str(exc):
            raise
    finally:  # on any other error too, so that the test sees what was encrypted
        out.put(tokens)


def rotate_until_destroyed(keyring: Keyring, scope: str, tokens: list[bytes]) -> None:
    """Rotate *scope* and encrypt under each new key until the keyring refuses."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            keyring.rotate(scope)
            tokens.append(keyring.cipher(scope).encrypt("v", context=CTX))
        except KeyDestroyedError:
            return
        except KeyStateError as exc:  # destroyed between the rotation and the encryption
            if "was destroyed" not in str(exc):
                raise
            return


def assert_shredded(keyring: Keyring, scope: str, tokens: list[bytes]) -> None:
    """No key of *scope* is left, and no token of it decrypts in a fresh keyring."""
    assert {KeyState.DESTROYED} == {r.state for r in keyring.store.data_keys(scope)}
    fresh = Keyring(keyring.provider, keyring.store).load()
    for token in tokens:
        with pytest.raises(KeyDestroyedError):
            fresh.cipher(scope).decrypt(token, context=CTX)


def race_processes(keyring: Keyring, key_file: str, kind: str, where: str) -> None:
    """Another process rotates each scope while this one destroys it (several rounds)."""
    for n in range(ROUNDS // 3):
        scope = f"subject:p{n}"
        keyring.cipher(scope).encrypt("v", context=CTX)
        out = SPAWN.Queue()
        child = SPAWN.Process(target=rotate_in_child, args=(key_file, kind, where, scope, out))
        child.start()
        deadline = time.monotonic() + 60
        while len(keyring.store.data_keys(scope)) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        keyring.destroy(scope)
        tokens = [base64.b64decode(t) for t in out.get(timeout=60)]
        child.join(timeout=60)
        assert 0 == child.exitcode
        assert tokens
        assert_shredded(keyring, scope, tokens)
