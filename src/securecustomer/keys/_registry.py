"""ProviderRegistry: key providers named by URI in configuration files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from securecustomer.exceptions import ConfigurationError
from securecustomer.keys._local import LocalKeyProvider
from securecustomer.keys._records import KeyProvider

__all__ = ["ProviderRegistry"]

#: Builds a provider from the part of the URI after ``scheme://``.
ProviderFactory = Callable[[str], KeyProvider]


class ProviderRegistry:
    """Turns provider URIs from configuration into providers, with no global state.

    Built in, each needing what the application passes to the registry:

    - ``local:///etc/app/master.key``: `LocalKeyProvider.from_file`;
    - ``local-env://SECURECUSTOMER_MASTER_KEY``: `LocalKeyProvider.from_env`;
    - ``vault://transit/keys/customers``: a Transit key (mount ``transit``, key
      ``customers``) through the *vault_client* (an authenticated ``hvac.Client``);
    - ``aws-kms://arn:aws:kms:...``: a KMS key through the *kms_client* (boto3).

    The Vault and KMS URIs take the providers' transport opt-outs as a query, by name:
    ``vault://transit/keys/customers?insecure_http=true`` for a client on a plain
    ``http://`` address, ``insecure_skip_verify=true`` for one made with ``verify=False``.
    Without them such clients are refused (`ConfigurationError`).

    `register` adds schemes of your own.

    Example:
        ```python
        registry = ProviderRegistry(vault_client=hvac.Client(url=..., token=...))
        provider = registry.resolve(settings["master_key"])   # "vault://transit/keys/customers"
        keyring = Keyring(provider, store, recovery=[registry.resolve("local:///srv/offline.key")])
        ```
    """

    def __init__(self, *, vault_client: Any = None, kms_client: Any = None) -> None:
        self._factories: dict[str, ProviderFactory] = {
            "local": _local_file,
            "local-env": lambda rest: LocalKeyProvider.from_env(unquote(rest)),
            "vault": lambda rest: _vault(rest, vault_client),
            "aws-kms": lambda rest: _aws_kms(rest, kms_client),
        }

    def __repr__(self) -> str:
        return f"<ProviderRegistry schemes={sorted(self._factories)}>"

    def register(self, scheme: str, factory: ProviderFactory) -> None:
        """Resolve ``scheme://...`` URIs with *factory*, which gets the text after ``//``."""
        if not scheme or not scheme.replace("-", "").replace("+", "").isalnum():
            raise ConfigurationError(f"not a URI scheme: {scheme!r}")
        self._factories[scheme] = factory

    def resolve(self, uri: str) -> KeyProvider:
        """The provider that *uri* names; `ConfigurationError` says what is wrong with it."""
        scheme, sep, rest = uri.partition("://")
        if not sep or not rest:
            raise ConfigurationError(  # not echoed: it might hold a credential
                "not a key provider URI (expected scheme://..., e.g. local:///path/to/master.key)"
            )
        factory = self._factories.get(scheme)
        if factory is None:
            known = ", ".join(sorted(self._factories))
            raise ConfigurationError(f"unknown key provider scheme {scheme!r}; known: {known}")
        return factory(rest)


def _local_file(rest: str) -> KeyProvider:
    if not rest.startswith("/"):
        raise ConfigurationError(
            "local key file URIs need an absolute path: local:///path/to/master.key, "
            f"not local://{rest}"
        )
    return LocalKeyProvider.from_file(unquote(rest))


_INSECURE = ("insecure_http", "insecure_skip_verify")
_TRUE, _FALSE = frozenset({"1", "true", "yes"}), frozenset({"0", "false", "no"})


def _options(scheme: str, rest: str) -> tuple[str, dict[str, bool]]:
    """The part of *rest* before ``?``, and the transport opt-outs of its query."""
    path, _, query = rest.partition("?")
    options: dict[str, bool] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _INSECURE:
            raise ConfigurationError(
                f"{scheme}:// URIs take no option {name!r}; known: {', '.join(_INSECURE)}"
            )
        if value.lower() not in _TRUE | _FALSE:
            raise ConfigurationError(f"{scheme}:// option {name} must be true or false")
        options[name] = value.lower() in _TRUE
    return path, options


def _vault(rest: str, client: Any) -> KeyProvider:
    rest, options = _options("vault", rest)
    mount, sep, key = rest.partition("/keys/")
    if not sep or not mount or not key or "/" in key:
        raise ConfigurationError(
            f"Vault URIs name a Transit key: vault://<mount>/keys/<key>, not vault://{rest}"
        )
    if client is None:
        raise ConfigurationError(
            "vault:// providers need an authenticated hvac client: "
            "ProviderRegistry(vault_client=hvac.Client(...))"
        )
    from securecustomer.keys._vault import VaultTransitKeyProvider

    return VaultTransitKeyProvider(
        client,
        key=unquote(key),
        mount_point=unquote(mount),
        insecure_http=options.get("insecure_http", False),
        insecure_skip_verify=options.get("insecure_skip_verify", False),
    )


def _aws_kms(rest: str, client: Any) -> KeyProvider:
    rest, options = _options("aws-kms", rest)
    if not rest:
        raise ConfigurationError("aws-kms:// URIs name a key: aws-kms://arn:aws:kms:...")
    if client is None:
        raise ConfigurationError(
            "aws-kms:// providers need a boto3 KMS client: "
            "ProviderRegistry(kms_client=boto3.client('kms', ...))"
        )
    from securecustomer.keys._aws import AwsKmsKeyProvider

    return AwsKmsKeyProvider(
        client,
        key_id=unquote(rest),
        insecure_http=options.get("insecure_http", False),
        insecure_skip_verify=options.get("insecure_skip_verify", False),
    )
