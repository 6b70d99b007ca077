"""FileKeyStore after a crash: no stray copy of the wrapped keys survives a killed writer.

A writer builds the next key-store file next to the old one and renames it into place;
killed between the two, it leaves that file behind, holding every wrapped key. Such a
leftover is scrubbed when the store is next used, and before and after every write, so
that `destroy()` leaves no copy of the destroyed keys in the store's directory.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
from records import record

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.exceptions import KeyDestroyedError
from securecustomer.keys import FileKeyStore, KeyState

FORK = multiprocessing.get_context("fork")
TRIALS = 30
CTX = Context("customers", "email")
EXPECTED = {"keys.json", "keys.json.lock"}


def write_forever(path: str, first: int) -> None:
    """Add data keys one after another until killed (the child's whole life)."""
    store = FileKeyStore(path)
    n = first
    while True:
        store.add_data_key(record(n, scope=f"subject:{n}"))
        n += 1


def holders(directory: Path, secret: bytes) -> list[str]:
    """The files in *directory* holding *secret*, raw or base64-encoded."""
    encoded = base64.b64encode(secret)
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.is_file() and (secret in p.read_bytes() or encoded in p.read_bytes())
    )


def leave_a_crashed_write(path: Path) -> list[Path]:
    """What a writer killed between writing and renaming leaves: full copies of the store.

    One under the store's own temporary name, one under the random name older versions
    used (``.keys.json.XXXXXXXX.tmp``).
    """
    copies = [path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.k3x9q2ab.tmp")]
    for copy in copies:
        copy.write_bytes(path.read_bytes())
    return copies


class TestLeftovers:
    """A leftover copy is gone once the store has been used, and destroy scrubs it."""

    def test_opening_scrubs(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        FileKeyStore(path).add_data_key(record(1))
        leave_a_crashed_write(path)
        assert [record(1)] == FileKeyStore(path).data_keys("s")  # a read is enough
        assert EXPECTED == {p.name for p in tmp_path.iterdir()}

    def test_writing_scrubs(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        store = FileKeyStore(path)
        store.add_data_key(record(1))  # this instance has been used before the crash
        leave_a_crashed_write(path)
        store.add_data_key(record(2, scope="t"))
        assert EXPECTED == {p.name for p in tmp_path.iterdir()}

    def test_destroy_leaves_no_copy(self, tmp_path: Path) -> None:
        key_file = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(key_file)
        (tmp_path / "store").mkdir()
        path = tmp_path / "store" / "keys.json"
        keyring = Keyring(LocalKeyProvider.from_file(key_file), FileKeyStore(path)).load()
        token = keyring.cipher("subject:42").encrypt("ada@example.com", context=CTX)
        keyring.cipher("subject:43").encrypt("bob@example.com", context=CTX)
        (wrapped,) = [r.wrapped for r in keyring.store.data_keys("subject:42")]
        leave_a_crashed_write(path)  # the crash happens in another process, unseen

        keyring.destroy("subject:42")

        assert [] == holders(path.parent, wrapped)
        fresh = Keyring(LocalKeyProvider.from_file(key_file), FileKeyStore(path)).load()
        with pytest.raises(KeyDestroyedError):
            fresh.cipher("subject:42").decrypt(token, context=CTX)


class TestKilledWriter:
    """A writer killed with SIGKILL at random points: the next user finds an intact store
    (the old state or the new one) and no stray file."""

    def test_sigkill_at_random_points(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        store = FileKeyStore(path)
        victim = record(0xFFFF0000, scope="subject:victim", wrapped=os.urandom(60))
        store.add_data_key(victim)
        rng = random.Random(os.environ.get("PYTEST_XDIST_WORKER", "seed"))
        done = 1
        for trial in range(TRIALS):
            child = FORK.Process(target=write_forever, args=(str(path), 1_000 * (trial + 1)))
            child.start()
            time.sleep(rng.uniform(0.002, 0.03))
            os.kill(child.pid, signal.SIGKILL)  # type: ignore[arg-type]
            child.join(timeout=30)
            assert -signal.SIGKILL == child.exitcode

            keys = FileKeyStore(path).all_data_keys()  # opening: intact, and scrubbed

            assert EXPECTED == {p.name for p in tmp_path.iterdir()}, f"trial {trial}"
            assert victim in keys
            assert len(keys) >= done
            done = len(keys)

        assert [victim] == store.data_keys("subject:victim")
        store.destroy_scope("subject:victim")
        assert [] == holders(tmp_path, victim.wrapped)
        assert [KeyState.DESTROYED] == [r.state for r in store.data_keys("subject:victim")]


class TestMasterKeyFile:
    """The same for a LocalKeyProvider key file: removing a master key (to retire the
    key-store backups it wrapped) leaves no copy of it from a crashed earlier write."""

    def test_removed_key_leaves_no_copy(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(path)
        LocalKeyProvider.add_key_to_file(path)
        old = json.loads(path.read_text())["keys"][0]
        leave_a_crashed_write(path)

        LocalKeyProvider.remove_key_from_file(path, old["id"])

        assert [] == holders(tmp_path, base64.b64decode(old["key"]))
        assert {"master.key", "master.key.lock"} == {p.name for p in tmp_path.iterdir()}
