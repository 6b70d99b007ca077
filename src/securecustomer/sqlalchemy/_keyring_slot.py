"""Where encrypted columns find their keyring, and the sealed tokens of row-bound values."""

from __future__ import annotations

import attrs

from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import Keyring

__all__ = ["KeyringSlot", "Sealed", "default_keyring"]


class KeyringSlot:
    """Where encrypted columns find their keyring, bound once the application starts.

    Models are declared at import time, before any keyring exists; a slot lets them
    name the keyring they will use. Columns without an explicit ``keyring=`` use
    `default_keyring`.

    Example:
        ```python
        keys = KeyringSlot("customers")                # in models.py
        email = mapped_column(EncryptedString(keyring=keys))
        keys.bind(Keyring(provider, store).load())     # at application start
        ```
    """

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self._keyring: Keyring | None = None

    def bind(self, keyring: Keyring) -> None:
        """Use *keyring* for every column that names this slot (rebinding replaces it)."""
        if not isinstance(keyring, Keyring):
            raise ConfigurationError(f"KeyringSlot.bind() needs a Keyring, got {keyring!r}")
        self._keyring = keyring

    def unbind(self) -> None:
        """Forget the keyring (tests, shutdown)."""
        self._keyring = None

    def get(self) -> Keyring:
        """The bound keyring, or `ConfigurationError` if the application has not bound one."""
        if self._keyring is None:
            raise ConfigurationError(
                f"keyring slot {self.name!r} is not bound: call .bind(keyring) at application "
                "start, before the first query"
            )
        return self._keyring

    def __repr__(self) -> str:
        state = "bound" if self._keyring is not None else "unbound"
        return f"<KeyringSlot {self.name!r} {state}>"


#: The slot that encrypted columns use unless they name another slot or keyring.
default_keyring = KeyringSlot("default")


@attrs.frozen(repr=False)
class Sealed:
    """A token that the ORM layer encrypted with a row or subject context.

    Row-bound and subject-scoped columns (see `encrypt_rows`) hold one of these in
    the instance only while a flush writes it; Core reads of such columns return it so
    that the caller can decrypt with the row's context.
    """

    token: bytes
    #: The schema a ``schema_translate_map`` gave the table the token was read from;
    #: meaningful only when *translated* (otherwise: the table's own schema).
    schema: str | None = attrs.field(default=None, kw_only=True)
    translated: bool = attrs.field(default=False, kw_only=True)

    def __repr__(self) -> str:
        return f"<Sealed {len(self.token)} bytes>"
