"""Anonymization and PII detection: masking, keyed pseudonyms, FF3-1 format-preserving
encryption, generalization, date shifting, noise, k-anonymity, and a per-field Anonymizer.

Example:
    ```python
    import os

    from securecustomer.anonymize import Anonymizer, Pseudonymizer, mask_email

    key = bytes.fromhex(os.environ["ANALYTICS_PSEUDONYM_KEY"])   # 16 random bytes or more
    rows = [{"customer_id": 1001, "email": "ada@example.com", "notes": "VIP"}]
    plan = Anonymizer({
        "email": mask_email,
        "customer_id": Pseudonymizer(key, domain="customer"),
        "notes": "drop",
    })
    shareable = [plan.apply(row) for row in rows]
    ```
"""

from securecustomer.anonymize._anonymizer import DROP, Anonymizer, Rule
from securecustomer.anonymize._detect import (
    CARD,
    DATE_OF_BIRTH,
    EMAIL,
    IBAN,
    IP_ADDRESS,
    PHONE,
    PII_KINDS,
    SSN,
    ColumnFinding,
    PiiMatch,
    Recognizer,
    detect_pii,
    scan_columns,
)
from securecustomer.anonymize._ff3 import DIGITS, FF3Cipher
from securecustomer.anonymize._generalize import (
    Hierarchy,
    age_band,
    generalize_date,
    generalize_number,
    laplace_noise,
    shift_date,
    truncate_postcode,
)
from securecustomer.anonymize._kanon import (
    HierarchySpec,
    KAnonymityResult,
    LeveledHierarchy,
    enforce_k_anonymity,
    k_anonymity,
    l_diversity,
)
from securecustomer.anonymize._mask import REDACTED, mask, mask_card, mask_email, mask_phone, redact
from securecustomer.anonymize._pseudonym import MIN_KEY_SIZE, Pseudonymizer, pseudonymize

__all__ = [
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
]
