"""The exception tree: one root, branches by what the caller can do, built-in bases."""

from __future__ import annotations

import pytest

from securecustomer import exceptions as exc


class TestTree:
    """Every error descends from SecureCustomerError and the built-in that fits."""

    @pytest.mark.parametrize("name", exc.__all__)
    def test_root(self, name: str) -> None:
        assert issubclass(getattr(exc, name), exc.SecureCustomerError)

    @pytest.mark.parametrize(
        ("child", "parents"),
        [
            (exc.ConfigurationError, (ValueError,)),
            (exc.UnsupportedValueError, (TypeError,)),
            (exc.KeyNotFoundError, (exc.KeyManagementError, LookupError)),
            (exc.UnknownKeyError, (exc.DecryptionError,)),
            (exc.UnpicklableError, (TypeError,)),
            (exc.UsageError, (TypeError,)),
            (exc.RecordNotFoundError, (KeyError,)),
            (exc.KeyDestroyedError, (exc.DecryptionError,)),
            (exc.KeyDisabledError, (exc.DecryptionError,)),
            (exc.KeyUnwrapError, (exc.KeyProviderError,)),
            (exc.KeyProviderUnavailable, (exc.KeyProviderError,)),
            (exc.KeyProviderAccessDenied, (exc.KeyProviderError,)),
            (exc.KeyProviderError, (exc.KeyManagementError,)),
            (exc.AccessDenied, (exc.AuthorizationError, PermissionError)),
            (exc.PolicyError, (ValueError,)),
            (exc.PolicyUsageError, (exc.PolicyError, ValueError, TypeError)),
        ],
    )
    def test_bases(self, child: type, parents: tuple[type, ...]) -> None:
        assert all(issubclass(child, parent) for parent in parents)

    def test_docstring_draws_every_class(self) -> None:
        doc = exc.__doc__ or ""
        missing = [name for name in exc.__all__ if name not in doc]
        assert [] == missing

    def test_key_not_found_is_not_a_decryption_error(self) -> None:
        """An administrator's lookup failure is never caught as a bad token."""
        assert not issubclass(exc.KeyNotFoundError, exc.DecryptionError)
        assert not issubclass(exc.UnknownKeyError, exc.KeyManagementError)

    def test_record_not_found_message_not_quoted(self) -> None:
        message = "no legal hold with id 'h1'"
        assert message == str(exc.RecordNotFoundError(message))

    def test_structured_attributes(self) -> None:
        error = exc.KeyDestroyedError(key_id=0x1234, scope="subject:1")
        assert (0x1234, "subject:1") == (error.key_id, error.scope)
        assert "key 0x00001234 of scope 'subject:1' was destroyed" == str(error)
        assert "the value could not be decrypted" == str(exc.DecryptionError())
