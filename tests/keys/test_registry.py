"""ProviderRegistry: URIs from configuration, resolved without global state."""

from __future__ import annotations

from pathlib import Path

import pytest

from securecustomer import LocalKeyProvider
from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import ProviderRegistry


class TestResolve:
    """Built-in schemes and clear refusals."""

    def test_local_file(self, tmp_path: Path) -> None:
        path = tmp_path / "master.key"
        created = LocalKeyProvider.create_key_file(path)
        provider = ProviderRegistry().resolve(f"local://{path}")
        assert isinstance(provider, LocalKeyProvider)
        assert created.key_refs == provider.key_refs

    def test_local_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MK", "A" * 43 + "=")
        assert isinstance(ProviderRegistry().resolve("local-env://MK"), LocalKeyProvider)

    @pytest.mark.parametrize(
        ("uri", "fragment"),
        [
            ("master.key", "not a key provider URI"),
            ("local://", "not a key provider URI"),
            ("local://relative/path", "absolute path"),
            ("ftp://x", "unknown key provider scheme 'ftp'"),
            ("vault://transit/customers", "vault://<mount>/keys/<key>"),
            ("vault://transit/keys/customers", "need an authenticated hvac client"),
            ("aws-kms://arn:aws:kms:eu-west-1:1:key/x", "need a boto3 KMS client"),
        ],
    )
    def test_refusals(self, uri: str, fragment: str) -> None:
        with pytest.raises(ConfigurationError, match=fragment):
            ProviderRegistry().resolve(uri)

    def test_password_is_not_echoed(self) -> None:
        with pytest.raises(ConfigurationError) as info:
            ProviderRegistry().resolve("user:s3cret@host")
        assert "s3cret" not in str(info.value)

    def test_register(self) -> None:
        registry = ProviderRegistry()
        made = LocalKeyProvider.generate()
        registry.register("memory", lambda rest: made)
        assert made is registry.resolve("memory://anything")
        with pytest.raises(ConfigurationError, match="not a URI scheme"):
            registry.register("bad scheme", lambda rest: made)
        assert "memory" in repr(registry)

    def test_registries_are_independent(self) -> None:
        first, second = ProviderRegistry(), ProviderRegistry()
        first.register("memory", lambda rest: LocalKeyProvider.generate())
        with pytest.raises(ConfigurationError, match="unknown"):
            second.resolve("memory://x")
