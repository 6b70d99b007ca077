"""Key stores: shared rules, file format, atomic replace, two-process safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from records import NOW, record

from securecustomer.exceptions import KeyNotFoundError, KeyStateError, KeyStoreError
from securecustomer.keys import (
    FileKeyStore,
    KeyState,
    MemoryKeyStore,
    RootKeyRecord,
    WrappedKey,
)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryKeyStore | FileKeyStore:
    return MemoryKeyStore() if request.param == "memory" else FileKeyStore(tmp_path / "keys.json")


class TestRules:
    """Both stores enforce the same lifecycle rules."""

    def test_insert_if_absent(self, store: MemoryKeyStore | FileKeyStore) -> None:
        first = store.add_data_key(record(1))
        assert first == store.add_data_key(record(2))  # same (scope, version): the first wins
        assert store.add_data_key(record(1, scope="t")) is None  # id taken by another key
        assert [record(1)] == store.data_keys("s")
        assert record(1) == store.data_key(1)
        assert store.data_key(9) is None

    def test_destroyed_is_terminal(self, store: MemoryKeyStore | FileKeyStore) -> None:
        store.add_data_key(record(1))
        store.update_data_keys([record(1, state=KeyState.DESTROYED, wrapped=b"")])
        with pytest.raises(KeyStateError, match="never be revived"):
            store.update_data_keys([record(1)])

    def test_destroyed_keeps_no_material(self, store: MemoryKeyStore | FileKeyStore) -> None:
        store.add_data_key(record(1))
        with pytest.raises(KeyStateError, match="must not keep"):
            store.update_data_keys([record(1, state=KeyState.DESTROYED)])

    def test_identity_is_fixed(self, store: MemoryKeyStore | FileKeyStore) -> None:
        store.add_data_key(record(1))
        with pytest.raises(KeyStateError, match="identity"):
            store.update_data_keys([record(1, scope="other")])

    def test_batch_is_all_or_nothing(self, store: MemoryKeyStore | FileKeyStore) -> None:
        store.add_data_key(record(1))
        with pytest.raises(KeyNotFoundError):
            store.update_data_keys([record(1, state=KeyState.DISABLED), record(2)])
        assert KeyState.ACTIVE == store.data_key(1).state  # type: ignore[union-attr]

    def test_roots(self, store: MemoryKeyStore | FileKeyStore) -> None:
        root = RootKeyRecord(1, KeyState.ACTIVE, NOW, (WrappedKey("local", "ab", b"c"),))
        assert root == store.add_root(root)
        assert root == store.add_root(RootKeyRecord(1, KeyState.ACTIVE, NOW, ()))
        store.update_root(RootKeyRecord(1, KeyState.DESTROYED, NOW, ()))
        with pytest.raises(KeyStateError):
            store.update_root(root)
        with pytest.raises(KeyNotFoundError):
            store.update_root(RootKeyRecord(2, KeyState.ACTIVE, NOW, ()))
        assert [1] == [r.version for r in store.roots()]


class TestFileFormat:
    """The JSON file is private, readable, round-trips, and corruption is named."""

    def test_round_trip_and_mode(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        FileKeyStore(path).add_data_key(record(7, scope="subject:ü"))
        assert 0o600 == path.stat().st_mode & 0o777
        assert [record(7, scope="subject:ü")] == FileKeyStore(path).data_keys("subject:ü")
        document = json.loads(path.read_text())
        assert ("securecustomer.keystore", 1) == (document["format"], document["version"])

    def test_no_write_when_nothing_changes(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        store = FileKeyStore(path)
        store.add_data_key(record(1))
        before = path.stat().st_mtime_ns
        os.utime(path, ns=(0, 0))
        store.add_data_key(record(1))
        assert 0 == path.stat().st_mtime_ns != before

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            ("not json", "corrupt key store"),
            ('{"format": "other"}', '"format" must be'),
            ('{"format": "securecustomer.keystore", "version": 3}', "unsupported"),
            (
                '{"format": "securecustomer.keystore", "version": 1, '
                '"roots": [{}], "data_keys": []}',
                "roots\\[0\\]",
            ),
            (
                '{"format": "securecustomer.keystore", "version": 1, "roots": [], "data_keys": '
                '[{"key_id": "1"}]}',
                "data_keys\\[0\\]",
            ),
        ],
    )
    def test_corrupt(self, tmp_path: Path, content: str, fragment: str) -> None:
        path = tmp_path / "keys.json"
        path.write_text(content)
        with pytest.raises(KeyStoreError, match=fragment) as info:
            FileKeyStore(path).roots()
        assert str(path) in str(info.value)

    def test_duplicate_ids(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.json"
        store = FileKeyStore(path)
        store.add_data_key(record(1))
        document = json.loads(path.read_text())
        document["data_keys"].append(dict(document["data_keys"][0], version=2))
        path.write_text(json.dumps(document))
        with pytest.raises(KeyStoreError, match="duplicate key id"):
            store.data_key(1)

    def test_unreadable(self, tmp_path: Path) -> None:
        (tmp_path / "keys.json").mkdir()
        with pytest.raises(KeyStoreError, match="cannot read"):
            FileKeyStore(tmp_path / "keys.json").roots()


class TestTwoProcesses:
    """Processes creating the same scopes at once all get the same single key."""

    def test_concurrent_creation(self, tmp_path: Path) -> None:
        from securecustomer import LocalKeyProvider

        LocalKeyProvider.create_key_file(tmp_path / "master.key")
        script = textwrap.dedent(
            f"""
            import sys
            from securecustomer import Context, Keyring, LocalKeyProvider
            from securecustomer.keys import FileKeyStore
            keyring = Keyring(LocalKeyProvider.from_file({str(tmp_path / "master.key")!r}),
                              FileKeyStore({str(tmp_path / "keys.json")!r})).load()
            ids = []
            for n in range(25):
                token = keyring.cipher(f"subject:{{n}}").encrypt("x", context=Context("t", "c"))
                ids.append(token[2:6].hex())
            print(",".join(ids))
            """
        )
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True
            )
            for _ in range(4)
        ]
        outputs = [w.communicate(timeout=120)[0].strip() for w in workers]
        assert all(w.returncode == 0 for w in workers)
        assert 1 == len(set(outputs))
        store = FileKeyStore(tmp_path / "keys.json")
        assert 25 == len(store.all_data_keys())
        assert 1 == len(store.roots())
