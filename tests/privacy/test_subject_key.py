"""One canonical key per subject: holds, consents, erasure, retention, exports and audit
pseudonyms agree however the id is spelled, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from models import (
    LEDGER_KEY,
    T0,
    Models,
    engine_for,
    keyring_bound,
    make_models,
    memory_trail,
    populate,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.audit import AuditTrail
from securecustomer.exceptions import AuditError, ConfigurationError, LegalHoldError
from securecustomer.privacy import (
    NO_LEGAL_HOLDS,
    ConsentLedger,
    LegalHolds,
    RetentionRule,
    apply_retention,
    canonical_subject_key,
    erase_subject,
    export_subject,
    register_subject,
    rekey_subject_ids,
)
from securecustomer.privacy._holds import UtcDateTime  # the column type of earlier tables

ALICE = 7001
SPELLINGS = [f"0{ALICE}", f"{ALICE} ", f" {ALICE}", f"+{ALICE}", f"{ALICE // 10}_{ALICE % 10}"]
OWNER = uuid.UUID("0b7e6c1a-3f2d-4c5e-9a8b-1d2e3f4a5b6c")
UUID_SPELLINGS = [
    str(OWNER).upper(),
    OWNER.hex,
    "{" + str(OWNER) + "}",
    f"urn:uuid:{OWNER}",
]


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    yield from keyring_bound()


@pytest.fixture
def trail() -> AuditTrail:
    return memory_trail()


@pytest.fixture
def models(engine: sa.Engine, keyring: Keyring) -> Models:
    models = make_models()
    register_subject(models.customer, subject="id", erase="delete")
    register_subject(models.order, subject="customer_id", erase="delete", name="orders")
    models.create(engine)
    with Session(engine) as session:
        populate(models, session, ALICE)
    return models


@pytest.fixture
def devices(engine: sa.Engine, keyring: Keyring) -> type[Any]:
    """A model whose subject column is a UUID, one row of OWNER."""

    class Base(DeclarativeBase):
        pass

    class Device(Base):
        __tablename__ = "devices"
        id: Mapped[int] = mapped_column(primary_key=True)
        owner: Mapped[uuid.UUID] = mapped_column()
        created_at: Mapped[dt.datetime] = mapped_column(default=T0.replace(tzinfo=None))

    register_subject(Device, subject="owner", erase="delete")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Device(id=1, owner=OWNER))
        session.commit()
    return Device


def erase(engine: sa.Engine, chosen: list[type[Any]], subject: object, **kwargs: Any) -> Any:
    with Session(engine) as session:
        return erase_subject(session, subject, models=chosen, **kwargs)


class TestCanonicalKey:
    """Each subject id has one key; other spellings are refused, never stored."""

    @pytest.mark.parametrize(
        ("subject", "subject_type", "expected"),
        [
            (42, None, "42"),
            ("42", None, "42"),
            (-7, None, "-7"),
            ("-7", None, "-7"),
            ("0", None, "0"),
            ("42", int, "42"),
            (42, str, "42"),
            ("042", str, "042"),
            ("alice", None, "alice"),
            ("ALICE", str, "ALICE"),
            ("Zoë", None, "Zoë"),
            (OWNER, None, str(OWNER)),
            (str(OWNER), None, str(OWNER)),
            (OWNER, str, str(OWNER)),
            *[(spelling, uuid.UUID, str(OWNER)) for spelling in UUID_SPELLINGS],
        ],
    )
    def test_canonical(self, subject: object, subject_type: Any, expected: str) -> None:
        key = canonical_subject_key(subject, subject_type)
        assert expected == key
        assert key is canonical_subject_key(key, uuid.UUID)  # a key is taken as it is

    @pytest.mark.parametrize(
        ("subject", "subject_type", "message"),
        [
            *[(s, None, "reads as an int but is not spelled canonically") for s in SPELLINGS],
            ("-0", None, "reads as an int"),
            ("\u0664\u0662", None, "reads as an int"),  # Arabic-Indic digits: int() reads 42
            *[(s, None, "reads as a UUID but is not spelled canonically") for s in UUID_SPELLINGS],
            *[(s, int, "not a valid int") for s in [*SPELLINGS, "abc", "1e3"]],
            ("not-a-uuid", uuid.UUID, "not a valid UUID"),
            (f" {OWNER}", uuid.UUID, "not a valid UUID"),
            (OWNER, int, "of type UUID, not a valid int"),
            (42, uuid.UUID, "of type int, not a valid UUID"),
            ("bob ", None, "white space"),
            (" bob", str, "white space"),
            ("bo\nb", str, "control or format"),
            ("bo\u200bb", None, "control or format"),  # a zero-width space
            ("", None, "1 to 255"),
            ("x" * 256, str, "1 to 255"),
            (10**300, None, "1 to 255"),
            (None, None, "not None or a bool"),
            (True, int, "not None or a bool"),
            (4.2, None, "not float"),
            (b"42", None, "not bytes"),
        ],
    )
    def test_refused(self, subject: object, subject_type: Any, message: str) -> None:
        with pytest.raises(ConfigurationError, match=message) as raised:
            canonical_subject_key(subject, subject_type)
        if isinstance(subject, str) and len(subject.strip()) > 2:
            assert subject.strip() not in str(raised.value)  # never the id

    def test_bad_subject_type(self) -> None:
        with pytest.raises(ConfigurationError, match="subject_type must be"):
            canonical_subject_key(42, float)

    @given(st.integers(min_value=-(10**30), max_value=10**30))
    def test_int_and_its_text_share_a_key(self, n: int) -> None:
        assert str(n) == canonical_subject_key(n) == canonical_subject_key(str(n))
        assert str(n) == canonical_subject_key(str(n), int) == canonical_subject_key(n, str)

    @given(st.uuids())
    def test_uuid_spellings_share_a_key(self, value: uuid.UUID) -> None:
        key = canonical_subject_key(value)
        assert str(value) == key == canonical_subject_key(str(value))
        for spelling in (str(value).upper(), value.hex, "{" + str(value) + "}"):
            assert key == canonical_subject_key(spelling, uuid.UUID)


class TestHolds:
    """A hold stops the erasure and retention of its subject, whatever spelling placed it."""

    @pytest.mark.parametrize("spelling", [str(ALICE), *SPELLINGS])
    def test_hold_blocks_erasure_or_is_refused(
        self, engine: sa.Engine, models: Models, trail: AuditTrail, spelling: str
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        try:
            holds.place(spelling, matter="case 2026-17")
        except ConfigurationError:
            assert spelling != str(ALICE)  # the canonical spelling is accepted
            assert () == holds.all()  # nothing stored
            return
        with pytest.raises(LegalHoldError):
            erase(engine, [models.customer, models.order], ALICE, trail=trail, holds=holds)

    @pytest.mark.parametrize("spelling", UUID_SPELLINGS)
    def test_uuid_hold_any_case(
        self, engine: sa.Engine, devices: type[Any], trail: AuditTrail, spelling: str
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY, subject_type=uuid.UUID)
        holds.create()
        with pytest.raises(ConfigurationError, match="reads as a UUID"):
            LegalHolds(engine, key=LEDGER_KEY).place(spelling, matter="case")
        holds.place(spelling, matter="case")
        assert 1 == len(LegalHolds(engine, key=LEDGER_KEY).active(OWNER))
        with pytest.raises(LegalHoldError):
            erase(engine, [devices], OWNER, trail=trail, holds=holds)
        with pytest.raises(LegalHoldError):  # the id as an upper-case string, too
            erase(
                engine,
                [devices],
                str(OWNER).upper(),
                trail=trail,
                holds=LegalHolds(engine, key=LEDGER_KEY),
            )

    def test_retention_keeps_held_uuid_rows(
        self, engine: sa.Engine, devices: type[Any], trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY, subject_type=uuid.UUID)
        holds.create()
        holds.place(str(OWNER).upper(), matter="case")
        rule = RetentionRule(
            devices, age_column="created_at", max_age=dt.timedelta(days=1), subject="owner"
        )
        with Session(engine) as session:
            report = apply_retention(
                session, [rule], now=T0 + dt.timedelta(days=9), holds=holds, trail=trail
            )
        assert (1, 0) == (report.outcomes[0].held, report.outcomes[0].deleted)

    def test_retention_keeps_rows_whose_id_has_no_key(
        self, engine: sa.Engine, trail: AuditTrail
    ) -> None:
        """No hold can be checked for an id with white space at its ends: its row is kept."""

        class Base(DeclarativeBase):
            pass

        class Visit(Base):
            __tablename__ = "visits"
            id: Mapped[int] = mapped_column(primary_key=True)
            visitor: Mapped[str] = mapped_column(sa.String(20))
            at: Mapped[dt.datetime] = mapped_column(default=T0.replace(tzinfo=None))

        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Visit(id=1, visitor="bob "), Visit(id=2, visitor="ann")])
            session.commit()
        holds = LegalHolds(engine, key=LEDGER_KEY, subject_type=str)
        holds.create()
        rule = RetentionRule(
            Visit, age_column="at", max_age=dt.timedelta(days=1), subject="visitor"
        )
        with Session(engine) as session:
            report = apply_retention(
                session, [rule], now=T0 + dt.timedelta(days=9), holds=holds, trail=trail
            )
        assert (1, 1) == (report.outcomes[0].held, report.outcomes[0].deleted)
        with engine.connect() as conn:
            assert [1] == list(conn.execute(sa.text("SELECT id FROM visits")).scalars())

    def test_string_subject_column(self, engine: sa.Engine, trail: AuditTrail) -> None:
        """Zero-padded string ids are their own subjects, with subject_type=str."""

        class Base(DeclarativeBase):
            pass

        class Ticket(Base):
            __tablename__ = "tickets"
            id: Mapped[int] = mapped_column(primary_key=True)
            customer_no: Mapped[str] = mapped_column(sa.String(20))

        register_subject(Ticket, subject="customer_no", erase="delete")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all([Ticket(id=1, customer_no="00042"), Ticket(id=2, customer_no="42")])
            session.commit()
        holds = LegalHolds(engine, key=LEDGER_KEY, subject_type=str)
        holds.create()
        with pytest.raises(ConfigurationError, match="subject_type=str"):
            LegalHolds(engine, key=LEDGER_KEY).place("00042", matter="case")
        holds.place("00042", matter="case")
        with pytest.raises(LegalHoldError):
            erase(engine, [Ticket], "00042", trail=trail, holds=holds)
        with pytest.raises(LegalHoldError):  # the default holds see it too
            erase(engine, [Ticket], "00042", trail=trail, holds=LegalHolds(engine, key=LEDGER_KEY))
        assert {"Ticket": 1} == dict(erase(engine, [Ticket], 42, trail=trail, holds=holds).deleted)
        with pytest.raises(ConfigurationError, match=r"white space for Ticket\.customer_no"):
            erase(engine, [Ticket], "00042 ", trail=trail, holds=holds)


class TestConsents:
    """An opt-out is never missed because of how its id was spelled (it fails closed)."""

    @pytest.mark.parametrize("spelling", SPELLINGS)
    def test_opt_out_is_refused_or_honoured(self, engine: sa.Engine, spelling: str) -> None:
        ledger = ConsentLedger(engine, key=LEDGER_KEY)
        ledger.create()
        try:
            ledger.opt_out(spelling, source="Global Privacy Control")
        except ConfigurationError:
            assert () == ledger.history(ALICE)
            with pytest.raises(ConfigurationError):  # nor is a sale allowed under it
                ledger.permits(spelling, "sale")
            return
        assert not ledger.permits(ALICE, "sale")

    def test_typed_ledger_reads_spellings(self, engine: sa.Engine) -> None:
        ledger = ConsentLedger(engine, key=LEDGER_KEY, subject_type=uuid.UUID)
        ledger.create()
        ledger.opt_out(str(OWNER).upper())
        assert not ledger.permits(OWNER, "sale")
        assert not ConsentLedger(engine, key=LEDGER_KEY).permits(OWNER, "sale")
        assert {str(OWNER)} == {r.subject_id for r in ledger.history(OWNER.hex)}

    def test_export_and_erasure_find_consents_and_share_pseudonyms(
        self, engine: sa.Engine, devices: type[Any]
    ) -> None:
        trail = memory_trail()
        ledger = ConsentLedger(engine, key=LEDGER_KEY, subject_type=uuid.UUID, trail=trail)
        ledger.create()
        ledger.grant(str(OWNER).upper(), "marketing")
        with Session(engine) as session:
            exported = export_subject(
                session, str(OWNER).upper(), trail=trail, models=[devices], consents=ledger
            )
        assert str(OWNER) == exported.subject_id
        assert ["marketing"] == [c["purpose"] for c in exported.consents]
        receipt = erase(
            engine, [devices], OWNER.hex, trail=trail, consents=ledger, holds=NO_LEGAL_HOLDS
        )
        assert () == ledger.history(OWNER)
        subjects = {r.event["subject"] for r in trail.sink.records()}
        assert {trail.pseudonym(str(OWNER))} == subjects == {receipt.subject}

    def test_erasure_verifies_the_consents_under_the_key_first(
        self, engine: sa.Engine, devices: type[Any], trail: AuditTrail
    ) -> None:
        """A consent ledger that does not verify under the subject's canonical key stops
        the erasure before any row changes (forgetting it afterwards would fail)."""
        ledger = ConsentLedger(engine, key=LEDGER_KEY, subject_type=uuid.UUID)
        ledger.create()
        ledger.grant(str(OWNER).upper(), "marketing")
        ledger.withdraw(OWNER, "marketing")
        with engine.begin() as conn:  # the withdrawal deleted behind the ledger's back
            table = ledger.table
            conn.execute(sa.delete(table).where(table.c.seq == 2))
        with pytest.raises(AuditError, match="does not verify"):
            erase(engine, [devices], OWNER.hex, trail=trail, consents=ledger, holds=NO_LEGAL_HOLDS)
        with engine.connect() as conn:
            assert 1 == conn.execute(sa.text("SELECT COUNT(*) FROM devices")).scalar()


def previous_tables(engine: sa.Engine) -> tuple[sa.Table, sa.Table]:
    """The consent and hold tables as the release before the chain created them."""
    old = sa.MetaData()
    consents = sa.Table(
        "securecustomer_consents",
        old,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subject_id", sa.String(255), nullable=False, index=True),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(500), nullable=True),
    )
    holds = sa.Table(
        "securecustomer_legal_holds",
        old,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subject_id", sa.String(255), nullable=False, index=True),
        sa.Column("matter", sa.String(500), nullable=False),
        sa.Column("placed_by", sa.String(255), nullable=True),
        sa.Column("placed_at", UtcDateTime(), nullable=False),
        sa.Column("released_at", UtcDateTime(), nullable=True),
    )
    old.create_all(engine)
    return consents, holds


def stored_ids(engine: sa.Engine, table: sa.Table) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(table.c.subject_id).order_by(table.c.id)
        return list(conn.execute(query).scalars())


class TestRekey:
    """Tables of an earlier version (unchained, ids as given) are rekeyed, then chained by
    migrate(), which refuses ids that are not canonical; a chained table is never
    rewritten (its ids are chained content)."""

    def legacy(self, engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)

    def test_holds(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        _, table = previous_tables(engine)
        self.legacy(
            engine,
            table,
            [
                {"id": f"h{n}", "subject_id": s, "matter": "m", "placed_at": T0}
                for n, s in enumerate([f"0{ALICE}", f"{ALICE} ", str(ALICE), "8"])
            ],
        )
        holds = LegalHolds(engine, key=LEDGER_KEY)
        with pytest.raises(ConfigurationError, match=r"row h0: .*rekey_subject_ids"):
            holds.migrate()  # chained as they are, two holds would be missed for ever
        assert [f"0{ALICE}", f"{ALICE} ", str(ALICE), "8"] == stored_ids(engine, table)
        assert 2 == rekey_subject_ids(holds, int, dry_run=True)
        assert 2 == rekey_subject_ids(holds, int)
        assert 0 == rekey_subject_ids(holds, int)  # done: nothing left to move
        assert 4 == holds.migrate()
        assert 4 == holds.verify()
        assert 3 == len(holds.active(ALICE))
        assert 0 == rekey_subject_ids(holds, int)  # chained, every id canonical
        with pytest.raises(LegalHoldError):
            erase(engine, [models.customer, models.order], ALICE, trail=trail, holds=holds)

    def test_consents(self, engine: sa.Engine) -> None:
        table, _ = previous_tables(engine)
        self.legacy(
            engine,
            table,
            [
                {"subject_id": str(OWNER), "purpose": "sale", "granted": True}
                | {"recorded_at": T0, "source": "form"},
                *[
                    {"subject_id": str(OWNER).upper(), "purpose": p, "granted": False}
                    | {"recorded_at": T0 + dt.timedelta(days=1), "source": "GPC"}
                    for p in ("sale", "sharing")
                ],
            ],
        )
        ledger = ConsentLedger(engine, key=LEDGER_KEY, subject_type=uuid.UUID)
        with pytest.raises(ConfigurationError, match=r"row 2: .*rekey_subject_ids"):
            ledger.migrate()  # chained as it is, the opt-out would be missed for ever
        assert 2 == rekey_subject_ids(ledger, uuid.UUID)
        assert 3 == ledger.migrate()
        assert 3 == ledger.verify()
        assert not ledger.permits(OWNER, "sale")
        assert not ConsentLedger(engine, key=LEDGER_KEY).permits(OWNER, "sale")
        assert 3 == len(ledger.history(OWNER))

    @pytest.mark.parametrize(
        ("subject_type", "stored", "message"),
        [(int, "abc", "not a valid int"), (str, "bob ", "white space")],
    )
    def test_refuses_ids_without_a_key(
        self, engine: sa.Engine, subject_type: Any, stored: str, message: str
    ) -> None:
        _, table = previous_tables(engine)
        rows = [{"id": "a", "subject_id": "042", "matter": "m", "placed_at": T0}]
        rows.append({"id": "b", "subject_id": stored, "matter": "m", "placed_at": T0})
        self.legacy(engine, table, rows)
        holds = LegalHolds(engine, key=LEDGER_KEY, subject_type=subject_type)
        with pytest.raises(ConfigurationError, match=f"row b.*{message}"):
            rekey_subject_ids(holds, subject_type)
        assert ["042", stored] == stored_ids(engine, table)  # nothing changed
        with pytest.raises(ConfigurationError, match=r"row [ab]: "):
            holds.migrate()

    def test_chained_table_is_not_rewritten(self, engine: sa.Engine) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        hold = holds.place(ALICE, matter="case")
        assert 0 == rekey_subject_ids(holds, int)
        with engine.begin() as conn:  # a spelling only a write behind the ledger can store
            conn.execute(
                sa.update(holds.table)
                .where(holds.table.c.id == hold.id)
                .values(subject_id=f"0{ALICE}")
            )
        with pytest.raises(ConfigurationError, match=f"row {hold.id}: .*chained"):
            rekey_subject_ids(holds, int)
        with engine.connect() as conn:
            query = sa.select(holds.table.c.subject_id).where(holds.table.c.id == hold.id)
            assert f"0{ALICE}" == conn.execute(query).scalar()

    def test_refuses_other_stores(self, engine: sa.Engine) -> None:
        with pytest.raises(ConfigurationError, match="LegalHolds or a ConsentLedger"):
            rekey_subject_ids(engine, int)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="subject_type must be int, str"):
            rekey_subject_ids(LegalHolds(engine, key=LEDGER_KEY), None)  # type: ignore[arg-type]
