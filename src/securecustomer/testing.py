"""Helpers for the test suites of applications that use securecustomer.

Example:
    ```python
    from securecustomer import Context
    from securecustomer.testing import memory_keyring

    def test_signup_stores_encrypted_email() -> None:
        keyring = memory_keyring()
        cipher = keyring.cipher("customers.email")
        token = cipher.encrypt("ada@example.com", context=Context("customers", "email"))
        assert b"ada" not in token
    ```
"""

from __future__ import annotations

import time
from collections.abc import Callable

from securecustomer.keys import Keyring, LocalKeyProvider, MemoryKeyStore

__all__ = ["memory_keyring"]


def memory_keyring(
    *, cache_ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
) -> Keyring:
    """A loaded keyring with a throw-away master key and an in-memory key store.

    Every key is lost with the object: use it in tests only, never for real data.
    """
    return Keyring(
        LocalKeyProvider.generate(), MemoryKeyStore(), cache_ttl=cache_ttl, clock=clock
    ).load()
