"""Root keys and their providers: wrap under every configured master key, unwrap with any.

A keyring has one primary provider and optional recovery providers (for example Vault as
primary and an offline key file for recovery). Every root key is wrapped under all of
them, so losing one provider does not lose the data; unwrapping tries the primary
first and falls back to a recovery provider when the primary fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from securecustomer.crypto import KeyState
from securecustomer.exceptions import KeyProviderError, KeyUnwrapError
from securecustomer.keys._records import KeyProvider, RootKeyRecord, WrappedKey

__all__ = ["RootWrapping", "root_context"]

_log = logging.getLogger("securecustomer.keys")


def root_context(version: int) -> dict[str, str]:
    """The context bound to root key *version* by every provider."""
    return {"securecustomer": "root-key", "version": str(version)}


class RootWrapping:
    """Wraps, unwraps and rewraps root keys with a primary and recovery providers."""

    def __init__(self, primary: KeyProvider, recovery: Sequence[KeyProvider] = ()) -> None:
        self.primary = primary
        self.recovery = tuple(recovery)

    @property
    def providers(self) -> tuple[KeyProvider, ...]:
        return (self.primary, *self.recovery)

    # -- creating -------------------------------------------------------------------------

    def create(
        self, version: int, random: Callable[[int], bytes], size: int
    ) -> tuple[bytes, tuple[WrappedKey, ...]]:
        """New root key material wrapped by every provider (primary first)."""
        context = root_context(version)
        generate = getattr(self.primary, "generate_key", None)
        if generate is not None:
            material, first = generate(context=context)
        else:
            material = random(size)
            first = self.primary.wrap(material, context=context)
        return material, (first, *(p.wrap(material, context=context) for p in self.recovery))

    # -- unwrapping -----------------------------------------------------------------------

    def unwrap_all(
        self, records: Sequence[RootKeyRecord], known: dict[int, bytes] | None = None
    ) -> dict[int, bytes]:
        """The material of every root key that is not destroyed.

        The primary provider's ``unwrap_many`` answers them all in one call when it has
        one; a root the primary cannot unwrap is tried with the recovery providers.
        *known* gives material this process already holds (a root it just created).
        """
        found: dict[int, bytes] = dict(known or {})
        live = [r for r in records if r.state is not KeyState.DESTROYED and r.version not in found]
        errors: dict[int, KeyProviderError] = {}
        batch = getattr(self.primary, "unwrap_many", None)
        mine = [(r, w) for r in live if (w := _wrapped_for(r, self.primary)) is not None]
        if batch is not None and len(mine) > 1:
            try:
                items = [(w, root_context(r.version)) for r, w in mine]
                for (record, _), material in zip(mine, batch(items), strict=True):
                    found[record.version] = material
            except KeyProviderError as exc:
                for record, _ in mine:
                    errors[record.version] = exc
        for record in live:
            if record.version not in found:
                found[record.version] = self._unwrap_one(record, errors.get(record.version))
        return found

    def _unwrap_one(self, record: RootKeyRecord, error: KeyProviderError | None) -> bytes:
        context = root_context(record.version)
        first_error = error
        for provider in self.providers:
            if provider is self.primary and error is not None:
                continue  # the batch call already failed for it
            for wrapped in record.wrapped:
                if wrapped.provider != provider.name:
                    continue
                try:
                    material = provider.unwrap(wrapped, context=context)
                except KeyUnwrapError as exc:  # another key of the same kind: try on
                    first_error = first_error or exc
                    continue
                except KeyProviderError as exc:
                    first_error = first_error or exc
                    break
                if provider is not self.primary:
                    _log.warning(
                        "root key version %d was unwrapped by the recovery provider %r: %s",
                        record.version,
                        provider,
                        first_error or "the primary provider holds no copy of it",
                    )
                return material
        if first_error is not None:
            raise first_error
        kinds = ", ".join(sorted({w.provider for w in record.wrapped})) or "none"
        raise KeyUnwrapError(
            f"root key version {record.version} is wrapped by {kinds}, and none of this "
            f"keyring's providers ({', '.join(p.name for p in self.providers)}) holds it"
        )

    # -- rewrapping -----------------------------------------------------------------------

    def rewrap(self, record: RootKeyRecord, material: bytes) -> tuple[WrappedKey, ...]:
        """*record*'s key wrapped under every provider's current master key.

        The primary provider's ``rewrap`` is used when it holds a copy (the material
        never leaves the service); wrappings of providers this keyring no longer has are
        dropped, which is how a retired master key stops mattering.
        """
        context = root_context(record.version)
        fresh = []
        for provider in self.providers:
            current = _wrapped_for(record, provider)
            rewrap = getattr(provider, "rewrap", None)
            if current is not None and rewrap is not None:
                fresh.append(rewrap(current, context=context))
            else:
                fresh.append(provider.wrap(material, context=context))
        return tuple(fresh)


def _wrapped_for(record: RootKeyRecord, provider: KeyProvider) -> WrappedKey | None:
    """The wrapping of *record* that *provider* made, if any (by kind and key reference)."""
    refs = getattr(provider, "key_refs", None)
    for wrapped in record.wrapped:
        if wrapped.provider != provider.name:
            continue
        if refs is None or _same_key(wrapped.key_ref, refs):
            return wrapped
    return None


def _same_key(key_ref: str, refs: Sequence[str]) -> bool:
    base = key_ref.split(":v", 1)[0]  # Vault refs carry the key version: "transit/k:v3"
    return any(base == r.split(":v", 1)[0] for r in refs)
