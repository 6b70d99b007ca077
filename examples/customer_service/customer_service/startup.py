"""First-run setup, and the keyring, audit trail and policy engine the app runs with."""

from __future__ import annotations

import sqlalchemy as sa
from securecustomer import Keyring, LocalKeyProvider
from securecustomer.audit import AuditTrail, SqlAuditSink
from securecustomer.exceptions import ConfigurationError
from securecustomer.policy import Policy, PolicyEngine
from securecustomer.privacy import LegalHolds, legal_hold_table
from securecustomer.sqlalchemy import SqlKeyStore

from customer_service.models import Base
from customer_service.settings import PREFIX, Settings


def create_engine(url: str, pool_size: int = 10) -> sa.Engine:
    # hide_parameters: a failed statement's values (plaintexts too) never reach a log.
    # At most pool_size connections; a request waits up to 30 s for one, then fails.
    return sa.create_engine(url, hide_parameters=True, pool_size=pool_size, max_overflow=0)


def first_run(settings: Settings) -> bool:
    """Create the master key file (mode 0600) unless it exists, and every table.

    Returns whether a key file was created. Safe to run again.
    """
    created = not settings.key_file.exists()
    if created:
        LocalKeyProvider.create_key_file(settings.key_file)
    data, keys = create_engine(settings.database_url), create_engine(settings.key_store_url)
    try:
        SqlKeyStore(keys).create()
        SqlAuditSink(data).create()
        Base.metadata.create_all(data)
        legal_hold_table(sa.MetaData()).create(data, checkfirst=True)  # its head: open_holds
    finally:
        data.dispose()
        keys.dispose()
    return created


def open_keyring(settings: Settings, key_engine: sa.Engine) -> Keyring:
    """The keyring over the master key file and the SQL key store."""
    provider = LocalKeyProvider.from_file(settings.key_file)  # refuses a file others can read
    return Keyring(provider, SqlKeyStore(key_engine)).load()


def open_trail(settings: Settings, engine: sa.Engine) -> AuditTrail:
    """The audit trail, in the application's own database.

    The sink writes through a small pool of its own (2 connections), made from *engine*'s:
    events are written even while every request holds one of the application's connections.
    """
    if not settings.audit_key:
        raise ConfigurationError(f"set {PREFIX}AUDIT_KEY: 32 random bytes or more, hex")
    return AuditTrail(SqlAuditSink(engine), key=settings.audit_key)


def open_holds(settings: Settings, engine: sa.Engine) -> LegalHolds:
    """The legal holds, in the application's own database, chained under a key derived
    from the audit key (a ledger derives keys of its own: the same secret is fine).

    The erasure endpoint checks them: a held customer is not erased (409).
    """
    if not settings.audit_key:
        raise ConfigurationError(f"set {PREFIX}AUDIT_KEY: 32 random bytes or more, hex")
    holds = LegalHolds(engine, key=settings.audit_key)
    holds.create()  # the chain's head, on the first start
    return holds


def load_policy(settings: Settings) -> PolicyEngine:
    return PolicyEngine(Policy.from_file(settings.policy_file))
