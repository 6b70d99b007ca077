"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "securecustomer": ["Context", "FieldCipher", "Keyring", "LocalKeyProvider", "__version__"],
    "securecustomer.anonymize": [
        "Anonymizer",
        "CARD",
        "ColumnFinding",
        "DATE_OF_BIRTH",
        "DIGITS",
        "DROP",
        "EMAIL",
        "FF3Cipher",
        "Hierarchy",
        "HierarchySpec",
        "IBAN",
        "IP_ADDRESS",
        "KAnonymityResult",
        "LeveledHierarchy",
        "MIN_KEY_SIZE",
        "PHONE",
        "PII_KINDS",
        "PiiMatch",
        "Pseudonymizer",
        "REDACTED",
        "Recognizer",
        "Rule",
        "SSN",
        "age_band",
        "detect_pii",
        "enforce_k_anonymity",
        "generalize_date",
        "generalize_number",
        "k_anonymity",
        "l_diversity",
        "laplace_noise",
        "mask",
        "mask_card",
        "mask_email",
        "mask_phone",
        "pseudonymize",
        "redact",
        "scan_columns",
        "shift_date",
        "truncate_postcode",
    ],
    "securecustomer.audit": [
        "AccessMonitor",
        "Actor",
        "Alert",
        "AuditEvent",
        "AuditSink",
        "AuditTrail",
        "BulkExportRule",
        "Checkpoint",
        "DenialBurstRule",
        "FirstAccessRule",
        "JsonlAuditSink",
        "Linker",
        "MemoryAuditSink",
        "MonitorRule",
        "OutsideHoursRule",
        "Record",
        "SCHEMA_VERSION",
        "SqlAuditSink",
        "StructlogAuditSink",
        "TrailSlot",
        "VerificationReport",
        "VolumeRule",
        "actor",
        "audit_table",
        "audited",
        "current_actor",
        "default_trail",
        "make_redact_pii",
        "propagate",
        "propagate_to_threads",
        "records_from_lines",
        "redact_pii",
    ],
    "securecustomer.crypto": [
        "Context",
        "DataKey",
        "FORMAT_VERSION",
        "FieldCipher",
        "KeySet",
        "KeySource",
        "KeyState",
        "Value",
    ],
    "securecustomer.keys": [
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
    ],
    "securecustomer.policy": [
        "AccessRequest",
        "AccessReview",
        "Decision",
        "DecisionChange",
        "Explanation",
        "Finding",
        "Grant",
        "Outcome",
        "Policy",
        "PolicyEngine",
        "Resource",
        "Rule",
        "Step",
        "Subject",
        "apply",
        "parse_duration",
    ],
    "securecustomer.exceptions": [
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
        "PolicyError",
        "SecureCustomerError",
        "StepUpRequired",
        "UnsupportedQueryError",
        "UnsupportedValueError",
    ],
    "securecustomer.hazmat": [
        "StaticKeySource",
        "decrypt_with_key",
        "encrypt_with_nonce",
        "field_cipher",
    ],
    "securecustomer.cli": ["main"],
    "securecustomer.testing": ["memory_keyring"],
    "securecustomer.sqlalchemy": [
        "BlindIndex",
        "ERASED",
        "EncryptColumnReport",
        "Encrypted",
        "EncryptedBytes",
        "EncryptedDate",
        "EncryptedDateTime",
        "EncryptedInteger",
        "EncryptedJSON",
        "EncryptedNumeric",
        "EncryptedString",
        "EncryptedText",
        "EncryptedUUID",
        "FailedValue",
        "IndexPlan",
        "KeyringSlot",
        "Normalizer",
        "ReencryptReport",
        "RowEncryption",
        "Sealed",
        "SqlKeyStore",
        "asearch",
        "blind_match",
        "casefold",
        "compose",
        "confirm_matches",
        "default_keyring",
        "digits_only",
        "encrypt_column",
        "encrypt_rows",
        "nfkc",
        "normalize_email",
        "normalize_phone",
        "plan_blind_index",
        "reencrypt",
        "reindex",
        "render_item",
        "row_resource",
        "search",
        "strip",
        "swap_columns",
    ],
    "securecustomer.typing": ["KeyProvider", "KeySource", "KeyStore", "Value"],
}


class TestAll:
    """Each package's __all__ is sorted, importable and exactly the expected names."""

    @pytest.mark.parametrize("module", sorted(EXPECTED))
    def test_pinned(self, module: str) -> None:
        mod = importlib.import_module(module)
        assert EXPECTED[module] == list(mod.__all__)
        assert sorted(mod.__all__) == list(mod.__all__)
        for name in mod.__all__:
            assert hasattr(mod, name), name

    def test_fixed_names_from_the_issue(self) -> None:
        """Names other code imports: they must never move."""
        from securecustomer import Keyring, LocalKeyProvider  # noqa: F401
        from securecustomer.crypto import FieldCipher  # noqa: F401
        from securecustomer.exceptions import (  # noqa: F401
            ConfigurationError,
            DecryptionError,
            KeyDestroyedError,
            KeyNotFoundError,
            SecureCustomerError,
        )
        from securecustomer.keys import FileKeyStore, KeyProvider, MemoryKeyStore  # noqa: F401

    def test_testing_keyring_works(self) -> None:
        from securecustomer import Context
        from securecustomer.testing import memory_keyring

        cipher = memory_keyring().cipher("customers.email")
        ctx = Context("customers", "email")
        token = cipher.encrypt("ada@example.com", context=ctx)
        assert b"ada" not in token
        assert "ada@example.com" == cipher.decrypt(token, context=ctx)

    def test_typed(self) -> None:
        from importlib.resources import files

        assert files("securecustomer").joinpath("py.typed").is_file()
