"""Key providers, key stores and the Keyring (hierarchy, caches, rotation, shredding)."""

from securecustomer.crypto import KeyState
from securecustomer.keys._aws import AwsKmsKeyProvider
from securecustomer.keys._keyring import Keyring, KeyStatus
from securecustomer.keys._local import LocalKeyProvider
from securecustomer.keys._records import (
    DataKeyRecord,
    KeyProvider,
    KeyStore,
    RootKeyRecord,
    WrappedKey,
    check_update,
    scope_destroyed,
)
from securecustomer.keys._registry import ProviderRegistry
from securecustomer.keys._retry import RetryPolicy
from securecustomer.keys._stores import FileKeyStore, MemoryKeyStore
from securecustomer.keys._vault import VaultTransitKeyProvider

__all__ = [
    "AwsKmsKeyProvider",
    "DataKeyRecord",
    "FileKeyStore",
    "KeyProvider",
    "KeyState",
    "KeyStatus",
    "KeyStore",
    "Keyring",
    "LocalKeyProvider",
    "MemoryKeyStore",
    "ProviderRegistry",
    "RetryPolicy",
    "RootKeyRecord",
    "VaultTransitKeyProvider",
    "WrappedKey",
    "check_update",
    "scope_destroyed",
]
