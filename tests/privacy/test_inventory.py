"""The data inventory: entries, findings, sampling on SQLite, key ages, JSON and Markdown."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.exceptions import ConfigurationError
from securecustomer.keys import MemoryKeyStore
from securecustomer.privacy import (
    ColumnEntry,
    DataInventory,
    RiskFinding,
    Sensitivity,
    classify,
)
from securecustomer.sqlalchemy import BlindIndex, EncryptedString, encrypt_rows

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SECRET = "zed.secret@example.org"


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "inv_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(
        EncryptedString(),
        info=classify("contact", purposes=["service", "billing"], retention="P2Y"),
    )
    email_index: Mapped[bytes] = mapped_column(BlindIndex("email", size=8))
    ssn: Mapped[str | None] = mapped_column(info=classify("government_id", retention="P1Y"))
    card: Mapped[str | None] = mapped_column(
        EncryptedString(deterministic=True), info=classify("financial", retention="P1Y")
    )
    tier: Mapped[str | None] = mapped_column(info=classify("other", sensitivity="public"))
    loyalty: Mapped[str | None] = mapped_column(info=classify("behavioral"))
    token: Mapped[str | None] = mapped_column(EncryptedString())
    phone: Mapped[str | None]
    billing_email: Mapped[str | None]
    notes: Mapped[str | None]
    comment: Mapped[str | None]
    birth_date: Mapped[dt.date | None]


class Order(Base):
    __tablename__ = "inv_orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int]
    address: Mapped[str] = mapped_column(
        EncryptedString(), info=classify("location", purposes=["delivery"], retention="P6M")
    )


encrypt_rows(Order, subject="customer_id", subject_prefix="customer:")


def codes(inventory: DataInventory) -> set[tuple[str, str, str]]:
    return {(f.severity, f.code, f.where) for f in inventory.findings}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """A SQLite database with the tables, plaintext values written through Core."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'inventory.db'}")
    Base.metadata.create_all(engine)
    customers = sa.Table("inv_customers", sa.MetaData(), autoload_with=engine)  # plain types
    rows: list[dict[str, str | None]] = [
        {"billing_email": "ann@example.com", "notes": f"reach me at {SECRET}", "comment": "ok"},
        {"billing_email": "bob@example.com", "notes": "no preference", "comment": "fine"},
        {"billing_email": None, "notes": "call on weekdays", "comment": None},
    ]
    with engine.begin() as connection:
        connection.execute(
            customers.insert(),
            [
                {"id": n, "email": b"x", "email_index": b"y", "token": b"z", **row}
                for n, row in enumerate(rows)
            ],
        )
    yield engine
    engine.dispose()


class TestEntries:
    """Every classified column is an entry with its protection; others are not."""

    def test_encrypted_with_blind_index(self) -> None:
        expected = ColumnEntry(
            table="inv_customers",
            column="email",
            category="contact",
            sensitivity=Sensitivity.CONFIDENTIAL,
            purposes=("service", "billing"),
            retention=dt.timedelta(days=730),
            encrypted=True,
            deterministic=False,
            blind_indexes=("email_index",),
            key_scope="inv_customers.email",
        )
        inventory = DataInventory.from_metadata(Base.metadata, now=T0)
        assert expected == inventory.entry("inv_customers", "email")

    def test_plaintext_and_deterministic(self) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, now=T0)
        ssn = inventory.entry("inv_customers", "ssn")
        card = inventory.entry("inv_customers", "card")
        assert (False, None, Sensitivity.RESTRICTED) == (
            ssn.encrypted,
            ssn.key_scope,
            ssn.sensitivity,
        )
        assert (True, True, "inv_customers.card") == (
            card.encrypted,
            card.deterministic,
            card.key_scope,
        )

    def test_subject_scope(self) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, now=T0)
        assert "customer:{customer_id}" == inventory.entry("inv_orders", "address").key_scope

    def test_order_and_unclassified(self) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, now=T0, controller="Acme")
        expected = [
            ("inv_customers", "email"),
            ("inv_customers", "ssn"),
            ("inv_customers", "card"),
            ("inv_customers", "tier"),
            ("inv_customers", "loyalty"),
            ("inv_orders", "address"),
        ]
        assert expected == [(e.table, e.column) for e in inventory.entries]
        assert ("Acme", T0) == (inventory.controller, inventory.generated_at)
        with pytest.raises(KeyError, match=r"inv_customers\.phone is not a classified column"):
            inventory.entry("inv_customers", "phone")


class TestSchemaFindings:
    """Findings from the schema alone, each present only when its condition holds."""

    def test_findings(self) -> None:
        expected = {
            ("high", "unencrypted-restricted", "inv_customers.ssn"),
            ("medium", "unencrypted-confidential", "inv_customers.loyalty"),
            ("medium", "unclassified-pii", "inv_customers.phone"),
            ("medium", "unclassified-pii", "inv_customers.billing_email"),
            ("medium", "unclassified-pii", "inv_customers.birth_date"),
            ("low", "deterministic-restricted", "inv_customers.card"),
            ("low", "no-retention", "inv_customers.loyalty"),
            ("low", "unclassified-encrypted", "inv_customers.token"),
        }
        assert expected == codes(DataInventory.from_metadata(Base.metadata, now=T0))

    def test_sorted_high_medium_low(self) -> None:
        findings = DataInventory.from_metadata(Base.metadata, now=T0).findings
        ranks = [("high", "medium", "low").index(f.severity) for f in findings]
        assert sorted(ranks) == ranks

    def test_well_protected_schema_has_none(self) -> None:
        metadata = sa.MetaData()
        sa.Table(
            "clean",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("ssn", EncryptedString(), info=classify("government_id", retention="P1Y")),
            sa.Column("product_name", sa.String),
            sa.Column("tier", sa.String, info=classify("other", sensitivity="public")),
        )
        assert () == DataInventory.from_metadata(metadata, now=T0).findings

    def test_naive_now(self) -> None:
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            DataInventory.from_metadata(Base.metadata, now=dt.datetime(2026, 1, 1))

    @pytest.mark.parametrize("share", [0, -0.5, 1.5])
    def test_bad_min_pii_share(self, share: float) -> None:
        with pytest.raises(ConfigurationError, match="min_pii_share"):
            DataInventory.from_metadata(Base.metadata, min_pii_share=share)

    @pytest.mark.parametrize("sample_size", [0, -1, 1.5])
    def test_bad_sample_size(self, sample_size: int) -> None:
        with pytest.raises(ConfigurationError, match="sample_size"):
            DataInventory.from_metadata(Base.metadata, sample_size=sample_size)


class TestSampling:
    """With a database, unclassified plaintext columns are sampled; values never leak."""

    def test_sampled_pii(self, engine: sa.Engine) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, bind=engine, now=T0)
        found = codes(inventory)
        assert ("high", "unclassified-pii", "inv_customers.billing_email") in found
        assert ("high", "unclassified-pii", "inv_customers.notes") in found
        assert ("medium", "unclassified-pii", "inv_customers.billing_email") not in found
        assert ("medium", "unclassified-pii", "inv_customers.phone") in found  # no values
        assert not any(where == "inv_customers.comment" for _, _, where in found)

    def test_message_names_kinds_and_shares(self, engine: sa.Engine) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, bind=engine, now=T0)
        (notes,) = [f for f in inventory.findings if f.where == "inv_customers.notes"]
        expected = (
            "not classified, but of 3 sampled values it holds email in 33%: classify it and "
            "store it encrypted"
        )
        assert expected == notes.message

    def test_min_share(self, engine: sa.Engine) -> None:
        inventory = DataInventory.from_metadata(
            Base.metadata, bind=engine, now=T0, min_pii_share=0.5
        )
        assert ("high", "unclassified-pii", "inv_customers.notes") not in codes(inventory)

    def test_reads_only_unclassified_plaintext(self, engine: sa.Engine) -> None:
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        DataInventory.from_metadata(Base.metadata, bind=engine, sample_size=5, now=T0)
        assert all(s.lstrip().upper().startswith("SELECT") for s in statements)
        sampled = {s.split("SELECT", 1)[1].split("FROM")[0].strip() for s in statements}
        expected = {
            f"inv_customers.{name}" for name in ("phone", "billing_email", "notes", "comment")
        }
        assert expected == sampled
        assert all("LIMIT" in s for s in statements)

    def test_connection_bind(self, engine: sa.Engine) -> None:
        with engine.connect() as connection:
            inventory = DataInventory.from_metadata(Base.metadata, bind=connection, now=T0)
        assert ("high", "unclassified-pii", "inv_customers.notes") in codes(inventory)

    def test_no_value_in_any_output(self, engine: sa.Engine) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, bind=engine, now=T0)
        outputs = [inventory.to_json(), inventory.to_markdown(), repr(inventory)]
        for secret in (SECRET, "ann@example.com", "bob@example.com", "weekdays"):
            assert not any(secret in output for output in outputs)


class Clock:
    """The wall clock a keyring stamps new keys with."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyring(clock: Clock) -> Keyring:
    keyring = Keyring(LocalKeyProvider.generate(), MemoryKeyStore(), now=clock).load()
    keyring.cipher("inv_customers.email")
    keyring.cipher("customer:42")
    keyring.cipher("customer:43")
    return keyring


def key_id(keyring: Keyring, scope: str) -> int:
    (status,) = [s for s in keyring.status() if s.scope == scope and s.state.value == "active"]
    assert status.key_id is not None
    return status.key_id


class TestKeyAges:
    """Active keys past the maximum age are findings; young or rotated ones are not."""

    def test_overdue(self, keyring: Keyring) -> None:
        now = T0 + dt.timedelta(days=400)
        inventory = DataInventory.from_metadata(Base.metadata, keyring=keyring, now=now)
        keys = {(f.code, f.where): f.message for f in inventory.findings if "rotation" in f.code}
        email_key = f"key 0x{key_id(keyring, 'inv_customers.email'):08x}"
        expected = {
            ("root-rotation-overdue", "root v1"): (
                "the active root key is 400 days old (limit 365 days): rotate it with "
                "Keyring.rotate_root()"
            ),
            ("key-rotation-overdue", email_key): (
                "the active data key of scope 'inv_customers.email' (v1) is 400 days old "
                "(limit 365 days): rotate it with Keyring.rotate('inv_customers.email') and "
                "re-encrypt the old rows"
            ),
            ("key-rotation-overdue", "scopes customer:*"): (
                "2 active subject data keys under 'customer:' are older than 365 days: rotate "
                "them (Keyring.rotate per scope) and re-encrypt the subjects' rows"
            ),
        }
        assert expected == keys
        assert "customer:42" not in inventory.to_json()  # a key id may hold "42" by chance

    def test_young_keys(self, keyring: Keyring) -> None:
        now = T0 + dt.timedelta(days=30)
        inventory = DataInventory.from_metadata(Base.metadata, keyring=keyring, now=now)
        assert not any("rotation" in f.code for f in inventory.findings)

    def test_rotated_keys(self, keyring: Keyring, clock: Clock) -> None:
        clock.now = T0 + dt.timedelta(days=300)
        keyring.rotate_root()
        keyring.rotate("inv_customers.email")
        inventory = DataInventory.from_metadata(
            Base.metadata, keyring=keyring, now=T0 + dt.timedelta(days=400)
        )
        found = {(f.code, f.where) for f in inventory.findings if "rotation" in f.code}
        assert {("key-rotation-overdue", "scopes customer:*")} == found


class TestRendering:
    """JSON with stable keys and Markdown in the shape of an article 30 record."""

    def test_json(self) -> None:
        inventory = DataInventory.from_metadata(Base.metadata, now=T0, controller="Acme")
        data = json.loads(inventory.to_json())
        assert ["controller", "entries", "findings", "generated_at"] == list(data)
        assert "2026-01-01T00:00:00+00:00" == data["generated_at"]
        expected = {
            "blind_indexes": ["email_index"],
            "category": "contact",
            "column": "email",
            "description": None,
            "deterministic": False,
            "encrypted": True,
            "key_scope": "inv_customers.email",
            "purposes": ["service", "billing"],
            "retention": "P730D",
            "sensitivity": "confidential",
            "table": "inv_customers",
        }
        assert expected == data["entries"][0]
        assert inventory.findings[0].to_dict() == data["findings"][0]
        assert inventory.to_dict() == data
        assert "\n" not in inventory.to_json(indent=None)

    def test_markdown(self) -> None:
        text = DataInventory.from_metadata(Base.metadata, now=T0, controller="Acme").to_markdown()
        for line in (
            "# Record of processing activities (GDPR article 30)",
            "- Controller: Acme",
            "- Generated at: 2026-01-01T00:00:00+00:00",
            "## Purpose: billing",
            "## Purpose: delivery",
            "Categories of personal data: location",
            "| inv_customers | email | contact | confidential | P730D | encrypted (AES-256-GCM), "
            "key scope inv_customers.email; blind index email_index |",
            "| inv_orders | address | location | confidential | P180D | encrypted (AES-256-GCM), "
            "key scope customer:{customer_id} |",
            "## No stated purpose",
            "| inv_customers | ssn | government_id | restricted | P365D | none (stored in "
            "plaintext) |",
            "## Findings",
            "| high | unencrypted-restricted | inv_customers.ssn | restricted government_id data "
            "is stored in plaintext: declare the column with an Encrypted type |",
        ):
            assert line in text.splitlines()
        assert text.index("## Purpose: billing") < text.index("## Purpose: service")
        assert text.index("## Purpose: service") < text.index("## No stated purpose")

    def test_retention_below_a_day(self) -> None:
        metadata = sa.MetaData()
        info = classify("behavioral", retention=dt.timedelta(hours=36))
        sa.Table("sessions", metadata, sa.Column("ip", EncryptedString(), info=info))
        inventory = DataInventory.from_metadata(metadata, now=T0)
        assert "PT129600S" == inventory.entries[0].to_dict()["retention"]

    def test_markdown_without_findings_or_controller(self) -> None:
        inventory = DataInventory((), (), T0)
        assert "- Controller: not stated" in inventory.to_markdown()
        assert "No findings." in inventory.to_markdown()

    def test_markdown_escapes_cells(self) -> None:
        finding = RiskFinding("low", "x", "a|b", "one\ntwo")
        text = DataInventory((), (finding,), T0).to_markdown()
        assert "| low | x | a\\|b | one two |" in text.splitlines()


class _Trimmed(sa.types.TypeDecorator[str]):
    """A plaintext string type of the application's own (not an Encrypted one)."""

    impl = sa.String(200)
    cache_ok = True


class TestSamplingCustomTypes:
    """Plaintext columns of a string-based TypeDecorator are sampled like plain strings."""

    def test_string_type_decorator_is_sampled(self, tmp_path: Path) -> None:
        metadata = sa.MetaData()
        notes = sa.Table(
            "inv_notes",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("remark", _Trimmed()),
        )
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'notes.db'}")
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(notes.insert(), [{"remark": SECRET}, {"remark": "x@example.com"}])

        inventory = DataInventory.from_metadata(metadata, bind=engine, now=T0)
        engine.dispose()

        assert {("high", "unclassified-pii", "inv_notes.remark")} == codes(inventory)
        assert SECRET not in inventory.to_json() + inventory.to_markdown()
