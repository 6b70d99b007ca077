"""Subject export and erasure across registered models, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from models import (
    LEDGER_KEY,
    Models,
    actions,
    engine_for,
    keyring_bound,
    make_models,
    memory_trail,
    populate,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.audit import AuditTrail, default_trail
from securecustomer.crypto import KeyState
from securecustomer.exceptions import ConfigurationError, KeyDestroyedError, LegalHoldError
from securecustomer.privacy import (
    NO_LEGAL_HOLDS,
    ConsentLedger,
    LegalHolds,
    erase_subject,
    export_subject,
    register_subject,
    registered_subject_models,
)
from securecustomer.privacy._subjects import jsonable
from securecustomer.sqlalchemy import ERASED, EncryptedString, encrypt_rows

ALICE, BOB = 7001, 7002


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    yield from keyring_bound()


@pytest.fixture
def trail() -> AuditTrail:
    return memory_trail()


def registered(on_destroyed: str = "raise") -> Models:
    """Customers anonymized (name replaced, email nulled), orders shredded."""
    models = make_models(on_destroyed)
    register_subject(
        models.customer,
        subject="id",
        erase="anonymize",
        anonymize={"name": lambda _: "erased", "country": None},
    )
    register_subject(models.order, subject="customer_id", erase="shred", name="orders")
    return models


@pytest.fixture
def models(engine: sa.Engine, keyring: Keyring) -> Models:
    models = registered()
    models.create(engine)
    with Session(engine) as session:
        populate(models, session, ALICE, BOB)
    return models


def export(engine: sa.Engine, models: Models, trail: AuditTrail, subject: object) -> Any:
    with Session(engine) as session:
        return export_subject(session, subject, trail=trail, models=[models.customer, models.order])


def erase(engine: sa.Engine, models: Models, trail: AuditTrail, **kwargs: Any) -> Any:
    kwargs.setdefault("holds", NO_LEGAL_HOLDS)
    with Session(engine) as session:
        return erase_subject(
            session, ALICE, trail=trail, models=[models.customer, models.order], **kwargs
        )


def _boom(value: object) -> object:
    raise RuntimeError("boom")


def events_text(trail: AuditTrail) -> str:
    return "\n".join(json.dumps(r.event) for r in trail.sink.records())


class TestRegister:
    """register_subject refuses what it could not erase, naming the attribute."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"subject": "nope"}, "no column attribute 'nope'"),
            ({"subject": "email"}, "must be a plain column"),
            ({"subject": "id", "erase": "shred"}, "subject-scoped"),
            ({"subject": "id", "anonymize": {"name": None}}, 'erase="anonymize"'),
            ({"subject": "id", "erase": "burn"}, "erase must be one of"),
            ({"subject": "id", "erase": "anonymize", "anonymize": {"x": None}}, "'x'"),
            ({"subject": "id", "erase": "anonymize", "anonymize": {"email_index": None}}, "blind"),
            ({"subject": "id", "export": ["missing"]}, "'missing'"),
        ],
    )
    def test_refused(self, kwargs: dict[str, Any], message: str) -> None:
        models = make_models()
        with pytest.raises(ConfigurationError, match=message):
            register_subject(models.customer, **kwargs)
        assert models.customer not in {m.model for m in registered_subject_models()}

    def test_not_null_column_named(self) -> None:
        models = make_models()
        with pytest.raises(ConfigurationError, match=r"Order\.address is NOT NULL"):
            register_subject(models.order, subject="customer_id", erase="anonymize")

    def test_subject_key_column_not_anonymized(self) -> None:
        models = make_models()
        with pytest.raises(ConfigurationError, match=r"Order\.address is encrypted under"):
            register_subject(
                models.order,
                subject="customer_id",
                erase="anonymize",
                anonymize={"address": lambda _: "x"},
            )

    def test_second_registration(self) -> None:
        models = make_models()
        found = register_subject(models.customer, subject="id")
        assert found is registered_subject_models()[-1]
        assert "Customer" == found.name
        with pytest.raises(ConfigurationError, match="already registered"):
            register_subject(models.customer, subject="id")

    def test_unregistered_model_in_models(self, trail: AuditTrail) -> None:
        models = make_models()
        with pytest.raises(ConfigurationError, match="Order is not registered"):
            export_subject(Session(), 1, trail=trail, models=[models.order])

    def test_not_mapped_and_mismatched_subject(self) -> None:
        with pytest.raises(ConfigurationError, match="not a mapped class"):
            register_subject(int, subject="id")
        models = make_models()
        with pytest.raises(ConfigurationError, match="subject in 'customer_id', not 'id'"):
            register_subject(models.order, subject="id")
        with pytest.raises(ConfigurationError, match="collection of attribute names"):
            register_subject(models.order, subject="customer_id", export="address")

    def test_names_unique_per_call(self, trail: AuditTrail) -> None:
        first, second = make_models(), make_models()
        register_subject(first.customer, subject="id")
        register_subject(second.customer, subject="id")
        with pytest.raises(ConfigurationError, match="two models are named Customer"):
            export_subject(Session(), 1, trail=trail, models=[first.customer, second.customer])


class TestJsonable:
    """Export values become JSON values as SubjectExport documents."""

    def test_values(self) -> None:
        class Tier(enum.Enum):
            GOLD = "gold"

        value = {
            "when": dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC),
            "day": dt.date(2026, 1, 2),
            "amount": Decimal("1.50"),
            "id": uuid.UUID(int=1),
            "raw": b"\x00\xff",
            "tier": Tier.GOLD,
            "list": (1, None, 2.5, True),
        }
        assert {
            "when": "2026-01-02T03:04:00+00:00",
            "day": "2026-01-02",
            "amount": "1.50",
            "id": "00000000-0000-0000-0000-000000000001",
            "raw": "AP8=",
            "tier": "gold",
            "list": [1, None, 2.5, True],
        } == jsonable(value)


class TestExport:
    """An export holds every row about the subject, decrypted, and is audited."""

    def test_decrypted_across_models(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        found = export(engine, models, trail, ALICE)
        data = json.loads(found.to_json())
        customer = data["records"]["Customer"]
        assert [
            {
                "id": ALICE,
                "email": f"c{ALICE}@example.com",
                "name": f"Customer {ALICE}",
                "country": "DE",
                "created_at": "2026-01-01T00:00:00",
                "anonymized": False,
            }
        ] == customer
        orders = data["records"]["orders"]
        expected = {(f"{n} Main St {ALICE}", f"TRK-{ALICE}-{n}", f"{ALICE}.{n}5") for n in (0, 1)}
        assert expected == {(o["address"], o["tracking"], o["total"]) for o in orders}
        assert {"2026-01-02"} == {o["placed_on"] for o in orders}
        assert all(len(o["id"]) == 36 and o["customer_id"] == ALICE for o in orders)
        assert "tracking_index" not in orders[0]
        assert {} == data["erased"]
        assert str(ALICE) == found.subject_id
        assert str(ALICE) not in repr(found)

    def test_audit_event(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        export(engine, models, trail, ALICE)
        (record,) = list(trail.sink.records())
        assert "subject.export" == record.event["action"]
        assert trail.pseudonym(ALICE) == record.event["subject"]
        assert {"Customer": 1, "orders": 2} == record.event["extra"]["rows"]
        assert "orders.address" in record.event["fields"]
        assert str(ALICE) not in events_text(trail)

    def test_unbound_trail(self, engine: sa.Engine, models: Models) -> None:
        with Session(engine) as session, pytest.raises(ConfigurationError, match="no audit"):
            export_subject(session, ALICE, models=[models.customer])

    def test_default_trail_and_consents(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        ledger = ConsentLedger(engine, key=LEDGER_KEY)
        ledger.create()
        ledger.grant(ALICE, "marketing", source="signup")
        default_trail.bind(trail)
        try:
            with Session(engine) as session:
                found = export_subject(
                    session, str(ALICE), models=[models.customer], consents=ledger
                )
        finally:
            default_trail.bind(None)
        assert [("marketing", True, "signup")] == [
            (c["purpose"], c["granted"], c["source"]) for c in found.consents
        ]
        assert 1 == len(found.records["Customer"])
        assert ["subject.export"] == actions(trail)


class TestErase:
    """Erasure anonymizes, shreds or deletes as configured, once, and keeps the trail whole."""

    def test_anonymize_and_shred(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        bob_before = export(engine, models, trail, BOB).records
        receipt = erase(engine, models, trail, reason="ticket 12")

        assert {"Customer": 1} == dict(receipt.anonymized)
        assert {"orders": 2} == dict(receipt.shredded)
        assert 3 == receipt.blind_indexes_purged  # one email index, two tracking indexes
        scope = keyring.store.data_keys(f"subject:{ALICE}")
        assert [r.key_id for r in scope] == list(receipt.keys_destroyed)
        assert {KeyState.DESTROYED} == {r.state for r in scope}
        assert not receipt.already_erased
        assert trail.pseudonym(ALICE) == receipt.subject

        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM customers WHERE id = :i"), {"i": ALICE}).one()
            assert (None, None, None) == (row.email, row.email_index, row.country)
            indexes = conn.execute(
                sa.text("SELECT tracking_index FROM orders WHERE customer_id = :i"), {"i": ALICE}
            ).scalars()
            assert [None, None] == list(indexes)
        with Session(engine) as session:
            customer = session.get(models.customer, ALICE)
            assert customer is not None
            assert "erased" == customer.name
            with pytest.raises(KeyDestroyedError):
                session.scalars(
                    sa.select(models.order).where(models.order.customer_id == ALICE)
                ).all()

        after = export(engine, models, trail, ALICE)
        assert {"orders": ("address", "tracking", "total")} == dict(after.erased)
        assert [None, None] == [o["address"] for o in after.records["orders"]]
        assert "erased" == after.records["Customer"][0]["name"]
        assert bob_before == export(engine, models, trail, BOB).records

    def test_erased_values_read_as_erased(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        models = registered(on_destroyed="erased")
        models.create(engine)
        with Session(engine) as session:
            populate(models, session, ALICE)
        erase(engine, models, trail)
        with Session(engine) as session:
            orders = session.scalars(sa.select(models.order)).all()
            assert [ERASED, ERASED] == [o.address for o in orders]

    def test_idempotent_and_trail_verifies(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        first = erase(engine, models, trail)
        second = erase(engine, models, trail)
        assert second.already_erased
        assert () == second.keys_destroyed
        assert 0 == second.blind_indexes_purged
        assert {"Customer": 0} == dict(second.anonymized)
        assert first.event_id != second.event_id
        assert ["subject.erase", "subject.erase"] == actions(trail)
        assert trail.verify().ok
        text = events_text(trail)
        assert str(ALICE) not in text
        assert "erased" not in text.replace("already_erased", "")  # no data values

    def test_delete_mode(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        receipt = erase(engine, models, trail, mode="delete")
        assert {"Customer": 1, "orders": 2} == dict(receipt.deleted)
        assert 3 == receipt.blind_indexes_purged
        assert receipt.keys_destroyed
        with engine.connect() as conn:
            counts = conn.execute(
                sa.text("SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id")
            ).all()
            assert [(BOB, 2)] == [tuple(row) for row in counts]
            assert [BOB] == list(conn.execute(sa.text("SELECT id FROM customers")).scalars())
        assert {"Customer": (), "orders": ()} == dict(export(engine, models, trail, ALICE).records)
        assert erase(engine, models, trail, mode="delete").already_erased

    def test_legal_hold_blocks(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        hold = holds.place(ALICE, matter="case 2026-17")
        before = export(engine, models, trail, ALICE).records
        with pytest.raises(LegalHoldError) as caught:
            erase(engine, models, trail, holds=holds)
        assert (hold.id,) == caught.value.hold_ids
        assert str(ALICE) not in str(caught.value)
        assert before == export(engine, models, trail, ALICE).records
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}
        assert ["subject.export", "subject.export"] == actions(trail)
        holds.release(hold.id)
        assert not erase(engine, models, trail, holds=holds).already_erased

    def test_holds_required(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        """Omitting holds= is refused before anything changes: never a silent "no holds"."""
        before = export(engine, models, trail, ALICE).records
        with Session(engine) as session, pytest.raises(ConfigurationError, match="needs holds="):
            erase_subject(session, ALICE, trail=trail, models=[models.customer, models.order])
        assert before == export(engine, models, trail, ALICE).records
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}
        assert ["subject.export", "subject.export"] == actions(trail)

    def test_holds_that_do_not_verify_block(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        """A hold deleted behind the ledger's back still blocks: the holds do not verify."""
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(ALICE, matter="case 2026-17")
        holds.place(BOB, matter="case 2026-18")
        with engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM securecustomer_legal_holds WHERE subject_id = :s"),
                {"s": str(ALICE)},
            )
        before = export(engine, models, trail, ALICE).records
        with pytest.raises(LegalHoldError, match="does not verify"):
            erase(engine, models, trail, holds=holds)
        assert before == export(engine, models, trail, ALICE).records
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}

    def test_consents_forgotten(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        ledger = ConsentLedger(engine, key=LEDGER_KEY)
        ledger.create()
        ledger.grant(ALICE, "marketing")
        ledger.grant(BOB, "marketing")
        erase(engine, models, trail, consents=ledger)
        assert () == ledger.history(ALICE)
        assert 1 == len(ledger.history(BOB))
        (record,) = list(trail.sink.records())
        assert 1 == record.event["extra"]["consents_forgotten"]

    def test_failed_transform_changes_nothing(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        models = make_models()
        register_subject(
            models.customer, subject="id", erase="anonymize", anonymize={"name": _boom}
        )
        register_subject(models.order, subject="customer_id", erase="shred")
        models.create(engine)
        with Session(engine) as session:
            populate(models, session, ALICE)
        before = export(engine, models, trail, ALICE).records
        with pytest.raises(RuntimeError, match="boom"):
            erase(engine, models, trail)
        assert before == export(engine, models, trail, ALICE).records
        with engine.connect() as conn:
            indexes = conn.execute(sa.text("SELECT tracking_index FROM orders")).scalars()
            assert [False, False] == [i is None for i in indexes]
        assert ["subject.export", "subject.export"] == actions(trail)

    def test_subject_id_of_the_wrong_type(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        with pytest.raises(ConfigurationError, match=r"not a valid int for Customer\.id"):
            export(engine, models, trail, "seven")
        assert 1 == len(export(engine, models, trail, str(ALICE)).records["Customer"])
        with pytest.raises(ConfigurationError, match="mode must be one of"):
            erase(engine, models, trail, mode="burn")

    def test_refused_before_anything_changes(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        with pytest.raises(ConfigurationError, match='mode="shred" needs a subject-scoped'):
            erase(engine, models, trail, mode="shred")
        with Session(engine) as session, pytest.raises(ConfigurationError, match="no audit"):
            erase_subject(session, ALICE, holds=NO_LEGAL_HOLDS, models=[models.customer])
        assert [] == actions(trail)
        assert (
            "Customer 7001" == export(engine, models, trail, ALICE).records["Customer"][0]["name"]
        )


class TestSubjectIdentity:
    """A subject id matches its own rows, keys and holds only, in every form it is given."""

    def test_non_canonical_int_refused(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(ALICE, matter="case 2026-17")
        for alias in (f"0{ALICE}", f" {ALICE}", f"{ALICE // 10}_{ALICE % 10}", f"+{ALICE}"):
            with pytest.raises(ConfigurationError, match=r"not a valid int for Customer\.id"):
                export(engine, models, trail, alias)
            with Session(engine) as session, pytest.raises(ConfigurationError):
                erase_subject(session, alias, trail=trail, holds=holds, models=[models.order])
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}
        assert 2 == len(export(engine, models, trail, ALICE).records["orders"])

    def test_uuid_subject_scope_is_canonical(self, engine: sa.Engine, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Device(Base):
            __tablename__ = "devices"
            id: Mapped[int] = mapped_column(primary_key=True)
            owner: Mapped[uuid.UUID] = mapped_column()
            serial: Mapped[str] = mapped_column(EncryptedString())

        encrypt_rows(Device, row="id", subject="owner")
        register_subject(Device, subject="owner", erase="shred")
        Base.metadata.create_all(engine)
        owner = uuid.uuid4()
        with Session(engine) as session:
            session.add(Device(id=1, owner=owner, serial="SN-1"))
            session.commit()
        trail = memory_trail()
        with Session(engine) as session:
            receipt = erase_subject(
                session, str(owner).upper(), holds=NO_LEGAL_HOLDS, trail=trail, models=[Device]
            )
        assert receipt.keys_destroyed
        assert {KeyState.DESTROYED} == {
            r.state for r in keyring.store.data_keys(f"subject:{owner}")
        }

    def test_collation_never_matches_another_subject(self, engine: sa.Engine) -> None:
        class Base(DeclarativeBase):
            pass

        collation = "NOCASE" if engine.dialect.name == "sqlite" else None

        class Note(Base):
            __tablename__ = "notes"
            id: Mapped[int] = mapped_column(primary_key=True)
            handle: Mapped[str] = mapped_column(sa.String(50, collation=collation))
            body: Mapped[str] = mapped_column(sa.String(100))

        register_subject(Note, subject="handle", erase="delete")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                [
                    Note(id=1, handle="alice", body="mine"),
                    Note(id=2, handle="ALICE", body="someone else's"),
                    Note(id=3, handle="alice ", body="someone else's too"),
                ]
            )
            session.commit()
        trail = memory_trail()
        with Session(engine) as session:
            exported = export_subject(session, "alice", trail=trail, models=[Note])
            assert [{"id": 1, "handle": "alice", "body": "mine"}] == list(exported.records["Note"])
            receipt = erase_subject(
                session, "alice", holds=NO_LEGAL_HOLDS, trail=trail, models=[Note]
            )
        assert {"Note": 1} == dict(receipt.deleted)
        with engine.connect() as conn:
            assert [2, 3] == sorted(conn.execute(sa.text("SELECT id FROM notes")).scalars())

    def test_composite_key_and_string_subject_column(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        class Base(DeclarativeBase):
            pass

        class Visit(Base):
            __tablename__ = "visits"
            site: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
            seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
            visitor: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
            page: Mapped[str] = mapped_column(sa.String(50))

        register_subject(Visit, subject="visitor", erase="delete")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add_all(
                [
                    Visit(site="a", seq=1, visitor=str(ALICE), page="/"),
                    Visit(site="b", seq=1, visitor=str(ALICE), page="/x"),
                    Visit(site="a", seq=2, visitor=str(BOB), page="/"),
                    Visit(site="b", seq=2, visitor=None, page="/y"),
                ]
            )
            session.commit()
        chosen = [models.customer, models.order, Visit]
        with Session(engine) as session:
            exported = export_subject(session, ALICE, trail=trail, models=chosen)
            assert ["/", "/x"] == [r["page"] for r in exported.records["Visit"]]
            receipt = erase_subject(
                session, ALICE, holds=NO_LEGAL_HOLDS, trail=trail, models=chosen
            )
        assert 2 == receipt.deleted["Visit"]
        with engine.connect() as conn:
            left = conn.execute(sa.text("SELECT site, seq FROM visits ORDER BY site, seq"))
            assert [("a", 2), ("b", 2)] == [tuple(r) for r in left]

    def test_empty_export_list_exports_no_attribute(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail
    ) -> None:
        models = make_models()
        register_subject(models.customer, subject="id", export=())
        models.create(engine)
        with Session(engine) as session:
            populate(models, session, ALICE)
            exported = export_subject(session, ALICE, trail=trail, models=[models.customer])
        assert ({},) == exported.records["Customer"]


class TestHalfDone:
    """A key destruction that fails after the rows are committed is finished by a re-run."""

    def test_rerun_destroys_the_key(
        self,
        engine: sa.Engine,
        models: Models,
        keyring: Keyring,
        trail: AuditTrail,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        def down(scope: str) -> list[int]:
            raise RuntimeError("key store down")

        with monkeypatch.context() as patch:
            patch.setattr(keyring, "destroy", down)
            with pytest.raises(RuntimeError, match="key store down"):
                erase(engine, models, trail)
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}
        receipt = erase(engine, models, trail)
        assert not receipt.already_erased
        assert receipt.keys_destroyed
        assert {"orders": 2} == dict(receipt.shredded)
        assert {KeyState.DESTROYED} == {
            r.state for r in keyring.store.data_keys(f"subject:{ALICE}")
        }
        assert erase(engine, models, trail).already_erased


class TestHoldRace:
    """A legal hold placed while an erasure runs stops it before anything is committed."""

    def test_hold_placed_during_erasure(
        self, engine: sa.Engine, models: Models, keyring: Keyring, trail: AuditTrail
    ) -> None:
        class LateHolds(LegalHolds):
            """Places a hold right after the first check has found none."""

            def active(self, subject_id: object) -> Any:
                found = super().active(subject_id)
                if not self.all():
                    self.place(subject_id, matter="late case")
                return found

        holds = LateHolds(engine, key=LEDGER_KEY)
        holds.create()
        before = export(engine, models, trail, ALICE).records
        with pytest.raises(LegalHoldError):
            erase(engine, models, trail, holds=holds)
        assert before == export(engine, models, trail, ALICE).records
        assert {KeyState.ACTIVE} == {r.state for r in keyring.store.data_keys(f"subject:{ALICE}")}


class TestCallersSession:
    """After erase_subject, the caller's own session returns none of the erased values,
    even with ``expire_on_commit=False``: the erased objects are expired (a reload shows
    the erased values) or, when their rows were deleted, expired and expunged."""

    PLAINTEXTS = (f"c{ALICE}@example.com", f"Customer {ALICE}", f"0 Main St {ALICE}", "DE")

    def load(self, session: Session, models: Models, subject: int) -> tuple[Any, list[Any]]:
        customer = session.get(models.customer, subject)
        orders = session.scalars(
            sa.select(models.order).where(models.order.customer_id == subject)
        ).all()
        assert customer is not None
        assert f"Customer {subject}" == customer.name
        assert 2 == len(orders)
        assert all(o.address.endswith(f"Main St {subject}") for o in orders)
        return customer, list(orders)

    def held(self, *objects: Any) -> str:
        """Everything the objects hold in memory, as text."""
        return repr([vars(o) for o in objects])

    @pytest.mark.parametrize("on_destroyed", ["raise", "erased"])
    def test_anonymized_and_shredded_objects_expired(
        self, engine: sa.Engine, keyring: Keyring, trail: AuditTrail, on_destroyed: str
    ) -> None:
        models = registered(on_destroyed)
        models.create(engine)
        with Session(engine) as session:
            populate(models, session, ALICE, BOB)
        with Session(engine, expire_on_commit=False) as session:
            alice, orders = self.load(session, models, ALICE)
            bob, _ = self.load(session, models, BOB)
            erase_subject(
                session,
                ALICE,
                holds=NO_LEGAL_HOLDS,
                trail=trail,
                models=[models.customer, models.order],
            )

            held = self.held(alice, *orders)
            assert [] == [p for p in self.PLAINTEXTS if p in held]
            assert "erased" == alice.name  # reloaded: the anonymized values
            assert (None, None) == (alice.email, alice.country)
            if on_destroyed == "erased":
                assert [ERASED, ERASED] == [o.address for o in orders]
            else:
                with pytest.raises(KeyDestroyedError):
                    orders[0].address  # noqa: B018 - the reload is the test
            assert f"c{BOB}@example.com" == vars(bob)["email"]  # another subject stays loaded

    def test_deleted_objects_expunged(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        with Session(engine, expire_on_commit=False) as session:
            alice, orders = self.load(session, models, ALICE)
            bob, _ = self.load(session, models, BOB)
            erase_subject(
                session,
                ALICE,
                holds=NO_LEGAL_HOLDS,
                trail=trail,
                mode="delete",
                models=[models.customer, models.order],
            )
            held = self.held(alice, *orders)
            assert [] == [p for p in self.PLAINTEXTS if p in held]
            for obj in (alice, *orders):
                assert obj not in session
            with pytest.raises(sa.orm.exc.DetachedInstanceError):
                alice.name  # noqa: B018 - nothing left to return
            assert bob in session
            assert session.get(models.customer, ALICE) is None

    def test_other_sessions_are_not_reached(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        """What docs/privacy.md says: another session's objects keep what they loaded
        until that session expires them and starts a new transaction (MariaDB's REPEATABLE
        READ shows a transaction its first snapshot)."""
        with Session(engine, expire_on_commit=False) as other:
            alice, _ = self.load(other, models, ALICE)
            erase(engine, models, trail)
            assert f"Customer {ALICE}" == alice.name  # not reachable from erase_subject
            other.rollback()  # expires every object and ends the transaction
            assert "erased" == alice.name
