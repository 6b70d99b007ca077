"""Key providers, key stores and the Keyring (hierarchy, caches, rotation, shredding)."""

from securecustomer.crypto import KeyState
from securecustomer.keys._keyring import Keyring, KeyStatus
from securecustomer.keys._local import LocalKeyProvider
from securecustomer.keys._records import (
    DataKeyRecord,
    KeyProvider,
    KeyStore,
    RootKeyRecord,
    WrappedKey,
    check_update,
)
from securecustomer.keys._stores import FileKeyStore, MemoryKeyStore

__all__ = [
    "DataKeyRecord",
    "FileKeyStore",
    "KeyProvider",
    "KeyState",
    "KeyStatus",
    "KeyStore",
    "Keyring",
    "LocalKeyProvider",
    "MemoryKeyStore",
    "RootKeyRecord",
    "WrappedKey",
    "check_update",
]
