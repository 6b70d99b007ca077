"""Compliance workflows: data inventory, subject access and erasure, consent, retention,
incident scope and a risk report, built from the library's other parts.

Example:
    ```python
    from securecustomer.privacy import (
        DataInventory, classify, erase_subject, export_subject, register_subject,
    )

    class Customer(Base):
        __tablename__ = "customers"
        id: Mapped[int] = mapped_column(primary_key=True)
        email: Mapped[str] = mapped_column(EncryptedString(), info=classify("contact"))

    register_subject(Customer, subject="id", erase="delete")
    print(DataInventory.from_metadata(Base.metadata).to_markdown())
    with Session(engine) as session:
        print(export_subject(session, 42, trail=trail).to_json())
        erase_subject(session, 42, trail=trail, holds=holds)
    ```
"""

from securecustomer.privacy._assess import RiskReport, assess
from securecustomer.privacy._breach import NOTIFICATION_WINDOW, BreachScope, breach_scope
from securecustomer.privacy._classify import (
    CATEGORIES,
    INFO_KEY,
    Classification,
    Sensitivity,
    classification_of,
    classify,
)
from securecustomer.privacy._consent import (
    OPT_OUT_PURPOSES,
    ConsentLedger,
    ConsentRecord,
    consent_table,
)
from securecustomer.privacy._emergency import KeyCompromiseResponse, respond_to_key_compromise
from securecustomer.privacy._erase import ErasureReceipt, erase_subject
from securecustomer.privacy._export import SubjectExport, export_subject
from securecustomer.privacy._holds import (
    NO_LEGAL_HOLDS,
    LegalHold,
    LegalHolds,
    NoLegalHolds,
    legal_hold_table,
)
from securecustomer.privacy._inventory import ColumnEntry, DataInventory, RiskFinding, Severity
from securecustomer.privacy._rekey import rekey_subject_ids
from securecustomer.privacy._retention import (
    RetentionReport,
    RetentionRule,
    RuleOutcome,
    apply_retention,
)
from securecustomer.privacy._subject_key import canonical_subject_key
from securecustomer.privacy._subjects import (
    ErasureMode,
    SubjectModel,
    register_subject,
    registered_subject_models,
)

__all__ = [
    "BreachScope",
    "CATEGORIES",
    "Classification",
    "ColumnEntry",
    "ConsentLedger",
    "ConsentRecord",
    "DataInventory",
    "ErasureMode",
    "ErasureReceipt",
    "INFO_KEY",
    "KeyCompromiseResponse",
    "LegalHold",
    "LegalHolds",
    "NOTIFICATION_WINDOW",
    "NO_LEGAL_HOLDS",
    "NoLegalHolds",
    "OPT_OUT_PURPOSES",
    "RetentionReport",
    "RetentionRule",
    "RiskFinding",
    "RiskReport",
    "RuleOutcome",
    "Sensitivity",
    "Severity",
    "SubjectExport",
    "SubjectModel",
    "apply_retention",
    "assess",
    "breach_scope",
    "canonical_subject_key",
    "classification_of",
    "classify",
    "consent_table",
    "erase_subject",
    "export_subject",
    "legal_hold_table",
    "register_subject",
    "registered_subject_models",
    "rekey_subject_ids",
    "respond_to_key_compromise",
]
