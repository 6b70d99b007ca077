"""The public contracts, in one place: implement these to plug in your own parts.

- `KeyProvider`: wraps and unwraps root keys under a master key (local file, Vault, KMS).
- `KeyStore`: keeps wrapped keys durably (memory, JSON file, your database).
- `KeySource`: what a `FieldCipher` asks a keyring for (framework plugins rarely need it).
- `Value`: the Python types a `FieldCipher` encrypts and returns.
"""

from securecustomer.crypto import KeySource, Value
from securecustomer.keys import KeyProvider, KeyStore

__all__ = ["KeyProvider", "KeySource", "KeyStore", "Value"]
