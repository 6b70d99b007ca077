"""The consent ledger and the legal holds are keyed chains: tampering fails closed.

Each test changes the table behind the ledger's back, with plain SQL, as someone with
write access to the application's database could, on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from models import T0, engine_for

from securecustomer.audit import KeyedChain
from securecustomer.exceptions import (
    AccessDenied,
    AuditError,
    ConfigurationError,
    LegalHoldError,
    UnpicklableError,
)
from securecustomer.policy import Outcome, Policy, PolicyEngine, Resource, Subject
from securecustomer.privacy import ConsentLedger, LegalHolds
from securecustomer.privacy._holds import UtcDateTime  # the column type of earlier tables

KEY = secrets.token_bytes(32)
CONSENTS = "securecustomer_consents"
HOLDS = "securecustomer_legal_holds"
POLICY = PolicyEngine(
    Policy.from_dict(
        {
            "version": 1,
            "roles": {"marketer": {}},
            "rules": [
                {
                    "id": "marketing",
                    "effect": "allow",
                    "roles": ["marketer"],
                    "actions": ["read", "share"],
                    "resources": ["customer"],
                    "purposes": ["marketing", "sale"],
                }
            ],
        }
    )
)
MARKETER = Subject("user-1", roles=["marketer"])


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def ledger(engine: sa.Engine) -> ConsentLedger:
    ledger = ConsentLedger(engine, key=KEY, clock=Clock())
    ledger.create()
    return ledger


@pytest.fixture
def holds(engine: sa.Engine) -> LegalHolds:
    holds = LegalHolds(engine, key=KEY, clock=Clock())
    holds.create()
    return holds


def sql(engine: sa.Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def denied(ledger: ConsentLedger, subject: int, purpose: str) -> None:
    """Every way of asking says no, and says why."""
    with pytest.raises(AuditError, match="does not verify"):
        ledger.permits(subject, purpose)
    decision = ledger.evaluate(
        POLICY,
        MARKETER,
        "read",
        Resource("customer", id=subject),
        data_subject=subject,
        purpose=purpose,
    )
    assert Outcome.DENY is decision.outcome
    assert "does not verify" in decision.reason
    with pytest.raises(AccessDenied):
        ledger.require(
            POLICY,
            MARKETER,
            "read",
            Resource("customer", id=subject),
            data_subject=subject,
            purpose=purpose,
        )
    with pytest.raises(AuditError, match="does not verify"):
        ledger.verify()


class TestConsentTampering:
    """A withdrawal cannot be turned back into consent behind the ledger's back."""

    def test_intact_ledger_verifies(self, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "marketing")
        ledger.opt_out(43)
        ledger.grant(44, "marketing")
        assert (False, False, True) == (
            ledger.permits(42, "marketing"),
            ledger.permits(43, "sale"),
            ledger.permits(44, "marketing"),
        )
        assert 5 == ledger.verify()

    def test_update_withdrawal_to_grant(self, engine: sa.Engine, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "marketing")
        ledger.grant(44, "marketing")
        sql(
            engine,
            "UPDATE securecustomer_consents SET granted = :t WHERE granted = :f",
            t=True,
            f=False,
        )
        denied(ledger, 42, "marketing")

    def test_delete_latest_withdrawal(self, engine: sa.Engine, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "marketing")
        ledger.grant(44, "marketing")  # the withdrawal is not the table's last row
        sql(
            engine,
            "DELETE FROM securecustomer_consents WHERE subject_id = '42' AND granted = :f",
            f=False,
        )
        denied(ledger, 42, "marketing")

    def test_delete_every_row_of_an_opt_out(self, engine: sa.Engine, ledger: ConsentLedger) -> None:
        ledger.opt_out(43)
        ledger.grant(44, "marketing")
        sql(engine, "DELETE FROM securecustomer_consents WHERE subject_id = '43'")  # its head too
        denied(ledger, 43, "sale")

    def test_move_withdrawal_to_another_subject(
        self, engine: sa.Engine, ledger: ConsentLedger
    ) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "marketing")
        ledger.grant(44, "marketing")
        sql(
            engine, "UPDATE securecustomer_consents SET subject_id = '' WHERE granted = :f", f=False
        )
        denied(ledger, 42, "marketing")

    def test_back_dated_grant(self, engine: sa.Engine, ledger: ConsentLedger) -> None:
        ledger.grant(42, "marketing")
        ledger.withdraw(42, "marketing")
        with engine.begin() as conn:
            row = dict(
                conn.execute(sa.text("SELECT * FROM securecustomer_consents WHERE seq = 2"))
                .mappings()
                .one()
            )
        row.update(id=None, granted=True, recorded_at=T0.replace(tzinfo=None), seq=3)
        del row["id"]
        table = sa.Table(CONSENTS, sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(table.insert().values(**row))
        denied(ledger, 42, "marketing")

    def test_wrong_key(self, engine: sa.Engine, ledger: ConsentLedger) -> None:
        ledger.withdraw(42, "marketing")
        other = ConsentLedger(engine, key=secrets.token_bytes(32))
        with pytest.raises(AuditError, match="does not verify"):
            other.permits(42, "marketing")

    def test_forget_keeps_the_chain(self, ledger: ConsentLedger) -> None:
        ledger.opt_out(43)
        ledger.grant(44, "marketing")
        assert 2 == ledger.forget(43)
        assert () == ledger.history(43)
        assert ledger.permits(44, "marketing")
        assert 3 == ledger.verify()
        ledger.grant(43, "marketing")  # a new start
        assert ledger.permits(43, "marketing")
        assert 4 == ledger.verify()


class TestHoldTampering:
    """A hold cannot be lifted behind the ledger's back: erasure is refused instead."""

    def test_intact_holds_verify(self, holds: LegalHolds) -> None:
        first = holds.place(7, matter="case 1")
        holds.place(8, matter="case 2")
        holds.release(first.id)
        assert frozenset({"8"}) == holds.held([7, 8, 9])
        assert 3 == holds.verify()

    def test_delete_hold(self, engine: sa.Engine, holds: LegalHolds) -> None:
        holds.place(7, matter="case 1")
        holds.place(8, matter="case 2")
        sql(engine, "DELETE FROM securecustomer_legal_holds WHERE subject_id = '7' AND seq > 0")
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.held([7])
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.active(7)

    def test_delete_every_row_of_a_hold(self, engine: sa.Engine, holds: LegalHolds) -> None:
        holds.place(7, matter="case 1")
        holds.place(8, matter="case 2")
        sql(engine, "DELETE FROM securecustomer_legal_holds WHERE subject_id = '7'")
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.held([7])

    def test_update_released_at(self, engine: sa.Engine, holds: LegalHolds) -> None:
        holds.place(7, matter="case 1")
        holds.place(8, matter="case 2")
        sql(
            engine,
            "UPDATE securecustomer_legal_holds SET released_at = placed_at WHERE subject_id = '7'",
        )
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.active(7)
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.all()

    def test_forged_release(self, engine: sa.Engine, holds: LegalHolds) -> None:
        hold = holds.place(7, matter="case 1")
        sql(
            engine,
            "INSERT INTO securecustomer_legal_holds (id, subject_id, matter, placed_at, "
            "released_at, releases, seq, prev, hash) "
            "VALUES ('f', '7', 'x', :at, :at, :hold, 2, :h, :h)",
            at=T0.replace(tzinfo=None),
            hold=hold.id,
            h="0" * 64,
        )
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.held([7])


class TestKeyAndMigration:
    """A ledger needs its key; a table of an earlier version is refused until migrated."""

    def test_key_required(self, engine: sa.Engine) -> None:
        with pytest.raises(ConfigurationError, match="needs key="):
            ConsentLedger(engine)
        with pytest.raises(ConfigurationError, match="needs key="):
            LegalHolds(engine)
        with pytest.raises(ConfigurationError, match="at least 32"):
            LegalHolds(engine, key=b"short")
        with pytest.raises(UnpicklableError):
            LegalHolds(engine, key=KEY).__getstate__()
        assert "label='x'" in repr(KeyedChain(KEY, "x"))

    def test_migrate_tables_of_an_earlier_version(self, engine: sa.Engine) -> None:
        # The tables as the previous release created them, with its rows.
        old = sa.MetaData()
        sa.Table(
            CONSENTS,
            old,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("subject_id", sa.String(255), nullable=False, index=True),
            sa.Column("purpose", sa.String(100), nullable=False),
            sa.Column("granted", sa.Boolean, nullable=False),
            sa.Column("recorded_at", UtcDateTime(), nullable=False),
            sa.Column("source", sa.String(500), nullable=True),
        )
        sa.Table(
            HOLDS,
            old,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("subject_id", sa.String(255), nullable=False, index=True),
            sa.Column("matter", sa.String(500), nullable=False),
            sa.Column("placed_by", sa.String(255), nullable=True),
            sa.Column("placed_at", UtcDateTime(), nullable=False),
            sa.Column("released_at", UtcDateTime(), nullable=True),
        )
        old.create_all(engine)
        at = T0.replace(tzinfo=None)
        for granted in (True, False):
            sql(
                engine,
                "INSERT INTO securecustomer_consents (subject_id, purpose, granted, recorded_at) "
                "VALUES ('42', 'marketing', :g, :at)",
                g=granted,
                at=at,
            )
        sql(
            engine,
            "INSERT INTO securecustomer_legal_holds (id, subject_id, matter, placed_at) "
            "VALUES ('a1', '7', 'case', :at)",
            at=at,
        )
        sql(
            engine,
            "INSERT INTO securecustomer_legal_holds "
            "(id, subject_id, matter, placed_at, released_at) VALUES ('a2', '8', 'case', :at, :at)",
            at=at,
        )
        ledger = ConsentLedger(engine, key=KEY)
        holds = LegalHolds(engine, key=KEY)
        with pytest.raises(ConfigurationError, match=r"not chained .* migrate\(\)"):
            ledger.permits(42, "marketing")
        with pytest.raises(ConfigurationError, match=r"not chained .* migrate\(\)"):
            holds.held([7])

        assert (2, 2) == (ledger.migrate(), holds.migrate())
        assert (0, 0) == (ledger.migrate(), holds.migrate())  # once is enough

        assert not ledger.permits(42, "marketing")
        assert frozenset({"7"}) == holds.held([7, 8])
        assert (2, 2) == (ledger.verify(), holds.verify())
        ledger.grant(42, "marketing")
        assert ledger.permits(42, "marketing")
        sql(engine, "DELETE FROM securecustomer_legal_holds WHERE id = 'a1'")
        with pytest.raises(LegalHoldError, match="does not verify"):
            holds.held([7])
