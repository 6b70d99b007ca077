"""Configuration, read from the environment (or built directly in tests)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

POLICY_FILE = Path(__file__).with_name("policy.toml")
PREFIX = "CUSTOMER_SERVICE_"


@dataclass(frozen=True)
class Settings:
    """Where the data, the keys and the policy are, and the audit trail's secret key.

    - ``database_url``: customers, notes and the audit trail.
    - ``key_store_url``: the wrapped data keys. On SQLite, a file of its own (one writer
      per file); on PostgreSQL or MariaDB it can be the same database.
    - ``key_file``: the master key (mode 0600), created by ``python -m customer_service init``.
    - ``audit_key``: 32 bytes or more; whoever holds it can rewrite the audit chain (and
      the legal holds, chained under a key derived from it).
    - ``pool_size``: connections the application keeps to ``database_url``, at most (the
      audit trail's sink keeps up to 2 more of its own).
    - ``max_body_bytes``: the largest request body accepted; a larger one gets ``413``.
    """

    database_url: str = "sqlite:///customer_service.db"
    key_store_url: str = "sqlite:///customer_service_keys.db"
    key_file: Path = Path("master.key")
    audit_key: bytes = field(default=b"", repr=False)
    policy_file: Path = POLICY_FILE
    pool_size: int = 10
    max_body_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """``CUSTOMER_SERVICE_DATABASE_URL``, ``..._KEY_STORE_URL``, ``..._KEY_FILE``,
        ``..._AUDIT_KEY`` (hex), ``..._POLICY_FILE``, ``..._POOL_SIZE`` and
        ``..._MAX_BODY_BYTES``; unset ones keep their defaults."""
        default = cls()
        audit_key = environ.get(PREFIX + "AUDIT_KEY", "")
        return cls(
            database_url=environ.get(PREFIX + "DATABASE_URL", default.database_url),
            key_store_url=environ.get(PREFIX + "KEY_STORE_URL", default.key_store_url),
            key_file=Path(environ.get(PREFIX + "KEY_FILE", default.key_file)),
            audit_key=bytes.fromhex(audit_key),
            policy_file=Path(environ.get(PREFIX + "POLICY_FILE", default.policy_file)),
            pool_size=int(environ.get(PREFIX + "POOL_SIZE", default.pool_size)),
            max_body_bytes=int(environ.get(PREFIX + "MAX_BODY_BYTES", default.max_body_bytes)),
        )
