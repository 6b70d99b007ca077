"""Sans-I/O cryptography: the value format, data keys and the field cipher.

Nothing here does I/O or imports SQLAlchemy. Dangerous building blocks (explicit
nonces, raw keys) live in `securecustomer.hazmat`.
"""

from securecustomer.crypto._cipher import FieldCipher, KeySet, KeySource
from securecustomer.crypto._encoding import Value
from securecustomer.crypto._format import FORMAT_VERSION, Context
from securecustomer.crypto._header import TokenHeader, parse_header
from securecustomer.crypto._keys import DataKey, KeyState

__all__ = [
    "Context",
    "DataKey",
    "FORMAT_VERSION",
    "FieldCipher",
    "KeySet",
    "KeySource",
    "KeyState",
    "TokenHeader",
    "Value",
    "parse_header",
]
