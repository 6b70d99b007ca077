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
            ("vault://transit/keys/customers?insecure=1", "no option 'insecure'"),
            ("vault://transit/keys/customers?insecure_http=maybe", "must be true or false"),
            ("aws-kms://alias/c?verify=0", "no option 'verify'"),
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


class TestTransportOptions:
    """Plain HTTP and disabled certificate checks, asked for by name in the URI's query."""

    def test_vault(self) -> None:
        hvac = pytest.importorskip("hvac")
        registry = ProviderRegistry(vault_client=hvac.Client(url="http://127.0.0.1:9"))
        with pytest.raises(ConfigurationError, match=r"plain http://.*insecure_http=True"):
            registry.resolve("vault://transit/keys/customers")
        provider = registry.resolve("vault://transit/keys/customers?insecure_http=true")
        assert ["transit/customers"] == provider.key_refs
        unchecked = hvac.Client(url="https://127.0.0.1:9", verify=False)
        registry = ProviderRegistry(vault_client=unchecked)
        with pytest.raises(ConfigurationError, match="insecure_skip_verify"):
            registry.resolve("vault://transit/keys/customers?insecure_skip_verify=false")
        registry.resolve("vault://transit/keys/customers?insecure_skip_verify=1")

    def test_aws_kms(self) -> None:
        boto3 = pytest.importorskip("boto3")
        client = boto3.Session(
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="x" * 40,
            region_name="eu-west-1",
        ).client("kms", endpoint_url="http://127.0.0.1:9")
        registry = ProviderRegistry(kms_client=client)
        with pytest.raises(ConfigurationError, match=r"plain http://.*insecure_http=True"):
            registry.resolve("aws-kms://alias/customers")
        provider = registry.resolve("aws-kms://alias/customers?insecure_http=true")
        assert "alias/customers" == provider.key_id  # type: ignore[attr-defined]
