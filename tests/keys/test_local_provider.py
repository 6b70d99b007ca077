"""LocalKeyProvider: key files, environment variables, wrapping, refusals."""

from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path

import pytest

from securecustomer import LocalKeyProvider
from securecustomer.exceptions import ConfigurationError, KeyUnwrapError
from securecustomer.keys import WrappedKey

CONTEXT = {"securecustomer": "root-key", "version": "1"}
HEAD = b'{"format": "securecustomer.local-master-key", "version": 1, '


class TestKeyFile:
    """Key files are created private, read back, and refused when unsafe or damaged."""

    def test_create_and_load(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        created = LocalKeyProvider.create_key_file(path)
        assert 0o600 == path.stat().st_mode & 0o777
        wrapped = created.wrap(b"k" * 32, context=CONTEXT)
        assert b"k" * 32 == LocalKeyProvider.from_file(path).unwrap(wrapped, context=CONTEXT)

    def test_never_overwrites(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(path)
        before = path.read_bytes()
        with pytest.raises(ConfigurationError, match="exists already"):
            LocalKeyProvider.create_key_file(path)
        assert before == path.read_bytes()
        assert [path] == list(tmp_path.iterdir())  # no temporary file left behind

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
    def test_loose_permissions(self, tmp_path: Path, mode: int) -> None:
        path = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(path)
        path.chmod(mode)
        with pytest.raises(ConfigurationError, match=f"mode is {mode:04o}.*chmod 600"):
            LocalKeyProvider.from_file(path)

    def test_missing(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="key file not found"):
            LocalKeyProvider.from_file(tmp_path / "nope.key")

    @pytest.mark.parametrize(
        ("content", "fragment"),
        [
            (b"\xff\xfe", "not JSON"),
            (b"{\n  oops", "not JSON \\(line 2\\)"),
            (b"[]", '"format" must be'),
            (b'{"format": "securecustomer.local-master-key", "version": 2}', "unsupported"),
            (
                b'{"format": "securecustomer.local-master-key", "version": 1, "keys": []}',
                "non-empty",
            ),
            (
                HEAD + b'"keys": [{"key": 1}]}',
                "keys\\[0\\] must be an object",
            ),
            (
                HEAD + b'"keys": [{"key": "!"}]}',
                "keys\\[0\\].key is not valid base64",
            ),
            (
                HEAD + b'"keys": [{"key": "AAAA"}]}',
                "must decode to 32 bytes",
            ),
        ],
    )
    def test_corrupt(self, tmp_path: Path, content: bytes, fragment: str) -> None:
        path = tmp_path / "master.key"
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(ConfigurationError, match=fragment) as info:
            LocalKeyProvider.from_file(path)
        assert str(path) in str(info.value)

    def test_altered_key_is_detected(self, tmp_path: Path) -> None:
        """A key swapped in the file no longer matches its id."""
        path = tmp_path / "master.key"
        LocalKeyProvider.create_key_file(path)
        document = json.loads(path.read_text())
        document["keys"][0]["key"] = base64.b64encode(os.urandom(32)).decode()
        path.write_text(json.dumps(document))
        with pytest.raises(ConfigurationError, match="does not match its key"):
            LocalKeyProvider.from_file(path)

    def test_several_keys_newest_wraps(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        old = LocalKeyProvider.create_key_file(path)
        old_wrapped = old.wrap(b"a" * 32, context=CONTEXT)
        document = json.loads(path.read_text())
        newer = tmp_path / "newer.key"
        LocalKeyProvider.create_key_file(newer)
        document["keys"] += json.loads(newer.read_text())["keys"]
        path.write_text(json.dumps(document))
        both = LocalKeyProvider.from_file(path)
        assert b"a" * 32 == both.unwrap(old_wrapped, context=CONTEXT)
        assert both.wrap(b"b" * 32, context=CONTEXT).key_ref != old_wrapped.key_ref
        assert 2 == len(both.key_refs)


class TestMasterKeyRotation:
    """Keys are added to and removed from a key file safely, never the last one."""

    def test_add_then_remove(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        old = LocalKeyProvider.create_key_file(path)
        wrapped = old.wrap(b"a" * 32, context=CONTEXT)
        both = LocalKeyProvider.add_key_to_file(path)
        assert 0o600 == path.stat().st_mode & 0o777
        assert [old.key_refs[0]] == both.key_refs[:1]
        assert b"a" * 32 == both.unwrap(wrapped, context=CONTEXT)
        assert both.wrap(b"b" * 32, context=CONTEXT).key_ref == both.key_refs[1]
        newest = LocalKeyProvider.remove_key_from_file(path, old.key_refs[0])
        assert both.key_refs[1:] == newest.key_refs
        with pytest.raises(KeyUnwrapError):
            newest.unwrap(wrapped, context=CONTEXT)

    def test_refusals(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        only = LocalKeyProvider.create_key_file(path)
        before = path.read_bytes()
        with pytest.raises(ConfigurationError, match="last master key"):
            LocalKeyProvider.remove_key_from_file(path, only.key_refs[0])
        with pytest.raises(ConfigurationError, match="no master key 'nope'"):
            LocalKeyProvider.remove_key_from_file(path, "nope")
        assert before == path.read_bytes()
        path.chmod(0o644)
        with pytest.raises(ConfigurationError, match="chmod 600"):
            LocalKeyProvider.add_key_to_file(path)
        assert before == path.read_bytes()

    def test_full_rotation_with_keyring(self, tmp_path: Path) -> None:
        from securecustomer import Context, Keyring
        from securecustomer.keys import FileKeyStore, KeyState

        path, store = tmp_path / "master.key", FileKeyStore(tmp_path / "keys.json")
        old = LocalKeyProvider.create_key_file(path)
        keyring = Keyring(old, store).load()
        ctx = Context("t", "c")
        token = keyring.cipher("s").encrypt("v", context=ctx)
        keyring = Keyring(LocalKeyProvider.add_key_to_file(path), store).load()
        keyring.rotate_root()
        keyring.destroy_root(1)
        live = [r for r in store.roots() if r.state is not KeyState.DESTROYED]
        assert {old.key_refs[0]} != {w.key_ref for r in live for w in r.wrapped}
        newest = LocalKeyProvider.remove_key_from_file(path, old.key_refs[0])
        assert "v" == Keyring(newest, store).load().cipher("s").decrypt(token, context=ctx)


class TestEnvironment:
    """A base64 master key from an environment variable."""

    def test_from_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        key = os.urandom(32)
        monkeypatch.setenv("SECURECUSTOMER_MASTER_KEY", base64.b64encode(key).decode())
        provider = LocalKeyProvider.from_env()
        again = LocalKeyProvider([key])
        assert b"x" * 32 == again.unwrap(provider.wrap(b"x" * 32, context={}), context={})

    @pytest.mark.parametrize(
        ("value", "fragment"),
        [(None, "not set"), ("", "not set"), ("%%%", "not valid base64"), ("AAAA", "32 bytes")],
    )
    def test_bad_env(
        self, monkeypatch: pytest.MonkeyPatch, value: str | None, fragment: str
    ) -> None:
        if value is None:
            monkeypatch.delenv("MY_KEY", raising=False)
        else:
            monkeypatch.setenv("MY_KEY", value)
        with pytest.raises(ConfigurationError, match=fragment) as info:
            LocalKeyProvider.from_env("MY_KEY")
        assert "MY_KEY" in str(info.value)


class TestWrapping:
    """Wrapped keys authenticate their context and their master key."""

    def test_wrong_master_key(self) -> None:
        wrapped = LocalKeyProvider.generate().wrap(b"k" * 32, context=CONTEXT)
        with pytest.raises(KeyUnwrapError, match="does not hold"):
            LocalKeyProvider.generate().unwrap(wrapped, context=CONTEXT)

    def test_wrong_context(self, provider: LocalKeyProvider) -> None:
        wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
        with pytest.raises(KeyUnwrapError, match="did not authenticate"):
            provider.unwrap(wrapped, context={**CONTEXT, "version": "2"})

    def test_altered_ciphertext(self, provider: LocalKeyProvider) -> None:
        wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
        for index in range(len(wrapped.ciphertext)):
            bad = bytearray(wrapped.ciphertext)
            bad[index] ^= 0x80
            altered = WrappedKey(wrapped.provider, wrapped.key_ref, bytes(bad))
            with pytest.raises(KeyUnwrapError):
                provider.unwrap(altered, context=CONTEXT)

    def test_other_provider_kind(self, provider: LocalKeyProvider) -> None:
        wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
        with pytest.raises(KeyUnwrapError):
            provider.unwrap(
                WrappedKey("vault", wrapped.key_ref, wrapped.ciphertext), context=CONTEXT
            )


class TestSecrets:
    """The master key never shows in repr, pickles or wrapped-key reprs."""

    def test_repr(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        provider = LocalKeyProvider.create_key_file(path)
        secret = json.loads(path.read_text())["keys"][0]["key"]
        assert secret not in repr(provider)
        assert repr(provider).startswith("<LocalKeyProvider source=")

    def test_not_picklable(self, provider: LocalKeyProvider) -> None:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(provider)

    def test_wrapped_key_repr_hides_ciphertext(self, provider: LocalKeyProvider) -> None:
        wrapped = provider.wrap(b"k" * 32, context=CONTEXT)
        assert wrapped.ciphertext.hex() not in repr(wrapped)
        assert "ciphertext" not in repr(wrapped)

    def test_bad_key_size(self) -> None:
        with pytest.raises(ConfigurationError, match="32 bytes"):
            LocalKeyProvider([b"short"])
        with pytest.raises(ConfigurationError, match="no master key"):
            LocalKeyProvider([])
