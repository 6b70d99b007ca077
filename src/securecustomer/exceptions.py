"""Every error securecustomer raises, in one tree.

Catch the branch that matches what you can do about the failure::

    SecureCustomerError
    ├── ConfigurationError (ValueError)        wrong settings, bad key file, loose permissions
    ├── UnsupportedValueError (TypeError)      a value of a type the value format cannot encode
    ├── ContextError (ValueError)              an encryption context that is empty or malformed
    ├── UnsupportedQueryError (TypeError)      a SQL operation an encrypted column cannot answer
    ├── UnpicklableError (TypeError)           an object holding keys or credentials was pickled
    ├── UsageError (TypeError)                 an argument of the wrong kind, or an object used
    │                                          as it cannot be (a verification report as a bool)
    ├── RecordNotFoundError (KeyError)         no legal hold, inventory entry... with this id
    ├── KeyManagementError                     the key hierarchy cannot do what was asked
    │   ├── KeyNotFoundError (LookupError)     no such scope, key id or root version
    │   ├── KeyStateError                      the key's state forbids the operation
    │   ├── KeyStoreError                      the key store is unreadable, corrupt or inconsistent
    │   └── KeyProviderError                   the master-key provider failed
    │       ├── KeyUnwrapError                 wrong master key, or a wrapped key was altered
    │       ├── KeyProviderUnavailable         the provider could not be reached (retry later)
    │       └── KeyProviderAccessDenied        the provider refused (fix credentials / policy)
    ├── DecryptionError                        one opaque error for every bad token
    │   ├── UnknownKeyError                    the token names a key id the key store never had
    │   ├── KeyDisabledError                   the key exists but is disabled (can be re-enabled)
    │   └── KeyDestroyedError                  the key was destroyed: the value is erased for good
    ├── AuthorizationError (PermissionError)
    │   ├── AccessDenied                       the policy engine denied the request
    │   └── StepUpRequired                     allowed only after a fresh MFA (re-authenticate)
    ├── PolicyError (ValueError)               a policy document that cannot be loaded
    │   └── PolicyUsageError (UsageError)      a policy call with arguments of the wrong kind
    ├── AuditError                             the audit trail could not record or verify
    ├── LegalHoldError                         a legal hold forbids erasing or deleting the data
    └── AnonymizationError (ValueError)        a transform cannot be applied to its input

`KeyNotFoundError` (an administrator's lookup: ``destroy``, ``set_state``...) is not a
`DecryptionError`, so an ``except DecryptionError`` around a decryption never swallows
it; a token naming an unknown key id raises `UnknownKeyError`, which is one.

Messages and attributes never carry key material, plaintext or ciphertext: only
identifiers such as ``key_id`` (an ``int``), ``scope`` (a ``str``) and file paths.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AnonymizationError",
    "AuditError",
    "AuthorizationError",
    "ConfigurationError",
    "ContextError",
    "DecryptionError",
    "KeyDestroyedError",
    "KeyDisabledError",
    "KeyManagementError",
    "KeyNotFoundError",
    "KeyProviderAccessDenied",
    "KeyProviderError",
    "KeyProviderUnavailable",
    "KeyStateError",
    "KeyStoreError",
    "KeyUnwrapError",
    "LegalHoldError",
    "PolicyError",
    "PolicyUsageError",
    "RecordNotFoundError",
    "SecureCustomerError",
    "StepUpRequired",
    "UnknownKeyError",
    "UnpicklableError",
    "UnsupportedQueryError",
    "UnsupportedValueError",
    "UsageError",
]


class SecureCustomerError(Exception):
    """Root of every error raised by securecustomer."""


class ConfigurationError(SecureCustomerError, ValueError):
    """Settings, a key file or an environment variable are wrong or unsafe."""


class UnsupportedValueError(SecureCustomerError, TypeError):
    """A value cannot be encoded by the value format (wrong type or out of range)."""


class ContextError(SecureCustomerError, ValueError):
    """An encryption context is empty or malformed."""


class UnsupportedQueryError(SecureCustomerError, TypeError):
    """A SQL operation that an encrypted column cannot answer (compare, order, render)."""


class UnpicklableError(SecureCustomerError, TypeError):
    """An object that holds key material or credentials refuses to be pickled or copied."""


class UsageError(SecureCustomerError, TypeError):
    """An argument of the wrong kind, or an object used in a way it does not support."""


class RecordNotFoundError(SecureCustomerError, KeyError):
    """No record with this id: a legal hold, a column of a data inventory.

    A `KeyError`, so ``except KeyError`` keeps working; its message is not quoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class KeyManagementError(SecureCustomerError):
    """The key hierarchy cannot perform the requested operation."""


class KeyStateError(KeyManagementError):
    """The state of a key forbids the operation (for example, reviving a destroyed key)."""

    def __init__(self, message: str, *, key_id: int | None = None, scope: str | None = None):
        super().__init__(message)
        self.key_id = key_id
        self.scope = scope


class KeyStoreError(KeyManagementError):
    """The key store cannot be read or written, or its content is inconsistent."""


class KeyProviderError(KeyManagementError):
    """The master-key provider failed to wrap or unwrap key material."""


class KeyUnwrapError(KeyProviderError):
    """Wrapped key material did not authenticate: wrong master key or an altered key store."""


class KeyProviderUnavailable(KeyProviderError):
    """The provider could not be reached or timed out; retrying later may succeed."""


class KeyProviderAccessDenied(KeyProviderError):
    """The provider refused the request; retrying will not help until permissions change."""


class DecryptionError(SecureCustomerError):
    """A token could not be decrypted.

    The message never says which check failed: a flipped bit, a truncated token and a
    token moved to another column all look the same to the caller.
    """

    def __init__(self, message: str = "the value could not be decrypted") -> None:
        super().__init__(message)


class KeyNotFoundError(KeyManagementError, LookupError):
    """No key with this id or scope (or no root key of this version) exists in the key store.

    Raised by key management (``destroy``, ``set_state``, ``destroy_key``, a store's
    ``update``...), never by decryption: it is not a `DecryptionError`. A token that names
    an unknown key id raises `UnknownKeyError`.
    """

    def __init__(self, message: str, *, key_id: int | None = None, scope: str | None = None):
        super().__init__(message)
        self.key_id = key_id
        self.scope = scope


class UnknownKeyError(DecryptionError):
    """The token names a key id that the key store has never had.

    Raised before authentication, like `KeyDisabledError`: the data and the key store do
    not belong together (a wrong environment, another key store) or the token is forged.
    """

    def __init__(self, message: str, *, key_id: int) -> None:
        super().__init__(message)
        self.key_id = key_id


class KeyDisabledError(DecryptionError):
    """The key exists but is disabled; re-enabling it makes its values readable again."""

    def __init__(self, *, key_id: int, scope: str) -> None:
        super().__init__(f"key {key_id:#010x} of scope {scope!r} is disabled")
        self.key_id = key_id
        self.scope = scope


class KeyDestroyedError(DecryptionError):
    """The key was destroyed (crypto-shredded): the value can never be read again."""

    def __init__(self, *, key_id: int, scope: str) -> None:
        super().__init__(f"key {key_id:#010x} of scope {scope!r} was destroyed")
        self.key_id = key_id
        self.scope = scope


class AuthorizationError(SecureCustomerError, PermissionError):
    """An actor is not allowed to do what it asked."""


class AccessDenied(AuthorizationError):
    """The policy engine denied the request; ``decision`` says which rules and why."""

    def __init__(self, message: str, *, decision: object = None) -> None:
        super().__init__(message)
        self.decision = decision


class StepUpRequired(AuthorizationError):
    """The request is allowed only with a more recent MFA; ``max_age`` is how recent."""

    def __init__(self, message: str, *, decision: object = None, max_age: object = None) -> None:
        super().__init__(message)
        self.decision = decision
        self.max_age = max_age


class PolicyError(SecureCustomerError, ValueError):
    """A policy document cannot be loaded.

    ``source`` is the file (or ``None`` for text and dicts), ``rule`` the rule's id or
    ``rules[N]``, ``field`` the key that is wrong; any of them may be ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        rule: str | None = None,
        field: str | None = None,
    ) -> None:
        where = [part for part in (source, f"rule {rule!r}" if rule else None) if part]
        if field:
            where.append(f"field {field!r}")
        super().__init__(": ".join([*where, message]))
        self.source = source
        self.rule = rule
        self.field = field


class PolicyUsageError(PolicyError, UsageError):
    """The policy API was called with arguments of the wrong kind: one string where a
    collection of names belongs, a naive datetime, a guard naming a parameter its function
    lacks, a `Decision` tested as a bool. Also a `TypeError`, as such misuse was before."""


class AuditError(SecureCustomerError):
    """The audit trail could not record or verify events."""


class LegalHoldError(SecureCustomerError):
    """A legal hold forbids erasing or deleting a data subject's records.

    ``subject`` is the held subject's id as given; ``hold_ids`` the holds that block it.
    Nothing was changed when this is raised.
    """

    def __init__(self, message: str, *, subject: str, hold_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.subject = subject
        self.hold_ids = hold_ids


class AnonymizationError(SecureCustomerError, ValueError):
    """A transform cannot be applied to its input."""
