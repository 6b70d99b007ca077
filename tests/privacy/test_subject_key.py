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
from models import T0, Models, engine_for, keyring_bound, make_models, memory_trail, populate
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.audit import AuditTrail
from securecustomer.exceptions import ConfigurationError, LegalHoldError
from securecustomer.privacy import (
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
        holds = LegalHolds(engine)
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
        holds = LegalHolds(engine, subject_type=uuid.UUID)
        holds.create()
        with pytest.raises(ConfigurationError, match="reads as a UUID"):
            LegalHolds(engine).place(spelling, matter="case")
        holds.place(spelling, matter="case")
        assert 1 == len(LegalHolds(engine).active(OWNER))
        with pytest.raises(LegalHoldError):
            erase(engine, [devices], OWNER, trail=trail, holds=holds)
        with pytest.raises(LegalHoldError):  # the id as an upper-case string, too
            erase(engine, [devices], str(OWNER).upper(), trail=trail, holds=LegalHolds(engine))

    def test_retention_keeps_held_uuid_rows(
        self, engine: sa.Engine, devices: type[Any], trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, subject_type=uuid.UUID)
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
        holds = LegalHolds(engine, subject_type=str)
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
        holds = LegalHolds(engine, subject_type=str)
        holds.create()
        with pytest.raises(ConfigurationError, match="subject_type=str"):
            LegalHolds(engine).place("00042", matter="case")
        holds.place("00042", matter="case")
        with pytest.raises(LegalHoldError):
            erase(engine, [Ticket], "00042", trail=trail, holds=holds)
        with pytest.raises(LegalHoldError):  # the default holds see it too
            erase(engine, [Ticket], "00042", trail=trail, holds=LegalHolds(engine))
        assert {"Ticket": 1} == dict(erase(engine, [Ticket], 42, trail=trail, holds=holds).deleted)
        with pytest.raises(ConfigurationError, match=r"white space for Ticket\.customer_no"):
            erase(engine, [Ticket], "00042 ", trail=trail, holds=holds)


class TestConsents:
    """An opt-out is never missed because of how its id was spelled (it fails closed)."""

    @pytest.mark.parametrize("spelling", SPELLINGS)
    def test_opt_out_is_refused_or_honoured(self, engine: sa.Engine, spelling: str) -> None:
        ledger = ConsentLedger(engine)
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
        ledger = ConsentLedger(engine, subject_type=uuid.UUID)
        ledger.create()
        ledger.opt_out(str(OWNER).upper())
        assert not ledger.permits(OWNER, "sale")
        assert not ConsentLedger(engine).permits(OWNER, "sale")
        assert {str(OWNER)} == {r.subject_id for r in ledger.history(OWNER.hex)}

    def test_export_and_erasure_find_consents_and_share_pseudonyms(
        self, engine: sa.Engine, devices: type[Any]
    ) -> None:
        trail = memory_trail()
        ledger = ConsentLedger(engine, subject_type=uuid.UUID, trail=trail)
        ledger.create()
        ledger.grant(str(OWNER).upper(), "marketing")
        with Session(engine) as session:
            exported = export_subject(
                session, str(OWNER).upper(), trail=trail, models=[devices], consents=ledger
            )
        assert str(OWNER) == exported.subject_id
        assert ["marketing"] == [c["purpose"] for c in exported.consents]
        receipt = erase(engine, [devices], OWNER.hex, trail=trail, consents=ledger)
        assert () == ledger.history(OWNER)
        subjects = {r.event["subject"] for r in trail.sink.records()}
        assert {trail.pseudonym(str(OWNER))} == subjects == {receipt.subject}


class TestRekey:
    """rekey_subject_ids moves holds and consents stored under other spellings to their
    canonical key, or refuses and changes nothing."""

    def legacy(self, engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)

    def test_holds(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        holds = LegalHolds(engine)
        holds.create()
        self.legacy(
            engine,
            holds.table,
            [
                {"id": f"h{n}", "subject_id": s, "matter": "m", "placed_at": T0}
                for n, s in enumerate([f"0{ALICE}", f"{ALICE} ", str(ALICE), "8"])
            ],
        )
        assert 1 == len(holds.active(ALICE))  # only the canonical one is seen
        assert 2 == rekey_subject_ids(holds, int, dry_run=True)
        assert 1 == len(holds.active(ALICE))
        assert 2 == rekey_subject_ids(holds, int)
        assert 3 == len(holds.active(ALICE))
        assert 0 == rekey_subject_ids(holds, int)  # done: nothing left to move
        with pytest.raises(LegalHoldError):
            erase(engine, [models.customer, models.order], ALICE, trail=trail, holds=holds)

    def test_consents(self, engine: sa.Engine) -> None:
        ledger = ConsentLedger(engine)
        ledger.create()
        ledger.grant(str(OWNER), "sale")
        self.legacy(
            engine,
            ledger.table,
            [
                {"subject_id": str(OWNER).upper(), "purpose": p, "granted": False}
                | {"recorded_at": T0 + dt.timedelta(days=1), "source": "GPC"}
                for p in ("sale", "sharing")
            ],
        )
        assert ledger.permits(OWNER, "sale")  # the opt-out is missed before the migration
        assert 2 == rekey_subject_ids(ledger, uuid.UUID)
        assert not ledger.permits(OWNER, "sale")
        assert 3 == len(ledger.history(OWNER))

    @pytest.mark.parametrize(
        ("subject_type", "stored", "message"),
        [(int, "abc", "not a valid int"), (str, "bob ", "white space")],
    )
    def test_refuses_ids_without_a_key(
        self, engine: sa.Engine, subject_type: Any, stored: str, message: str
    ) -> None:
        holds = LegalHolds(engine)
        holds.create()
        rows = [{"id": "a", "subject_id": "042", "matter": "m", "placed_at": T0}]
        rows.append({"id": "b", "subject_id": stored, "matter": "m", "placed_at": T0})
        self.legacy(engine, holds.table, rows)
        with pytest.raises(ConfigurationError, match=f"row b.*{message}"):
            rekey_subject_ids(holds, subject_type)
        assert ["042", stored] == [h.subject_id for h in holds.all()]  # nothing changed

    def test_refuses_other_stores(self, engine: sa.Engine) -> None:
        with pytest.raises(ConfigurationError, match="LegalHolds or a ConsentLedger"):
            rekey_subject_ids(engine, int)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="subject_type must be int, str"):
            rekey_subject_ids(LegalHolds(engine), None)  # type: ignore[arg-type]
