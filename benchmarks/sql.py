"""Side-by-side SQL benchmark: encrypted columns on SQLite against plaintext columns and
sqlalchemy-utils, and subject-scoped reads with cold key caches, in one process and one run.

Run ``python benchmarks/sql.py`` (or ``nox -s bench``); ``--help`` lists the options.
What is measured and why is explained in ``docs/performance.md`` ("SQL columns").

Table benchmark: every candidate has the same schema (``id`` integer primary key and
``name``, ``email``, ``phone``) in its own SQLite files with the same settings. A *job* is
one (candidate, operation, style): a bulk insert of all rows into a freshly created table,
or a full select of a table filled once before timing, through Core or the ORM. One
*round* runs every job once, in a freshly shuffled order; the statistic is the median over
the rounds in milliseconds, and ratios are taken between medians of the same run. Three
reference rungs on Core (stored tokens only, AES-GCM by hand, FieldCipher by hand) show
where EncryptedString's time goes between plaintext and the column type.

Subject benchmark: one model under ``encrypt_rows(subject="customer_id")`` with one data
subject per row, against the same rows in a model with column scopes; both selected with a
new keyring (cold cache) and with a warmed one, counting provider calls and key-store
queries.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from run import RESULTS, environment, write_docs
from sqlalchemy import event, insert, select
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeEngine

import securecustomer
from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.keys import KeyProvider, WrappedKey
from securecustomer.sqlalchemy import (
    EncryptedString,
    KeyringSlot,
    SqlKeyStore,
    default_keyring,
    encrypt_rows,
)

START = "<!-- sql-results:start -->"
END = "<!-- sql-results:end -->"

#: The targets of the issue, as ratios of medians.
PLAIN_TARGET = 1.5  # securecustomer against the plaintext table
PEER_TARGET = 0.5  # securecustomer against sqlalchemy-utils

#: The same for every database of the run: WAL, and no fsync at each commit (WAL keeps
#: the database consistent after a crash; the last commits may be lost on power failure).
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")
COLUMNS = ("name", "email", "phone")
#: (operation, style) in the order of the tables.
JOBS = (
    ("insert", "Core"),
    ("insert", "ORM bulk"),
    ("insert", "ORM unit of work"),
    ("select", "Core"),
    ("select", "ORM"),
)
STYLE_NOTES = {
    "Core": "conn.execute(insert(table), dicts) / conn.execute(select(table)).all()",
    "ORM bulk": "session.execute(insert(Model), dicts); session.commit()",
    "ORM unit of work": "session.add_all(Model(**d) for d in dicts); session.commit()",
    "ORM": "session.scalars(select(Model)).all()",
}

Row = dict[str, Any]


# -- values -----------------------------------------------------------------------------

# fmt: off
_FIRST = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Edsger", "Frances",
    "Donald", "Radia", "Guido", "Zoë", "José", "Anaïs", "Björn", "Li", "Noor", "Samuel",
    "Kim", "Søren", "Ngozi", "Priya", "Mateus", "Olga", "Yusuf", "Chloé", "Hiroshi",
]
_LAST = [
    "Lovelace", "Turing", "Hopper", "Smith", "Hamilton", "Thompson", "Liskov", "Dijkstra",
    "Allen", "Knuth", "Perlman", "van Rossum", "Müller", "García", "Wang", "Nguyen",
    "O'Brien", "Kowalczyk", "Fernández", "Okafor", "Sharma", "Johansson", "Dubois",
]
_DOMAINS = [
    "example.com", "mail.example.org", "corp.example.de", "web.example.fr", "acme.example",
    "post.example.net", "uni.example.edu",
]
_PHONES = [
    "+44 20 {a:04d} {b:04d}", "+1 ({c:03d}) {d:03d}-{a:04d}", "+49 30 {a:04d}{b:04d}",
    "+33 6 {e:02d} {f:02d} {g:02d} {h:02d}", "0{c:03d} {d:03d} {b:04d}",
]
# fmt: on


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().replace(" ", "").replace("'", "")


def make_rows(count: int, seed: int) -> list[Row]:
    """*count* customers with varied names, e-mail addresses and phone numbers."""
    rnd = random.Random(seed)
    rows: list[Row] = []
    for i in range(1, count + 1):
        first, last = rnd.choice(_FIRST), rnd.choice(_LAST)
        middle = f" {rnd.choice('ABCDEFGHJKLMNPRSTW')}." if rnd.random() < 0.3 else ""
        email = (
            f"{_ascii(first)}{rnd.choice(['.', '_', ''])}{_ascii(last)}"
            f"{rnd.randint(1, 9999)}@{rnd.choice(_DOMAINS)}"
        )
        digits = {k: rnd.randint(0, 99 if k in "efgh" else 9999) for k in "abefgh"}
        phone = rnd.choice(_PHONES).format(
            c=rnd.randint(200, 989), d=rnd.randint(200, 999), **digits
        )
        rows.append({"id": i, "name": f"{first}{middle} {last}", "email": email, "phone": phone})
    return rows


def _expected(rows: list[Row]) -> list[tuple[Any, ...]]:
    return [(r["id"], *(r[c] for c in COLUMNS)) for r in rows]


# -- databases ----------------------------------------------------------------------------


def sqlite_engine(path: Path) -> sa.Engine:
    """An engine on a SQLite file with the run's PRAGMAs on every connection."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    return engine


class CountingProvider:
    """A `KeyProvider` that counts the round trips to the provider it wraps."""

    def __init__(self, inner: KeyProvider) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        self.calls += 1
        return self.inner.wrap(material, context=context)

    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        self.calls += 1
        return self.inner.unwrap(wrapped, context=context)


class StatementCounter:
    """Counts the SQL statements an engine sends (``before_cursor_execute``)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *_args: Any) -> None:
        self.count += 1


class Base(DeclarativeBase):
    pass


def _model(name: str, table: sa.Table) -> type[Any]:
    """A mapped class for *table* (declarative, with its keyword constructor)."""
    return type(name, (Base,), {"__table__": table})


# -- the table benchmark ------------------------------------------------------------------


@dataclass
class Job:
    """One timed operation; *samples* are milliseconds per run."""

    candidate: str
    op: str
    style: str
    run: Callable[[], object]
    prepare: Callable[[], None] = lambda: None
    after: Callable[[], None] = lambda: None
    samples: list[float] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Candidate:
    """One schema variant: how its columns are declared, and what it does around SQL.

    *seal* and *open* run inside the timed insert and select (the reference rungs encrypt
    and decrypt by hand around Core calls); *verify* only turns what a select returned
    into plaintext for the correctness check.
    """

    key: str
    name: str
    column_type: Callable[[], TypeEngine[Any]]
    orm: bool = True
    seal: Callable[[list[Row]], list[Row]] | None = None
    open: Callable[[Sequence[Any]], list[tuple[Any, ...]]] | None = None
    verify: Callable[[Sequence[Any]], list[tuple[Any, ...]]] | None = None


def candidates() -> list[Candidate]:
    """Plaintext, securecustomer and sqlalchemy-utils (when installed)."""
    found = [
        Candidate("plain", "plaintext String", lambda: sa.String(255)),
        Candidate("securecustomer", "securecustomer EncryptedString", EncryptedString),
    ]
    try:
        from sqlalchemy_utils import StringEncryptedType
        from sqlalchemy_utils.types.encrypted.encrypted_type import AesGcmEngine
    except ImportError:
        print("sqlalchemy-utils is not installed: skipping its rows", file=sys.stderr)
    else:
        key = os.urandom(32).hex()
        found.append(
            Candidate(
                "sqlalchemy-utils",
                "sqlalchemy-utils StringEncryptedType (AesGcmEngine)",
                lambda: StringEncryptedType(sa.Unicode, key, AesGcmEngine),
            )
        )
    return found


def references(rows: list[Row]) -> list[Candidate]:
    """The rungs between plaintext and EncryptedString, on LargeBinary columns, Core only.

    - stored tokens: the tokens EncryptedString would store, made before timing and
      selected without decrypting (what storing ciphertext costs, with no encryption);
    - AES-GCM by hand: the floor recipe of ``run.py`` per value (nonce + AESGCM, no
      header, no associated data, no key lookup or checks);
    - FieldCipher by hand: ``cipher.encrypt`` / ``decrypt`` per value with the column's
      Context, the same tokens as EncryptedString, without the column type around them.
    """
    keyring = default_keyring.get()
    n_enc, e_enc, p_enc = (keyring.cipher(f"customers.{c}").encrypt for c in COLUMNS)
    n_dec, e_dec, p_dec = (keyring.cipher(f"customers.{c}").decrypt for c in COLUMNS)
    n_ctx, e_ctx, p_ctx = (Context("customers", c) for c in COLUMNS)

    def fc_seal(rows: list[Row]) -> list[Row]:
        out = []
        for r in rows:
            out.append(
                {
                    "id": r["id"],
                    "name": n_enc(r["name"], context=n_ctx),
                    "email": e_enc(r["email"], context=e_ctx),
                    "phone": p_enc(r["phone"], context=p_ctx),
                }
            )
        return out

    def fc_open(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        out = []
        for r in rows:
            out.append(
                (
                    r[0],
                    n_dec(r[1], context=n_ctx),
                    e_dec(r[2], context=e_ctx),
                    p_dec(r[3], context=p_ctx),
                )
            )
        return out

    aesgcm = AESGCM(AESGCM.generate_key(256))
    enc, dec, urandom = aesgcm.encrypt, aesgcm.decrypt, os.urandom

    def gcm_seal(rows: list[Row]) -> list[Row]:
        out = []
        for r in rows:
            n1, n2, n3 = urandom(12), urandom(12), urandom(12)
            out.append(
                {
                    "id": r["id"],
                    "name": n1 + enc(n1, r["name"].encode(), None),
                    "email": n2 + enc(n2, r["email"].encode(), None),
                    "phone": n3 + enc(n3, r["phone"].encode(), None),
                }
            )
        return out

    def gcm_open(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
        out = []
        for r in rows:
            t1, t2, t3 = r[1], r[2], r[3]
            out.append(
                (
                    r[0],
                    dec(t1[:12], t1[12:], None).decode(),
                    dec(t2[:12], t2[12:], None).decode(),
                    dec(t3[:12], t3[12:], None).decode(),
                )
            )
        return out

    tokens = fc_seal(rows)
    return [
        Candidate(
            "stored-tokens",
            "stored tokens, no encryption",
            sa.LargeBinary,
            orm=False,
            seal=lambda _rows: tokens,
            verify=fc_open,
        ),
        Candidate(
            "aes-gcm",
            "AES-GCM by hand",
            sa.LargeBinary,
            orm=False,
            seal=gcm_seal,
            open=gcm_open,
        ),
        Candidate(
            "fieldcipher",
            "FieldCipher by hand",
            sa.LargeBinary,
            orm=False,
            seal=fc_seal,
            open=fc_open,
        ),
    ]


def _customers(metadata: sa.MetaData, column_type: Callable[[], TypeEngine[Any]]) -> sa.Table:
    return sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(c, column_type()) for c in COLUMNS),
    )


def table_jobs(cands: list[Candidate], rows: list[Row], workdir: Path) -> list[Job]:
    """Build each candidate's two databases, check every path, and return the jobs.

    The checks run every job once before timing, so they are also the warm-up round.
    """
    expected = _expected(rows)
    jobs: list[Job] = []
    for cand in cands:
        read_engine = sqlite_engine(workdir / f"{cand.key}-read.db")
        write_engine = sqlite_engine(workdir / f"{cand.key}-write.db")
        read_table = _customers(sa.MetaData(), cand.column_type)
        write_table = _customers(sa.MetaData(), cand.column_type)
        read_table.create(read_engine)
        seal = cand.seal or _unchanged
        with read_engine.begin() as conn:
            conn.execute(insert(read_table), seal(rows))
        own = [
            Job(cand.key, "insert", "Core", _core_insert(write_table, write_engine, seal, rows)),
            Job(cand.key, "select", "Core", _core_select(read_table, read_engine, cand.open)),
        ]
        own[0].prepare = _fresh(write_table, write_engine)
        if cand.orm:
            own += _orm_jobs(cand, rows, read_table, read_engine, write_table, write_engine)

        # Correctness before timing: every insert path round-trips through a new Table
        # object of the candidate's types, every select gives the values back, and the
        # stored form of an encrypted column is not the plaintext.
        verify = cand.open or cand.verify or _tuples
        for job in own:
            job.prepare()
            result: Any = job.run()
            if job.op == "insert":
                got = _read_back(cand, write_engine, verify)
            elif job.style == "ORM":
                got = [(o.id, *(getattr(o, c) for c in COLUMNS)) for o in result]
            else:
                got = result if cand.open is not None else verify(result)
            _check(f"{cand.name}: {job.style} {job.op}", sorted(got), expected)
        with read_engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT email FROM customers WHERE id = 1").scalar()
        plain = rows[0]["email"]
        if cand.key == "plain":
            _check(f"{cand.name}: stored form", [stored], [plain])
        elif stored == plain or plain.encode() in _as_bytes(stored):
            raise SystemExit(f"{cand.name}: the stored e-mail address is readable")
        jobs += own
    return jobs


def _unchanged(rows: list[Row]) -> list[Row]:
    return rows


def _tuples(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in rows]


def _fresh(table: sa.Table, engine: sa.Engine) -> Callable[[], None]:
    def fresh() -> None:  # a new, empty table before each timed insert
        table.drop(engine, checkfirst=True)
        table.create(engine)

    return fresh


def _core_insert(
    table: sa.Table, engine: sa.Engine, seal: Callable[[list[Row]], list[Row]], rows: list[Row]
) -> Callable[[], None]:
    def core_insert() -> None:
        with engine.begin() as conn:
            conn.execute(insert(table), seal(rows))

    return core_insert


def _core_select(
    table: sa.Table,
    engine: sa.Engine,
    open_: Callable[[Sequence[Any]], list[tuple[Any, ...]]] | None,
) -> Callable[[], object]:
    def core_select() -> object:
        with engine.connect() as conn:
            return conn.execute(select(table)).all()

    if open_ is None:
        return core_select

    def core_select_and_open() -> object:
        with engine.connect() as conn:
            return open_(conn.execute(select(table)).all())

    return core_select_and_open


def _orm_jobs(
    cand: Candidate,
    rows: list[Row],
    read_table: sa.Table,
    read_engine: sa.Engine,
    write_table: sa.Table,
    write_engine: sa.Engine,
) -> list[Job]:
    read_model = _model(f"Read_{cand.key.replace('-', '_')}", read_table)
    write_model = _model(f"Write_{cand.key.replace('-', '_')}", write_table)

    fresh = _fresh(write_table, write_engine)

    def orm_bulk() -> None:
        with Session(write_engine) as session:
            session.execute(insert(write_model), rows)
            session.commit()

    def orm_unit_of_work() -> None:
        with Session(write_engine) as session:
            session.add_all([write_model(**row) for row in rows])
            session.commit()

    def orm_select() -> Any:
        with Session(read_engine) as session:
            return session.scalars(select(read_model)).all()

    return [
        Job(cand.key, "insert", "ORM bulk", orm_bulk, prepare=fresh),
        Job(cand.key, "insert", "ORM unit of work", orm_unit_of_work, prepare=fresh),
        Job(cand.key, "select", "ORM", orm_select),
    ]


def _read_back(
    cand: Candidate, engine: sa.Engine, verify: Callable[[Sequence[Any]], list[tuple[Any, ...]]]
) -> list[tuple[Any, ...]]:
    """The written table, read through a new Table object of the candidate's own types."""
    table = _customers(sa.MetaData(), cand.column_type)
    with engine.connect() as conn:
        return verify(conn.execute(select(table)).all())


def _as_bytes(value: object) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]


def _check(what: str, got: list[Any], expected: list[Any]) -> None:
    if [tuple(g) if isinstance(g, sa.Row) else g for g in got] != expected:
        raise SystemExit(f"{what}: the values did not come back")


def measure(jobs: list[Job], rounds: int, seed: int) -> None:
    """Run every job once per round, in a new random order each round.

    The garbage collector is off while a job is timed and runs before each job; what a
    job returns is released after its clock has stopped.
    """
    rnd = random.Random(seed)
    order = list(jobs)
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            rnd.shuffle(order)
            for job in order:
                job.prepare()
                gc.collect()
                start = clock()
                result = job.run()
                elapsed = clock() - start
                job.after()
                del result
                job.samples.append(elapsed / 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()


# -- the subject benchmark ---------------------------------------------------------------


@dataclass
class SubjectCase:
    """One select of the subject benchmark, with what it cost in calls and queries."""

    name: str
    model: str  # "subject" or "column"
    cold: bool
    scopes: int
    job: Job
    load_calls: list[int] = field(default_factory=list)
    load_queries: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)


def subject_cases(
    rows: list[Row], workdir: Path, provider: CountingProvider, store: SqlKeyStore
) -> list[SubjectCase]:
    """Fill both models (creating one data key per subject, untimed) and check them."""
    slot = KeyringSlot("bench-subjects")
    metadata = sa.MetaData()

    def table(name: str) -> sa.Table:
        return sa.Table(
            name,
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("customer_id", sa.Integer, nullable=False),
            *(sa.Column(c, EncryptedString(keyring=slot)) for c in COLUMNS),
        )

    subject_model = _model("SubjectRow", table("subject_rows"))
    column_model = _model("ColumnRow", table("column_rows"))
    encrypt_rows(subject_model, subject="customer_id")
    engine = sqlite_engine(workdir / "subjects.db")
    metadata.create_all(engine)
    data = [{**r, "customer_id": 100_000 + r["id"]} for r in rows]  # one subject per row

    slot.bind(Keyring(provider, store).load())
    began = time.monotonic()
    with Session(engine) as session:  # before_flush creates the subjects' data keys
        session.add_all([subject_model(**d) for d in data])
        session.commit()
    with Session(engine) as session:
        session.execute(insert(column_model), data)
        session.commit()
    print(f"created {len(data):,} subject keys in {time.monotonic() - began:.1f} s (untimed)")

    queries = StatementCounter(store.engine)
    expected = [(d["id"], d["customer_id"], *(d[c] for c in COLUMNS)) for d in data]
    cases: list[SubjectCase] = []
    for model_name, model, scopes in (
        ("subject", subject_model, len(data)),
        ("column", column_model, len(COLUMNS)),
    ):

        def run(model: Any = model) -> Any:
            with Session(engine) as session:
                return session.scalars(select(model)).all()

        for cold in (True, False):
            label = "subject-scoped" if model_name == "subject" else "column scopes"
            case = SubjectCase(
                name=f"{label}, {'cold' if cold else 'warm'} cache",
                model=model_name,
                cold=cold,
                scopes=scopes,
                job=Job(model_name, "select", "cold" if cold else "warm", run),
            )

            def prepare(case: SubjectCase = case, run: Any = run) -> None:
                provider.calls = queries.count = 0
                slot.bind(Keyring(provider, store).load())
                case.load_calls.append(provider.calls)
                case.load_queries.append(queries.count)
                if not case.cold:
                    run()  # untimed: this keyring now holds every key of the select
                provider.calls = queries.count = 0

            def after(case: SubjectCase = case) -> None:
                case.calls.append(provider.calls)
                case.queries.append(queries.count)

            case.job.prepare, case.job.after = prepare, after
            prepare()
            got = run()
            after()
            got = [(o.id, o.customer_id, *(getattr(o, c) for c in COLUMNS)) for o in got]
            _check(case.name, sorted(got), expected)
            for counts in (case.load_calls, case.load_queries, case.calls, case.queries):
                counts.clear()  # the check was the warm-up: keep timed rounds only
            cases.append(case)
    return cases


# -- reporting ------------------------------------------------------------------------


def _by(jobs: list[Job]) -> dict[tuple[str, str, str], Job]:
    return {(j.candidate, j.op, j.style): j for j in jobs}


def _ms(job: Job | None) -> str:
    if job is None:
        return "—"
    value = job.median()
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(job: Job | None, base: Job | None) -> str:
    if job is None or base is None:
        return "—"
    return f"{job.median() / base.median():.2f}x"


def _spread(samples: list[float]) -> float:
    """Interquartile range relative to the median: how steady the machine was."""
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def targets(jobs: list[Job]) -> list[dict[str, Any]]:
    """Both targets of the issue, for every operation and style."""
    by = _by(jobs)
    out = []
    for op, style in JOBS:
        ours = by.get(("securecustomer", op, style))
        if ours is None:
            continue
        for base_key, limit, label in (
            ("plain", PLAIN_TARGET, "plaintext"),
            ("sqlalchemy-utils", PEER_TARGET, "sqlalchemy-utils"),
        ):
            base = by.get((base_key, op, style))
            ratio = None if base is None else ours.median() / base.median()
            out.append(
                {
                    "target": f"{style} {op}: securecustomer <= {limit:.1f}x {label}",
                    "measured": "—" if ratio is None else f"{ratio:.2f}x",
                    "met": ratio is not None and ratio <= limit,
                }
            )
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table_rows(jobs: list[Job]) -> list[list[str]]:
    by = _by(jobs)
    out = []
    for op, style in JOBS:
        plain, ours = by.get(("plain", op, style)), by.get(("securecustomer", op, style))
        peer = by.get(("sqlalchemy-utils", op, style))
        out.append(
            [
                f"{style} {op}",
                _ms(plain),
                _ms(ours),
                _ms(peer),
                _ratio(ours, plain),
                _ratio(ours, peer),
                _ratio(peer, plain),
            ]
        )
    return out


TABLE_HEAD = [
    "operation",
    "plaintext ms",
    "securecustomer ms",
    "sqlalchemy-utils ms",
    "securecustomer vs plaintext",
    "securecustomer vs sqlalchemy-utils",
    "sqlalchemy-utils vs plaintext",
]
#: The Core rungs from plaintext to EncryptedString, in order.
LADDER = (
    ("plain", "String columns (plaintext)"),
    ("stored-tokens", "LargeBinary, tokens made before timing, not decrypted"),
    ("aes-gcm", "LargeBinary + AES-GCM by hand per value"),
    ("fieldcipher", "LargeBinary + FieldCipher.encrypt / decrypt by hand per value"),
    ("securecustomer", "EncryptedString"),
)
LADDER_HEAD = [
    "Core, one piece at a time",
    "insert ms",
    "vs plaintext",
    "select ms",
    "vs plaintext",
]


def ladder_rows(jobs: list[Job]) -> list[list[str]]:
    by = _by(jobs)
    plain_insert, plain_select = by[("plain", "insert", "Core")], by[("plain", "select", "Core")]
    out = []
    for key, label in LADDER:
        ins, sel = by.get((key, "insert", "Core")), by.get((key, "select", "Core"))
        if ins is not None and sel is not None:
            out.append(
                [label, _ms(ins), _ratio(ins, plain_insert), _ms(sel), _ratio(sel, plain_select)]
            )
    return out


SUBJECT_HEAD = [
    "select of all rows",
    "key scopes",
    "provider calls: load",
    "provider calls: select",
    "key-store queries: load",
    "key-store queries: select",
    "ms",
    "vs column scopes, same cache",
]


def subject_rows(cases: list[SubjectCase]) -> list[list[str]]:
    column = {c.cold: c for c in cases if c.model == "column"}
    out = []
    for case in cases:
        base = column[case.cold]
        out.append(
            [
                case.name,
                f"{case.scopes:,}",
                _counts(case.load_calls),
                _counts(case.calls),
                _counts(case.load_queries),
                _counts(case.queries),
                f"{case.job.median():,.0f}",
                _ratio(case.job, base.job),
            ]
        )
    return out


def _expected_queries(case: SubjectCase) -> int:
    """Key-store queries a select should make: none when warm; when cold, one per column
    scope, or one per 500 subject scopes (SqlKeyStore's batch for ``Keyring.prefetch``)."""
    if not case.cold:
        return 0
    return math.ceil(case.scopes / 500) if case.model == "subject" else case.scopes


def _counts(values: list[int]) -> str:
    """One number when every round agreed, else the range."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["--:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def markdown(record: dict[str, Any], jobs: list[Job], cases: list[SubjectCase]) -> str:
    env = record["environment"]
    lines = [
        f"Measured {env['date']} on {env['machine']}; {env['python']}, SQLAlchemy "
        f"{env['sqlalchemy']}, SQLite {env['sqlite']}, securecustomer {env['securecustomer']}, "
        f"sqlalchemy-utils {env['sqlalchemy-utils']}, cryptography {env['cryptography']}. "
        f"{record['rows']:,} rows of three text columns; median of {record['rounds']} "
        f"interleaved rounds (subject selects: {record['subject_rounds']} rounds); "
        f"{', '.join(PRAGMAS)}.",
        "",
        *_markdown_table(TABLE_HEAD, table_rows(jobs)),
        "",
        "| target | measured | status |",
        "|---|--:|---|",
    ]
    for row in record["targets"]:
        lines.append(f"| {row['target']} | {row['measured']} | {_verdict(row['met'])} |")
    lines += [
        "",
        "From plaintext to EncryptedString, one piece at a time (Core, same run):",
        "",
        *_markdown_table(LADDER_HEAD, ladder_rows(jobs)),
    ]
    if cases:
        lines += [
            "",
            f"Subject-scoped reads: {record['subjects']:,} rows, each of a different subject, "
            "through the ORM (`session.scalars(select(Model)).all()`); key store: "
            "`SqlKeyStore` in its own SQLite file.",
            "",
            *_markdown_table(SUBJECT_HEAD, subject_rows(cases)),
        ]
    return "\n".join(lines) + "\n"


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = [f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]]
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, head, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in rows]
    return "\n".join(lines)


def text_report(jobs: list[Job], cases: list[SubjectCase]) -> str:
    parts = [_text_table(TABLE_HEAD, table_rows(jobs)), ""]
    spread = max(_spread(j.samples) for j in jobs)
    parts.append(f"largest interquartile range of a job: {spread:.1%} of its median\n")
    for row in targets(jobs):
        parts.append(f"{row['target']:<64} {row['measured']:>7}  {_verdict(row['met'])}")
    parts += ["", _text_table(LADDER_HEAD, ladder_rows(jobs))]
    if cases:
        parts += ["", _text_table(SUBJECT_HEAD, subject_rows(cases))]
    return "\n".join(parts)


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows per table")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds to time")
    parser.add_argument("--subjects", type=int, default=10_000, help="rows (and subjects)")
    parser.add_argument("--subject-rounds", type=int, default=5, help="rounds of subject reads")
    parser.add_argument("--seed", type=int, default=2024, help="seed for values and order")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the SQL tables in docs/performance.md"
    )
    args = parser.parse_args(argv)

    began = time.monotonic()
    env = {**environment(), "sqlite": sqlite3.sqlite_version}
    if env["securecustomer"] == "not installed":  # run from a checkout: src/ on the path
        env["securecustomer"] = f"{securecustomer.__version__} (source tree)"
    rows = make_rows(max(args.rows, args.subjects), args.seed)
    print(
        f"{env['machine']}\n{env['python']}; SQLAlchemy {env['sqlalchemy']}; SQLite "
        f"{env['sqlite']}; sqlalchemy-utils {env['sqlalchemy-utils']}\n"
    )
    with tempfile.TemporaryDirectory(prefix="securecustomer-sql-bench-") as tmp:
        workdir = Path(tmp)
        provider = CountingProvider(LocalKeyProvider.generate())
        store = SqlKeyStore(sqlite_engine(workdir / "keys.db"))
        store.create()
        # Warm: the column keys are created at first use, once in an application's life;
        # the keyring keeps its defaults (60 s cache, expiry checked on every value).
        default_keyring.bind(Keyring(provider, store).load())
        table_data = rows[: args.rows]
        jobs = table_jobs(candidates() + references(table_data), table_data, workdir)
        cases = subject_cases(rows[: args.subjects], workdir, provider, store)
        print(f"checked every path; timing {args.rounds} rounds of {len(jobs)} jobs")
        measure(jobs, args.rounds, args.seed)
        measure([c.job for c in cases], args.subject_rounds, args.seed)
        default_keyring.unbind()

    print(text_report(jobs, cases))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    record: dict[str, Any] = {
        "environment": env,
        "rows": args.rows,
        "rounds": args.rounds,
        "subjects": args.subjects,
        "subject_rounds": args.subject_rounds,
        "sqlite_pragmas": list(PRAGMAS),
        "statistic": "median of rounds, milliseconds per operation on all rows",
        "styles": STYLE_NOTES,
        "jobs": [
            {
                "candidate": j.candidate,
                "reference": j.candidate not in ("plain", "securecustomer", "sqlalchemy-utils"),
                "operation": j.op,
                "style": j.style,
                "median_ms": j.median(),
                "min_ms": min(j.samples),
                "samples_ms": j.samples,
            }
            for j in jobs
        ],
        "targets": targets(jobs),
        "subject_selects": [
            {
                "case": c.name,
                "key_scopes": c.scopes,
                "median_ms": c.job.median(),
                "samples_ms": c.job.samples,
                "provider_calls_load": c.load_calls,
                "provider_calls_select": c.calls,
                "key_store_queries_load": c.load_queries,
                "key_store_queries_select": c.queries,
                "expected_key_store_queries_select": _expected_queries(c),
            }
            for c in cases
        ],
    }
    path = RESULTS / f"sql-{stamp}.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote benchmarks/results/{path.name} in {time.monotonic() - began:.0f} s")
    if args.write_docs:
        write_docs(markdown(record, jobs, cases), START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
