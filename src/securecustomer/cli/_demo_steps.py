"""The demo's shared state and output, and its first four steps: keys, table, search, policy."""

from __future__ import annotations

import os
import secrets
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import Session

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.audit import AuditTrail, JsonlAuditSink, actor, audited
from securecustomer.cli._demo_model import (
    CUSTOMERS,
    DEMO_KEYS,
    NOTES,
    POLICY,
    Base,
    Customer,
    Note,
)
from securecustomer.exceptions import AccessDenied
from securecustomer.keys import FileKeyStore
from securecustomer.policy import Policy, PolicyEngine, Resource, Subject
from securecustomer.sqlalchemy import search

__all__ = [
    "CRM_SYNC",
    "FIELDS",
    "RUN_FILES",
    "Demo",
    "Misbehaved",
    "expect",
    "fail",
    "short",
    "step_keys",
    "step_policy",
    "step_search",
    "step_table",
]

#: The fields a read of a customer can return.
FIELDS: Final = ("id", "name", "email", "phone", "age", "postcode", "notes")

#: Files each run writes afresh in the demo directory (master.key and audit.key are kept).
RUN_FILES: Final = (
    "demo.db",
    "keys.json",
    "keys.json.lock",
    "audit.jsonl",
    "audit.jsonl.lock",
    "checkpoint.json",
    "customers-anonymized.csv",
)

AGENT: Final = Subject("agent-7", roles=["support"])
ADMIN: Final = Subject("admin-1", roles=["admin"])
MARKETING: Final = Subject("mkt-2", roles=["marketing"])
CRM_SYNC: Final = Subject("svc-crm-sync", roles=["integration"])


class Misbehaved(Exception):
    """A step saw something other than what the library promises."""


def expect(condition: bool, claim: str) -> None:
    """Raise `Misbehaved` naming *claim* unless *condition* holds."""
    if not condition:
        raise Misbehaved(claim)


def fail(claim: str) -> NoReturn:
    raise Misbehaved(claim)


def short(token: bytes) -> str:
    """A ciphertext as a short hex excerpt and its length (never the plaintext)."""
    return f"{token[:10].hex()}...{token[-3:].hex()}  ({len(token)} bytes)"


class Demo:
    """What the steps share: the directory, the keyring, the database, the trail, output."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keyring: Keyring | None = None
        self.engine: Engine | None = None
        self.trail: AuditTrail | None = None
        self.policy = PolicyEngine(Policy.from_toml(POLICY))
        self.read: Callable[[Subject, int], dict[str, Any]] = self._read

    # -- output -----------------------------------------------------------------------------

    def step(self, number: int, title: str, explanation: str) -> None:
        print(f"\n== {number}. {title}")
        for line in textwrap.wrap(explanation, 88, initial_indent="   ", subsequent_indent="   "):
            print(line)

    def show(self, label: str, value: object, width: int = 14) -> None:
        print(f"{label + ':':<{width}} {value}")

    def path(self, name: str) -> Path:
        return self.directory / name

    # -- resources --------------------------------------------------------------------------

    def keys(self) -> Keyring:
        if self.keyring is None:
            fail("the keyring was not loaded")
        return self.keyring

    def db(self) -> Engine:
        if self.engine is None:
            fail("the database was not created")
        return self.engine

    def audit(self) -> AuditTrail:
        if self.trail is None:
            fail("the audit trail was not opened")
        return self.trail

    def close(self) -> None:
        DEMO_KEYS.unbind()
        if self.trail is not None:
            self.trail.flush()
        if self.engine is not None:
            self.engine.dispose()

    # -- the audited read every step uses ---------------------------------------------------

    def visible(self, reader: Subject, customer_id: int) -> list[str]:
        """The fields *reader* may see of a customer (what the audit event records)."""
        decision = self.policy.evaluate(reader, "read", Resource("customer", id=customer_id))
        return [f for f in FIELDS if decision.visible(f)] if decision.allowed else []

    def _read(self, reader: Subject, customer_id: int) -> dict[str, Any]:
        decision = self.policy.require(reader, "read", Resource("customer", id=customer_id))
        with Session(self.db()) as session:
            customer = session.get(Customer, customer_id)
            if customer is None:
                fail(f"customer {customer_id} is missing")
            record: dict[str, Any] = {
                "id": customer.id,
                "name": customer.name,
                "email": customer.email,
                "phone": customer.phone,
                "age": customer.age,
                "postcode": customer.postcode,
            }
            if decision.visible("notes"):  # notes are not even decrypted for the others
                query = select(Note).where(Note.customer_id == customer_id).order_by(Note.id)
                record["notes"] = [note.body for note in session.scalars(query)]
        return self.policy.apply(decision, record)

    def open_trail(self, key: bytes) -> None:
        self.trail = AuditTrail(JsonlAuditSink(self.path("audit.jsonl")), key=key)
        self.read = audited(
            "read",
            resource="customer",
            resource_id="customer_id",
            subject="customer_id",
            fields=self.visible,
            trail=self.trail,
        )(self._read)


# -- 1. keys ------------------------------------------------------------------------------


def _secret_file(path: Path) -> tuple[bytes, str]:
    """The audit key in *path* (hex, mode 0600), created on the first run."""
    if path.exists():
        return bytes.fromhex(path.read_text(encoding="ascii").strip()), "reused"
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.hex() + "\n")
    return key, "created"


def step_keys(demo: Demo) -> None:
    demo.step(
        1,
        "Keys: a master key file (mode 0600) and a keyring",
        "The master key never leaves master.key. It wraps a root key, which wraps one data "
        "key per column and one per customer; the wrapped keys are kept in keys.json. A "
        "second secret, audit.key, keys the audit trail. Neither is ever printed.",
    )
    key_file = demo.path("master.key")
    if key_file.exists():
        provider, how = LocalKeyProvider.from_file(key_file), "reused"
    else:
        provider, how = LocalKeyProvider.create_key_file(key_file), "created"
    mode = key_file.stat().st_mode & 0o777
    demo.keyring = Keyring(provider, FileKeyStore(demo.path("keys.json"))).load()
    DEMO_KEYS.bind(demo.keyring)
    audit_key, audit_how = _secret_file(demo.path("audit.key"))
    demo.open_trail(audit_key)
    roots = [r for r in demo.keyring.status() if r.kind == "root"]
    demo.show("key file", f"{key_file} (mode {mode:04o}, {how})")
    demo.show("keyring", f"{len(roots)} root key, data keys in {demo.path('keys.json')}")
    demo.show("audit key", f"{demo.path('audit.key')} ({audit_how}; 32 random bytes)")
    expect(mode == 0o600, "the key file is readable by its owner only")
    expect(len(roots) >= 1, "the keyring has a root key")


# -- 2. the customer table ----------------------------------------------------------------


def step_table(demo: Demo) -> None:
    demo.step(
        2,
        "A customer table in SQLite with encrypted columns",
        "Name, e-mail and phone are encrypted before they reach the database; a blind index "
        "(a keyed hash) of the normalised e-mail makes it searchable. Support notes are "
        "encrypted under their customer's own key, so erasing a customer can destroy that "
        "one key. Age and postcode stay in clear for reporting (step 7 generalises them).",
    )
    demo.engine = create_engine(f"sqlite:///{demo.path('demo.db')}")
    Base.metadata.create_all(demo.engine)
    with Session(demo.engine) as session:
        session.add_all(
            Customer(id=i, name=n, email=e, phone=p, age=a, postcode=c)
            for i, n, e, p, a, c in CUSTOMERS
        )
        session.add_all(Note(id=i, customer_id=c, body=b) for i, c, b in NOTES)
        session.commit()
    demo.show("database", f"{demo.path('demo.db')} (tables customers, customer_notes)")
    demo.show("inserted", f"{len(CUSTOMERS)} customers, {len(NOTES)} notes")

    columns = "id, name, email, email_index, phone, age, postcode"
    with demo.engine.connect() as conn:
        raw = conn.execute(text(f"SELECT {columns} FROM customers WHERE id = 1")).one()  # noqa: S608
        note = conn.execute(text("SELECT body FROM customer_notes WHERE id = 1")).scalar_one()
    print("row 1 as stored (what a stolen copy of the database shows):")
    for name, value in zip(columns.split(", "), raw, strict=True):
        shown = short(value) if isinstance(value, bytes) else repr(value)
        if name == "email_index":
            shown = f"{value[:6].hex()}...  ({len(value)}-byte keyed hash, not reversible)"
        print(f"  {name:<12} {shown}")
    print(f"  {'note 1':<12} {short(note)}  (key scope subject:1)")
    with Session(demo.engine) as session:
        ada = session.get(Customer, 1)
        if ada is None:
            fail("customer 1 was not stored")
        print("row 1 read through the ORM, with the keys:")
        for name in ("name", "email", "phone", "age", "postcode"):
            print(f"  {name:<12} {getattr(ada, name)!r}")
        expect(ada.email == CUSTOMERS[0][2], "the e-mail decrypts to what was stored")
    plaintexts = [v.encode() for v in CUSTOMERS[0][1:4]]
    expect(
        not any(p in bytes(cell) for p in plaintexts for cell in raw if isinstance(cell, bytes)),
        "no plaintext appears in the stored row",
    )
    scopes = sorted({r.scope for r in demo.keys().status() if r.kind == "data" and r.scope})
    demo.show("data keys", ", ".join(scopes))
    expect("subject:3" in scopes, "each customer with notes has a key scope of its own")


# -- 3. search ----------------------------------------------------------------------------


def step_search(demo: Demo) -> None:
    demo.step(
        3,
        "Find a customer by e-mail, through the blind index",
        "The database compares index tokens (an IN over keyed hashes of the normalised "
        "address); only the rows it returns are decrypted, to drop false positives.",
    )
    with Session(demo.db()) as session:
        found = search(session, Customer.email, "  ADA@Example.COM ")
        demo.show("search", "'  ADA@Example.COM '", 8)
        demo.show("found", ", ".join(f"customer {c.id}, {c.name}" for c in found) or "-", 8)
        expect([c.id for c in found] == [1], "the search finds exactly customer 1")
        none = search(session, Customer.email, "nobody@example.com")
        demo.show("search", "'nobody@example.com'", 8)
        demo.show("found", none or "no customer", 8)
        expect(none == [], "an unknown address finds nothing")


# -- 4. policy ----------------------------------------------------------------------------


def _reads(demo: Demo, reader: Subject, ids: Sequence[int]) -> list[dict[str, Any]]:
    with actor(reader, request_id=f"req-{reader.id}"):
        return [demo.read(reader, i) for i in ids]


def _record(record: dict[str, Any]) -> None:
    text = ", ".join(f"{k}={v!r}" for k, v in record.items())
    for line in textwrap.wrap(text, 88, initial_indent="  ", subsequent_indent="    "):
        print(line)


def step_policy(demo: Demo) -> None:
    demo.step(
        4,
        "Every read goes through the policy engine",
        "The policy (TOML): support agents see contact details masked and no notes; admins "
        "see everything; the nightly CRM sync reads names and e-mails; marketing reads "
        "nothing. The engine decides, the read applies its masks.",
    )
    agent = _reads(demo, AGENT, [1])[0]
    print("support agent-7 reads customer 1:")
    _record(agent)
    expect(agent.get("email") == "a***@example.com", "the agent sees the e-mail masked")
    expect(str(agent.get("phone", "")).endswith("18"), "the agent sees the phone's last digits")
    expect("notes" not in agent and "age" not in agent, "the agent sees no notes, no age")
    admin = _reads(demo, ADMIN, [1])[0]
    print("admin-1 reads customer 1:")
    _record(admin)
    expect(admin.get("email") == CUSTOMERS[0][2], "the admin sees the e-mail")
    expect(admin.get("notes") == [NOTES[0][2]], "the admin sees the notes, decrypted")
    try:
        _reads(demo, MARKETING, [1])
    except AccessDenied as exc:
        print(f"mkt-2 (marketing) reads customer 1:\n  {type(exc).__name__}: {exc}")
    else:
        fail("marketing is denied")
    ids = [c[0] for c in CUSTOMERS]
    synced = _reads(demo, CRM_SYNC, ids)
    print(f"svc-crm-sync reads customers 1-{len(ids)}: {sorted(synced[0])} of each")
    expect(all(set(r) == {"id", "name", "email"} for r in synced), "the sync sees 3 fields")
