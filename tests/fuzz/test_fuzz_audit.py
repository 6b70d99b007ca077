"""Fuzzing the audit trail's readers and verifier with hostile stored text (issue 14).

Whatever bytes a JSON-lines file, a SQL row or a structlog line holds, reading and verifying
the trail and ``securecustomer audit report`` never raise: a bad record is reported as
tampering at its position. A canonical record changed in any way never verifies.
``SECURECUSTOMER_FUZZ_EXAMPLES`` sets the number of examples per target (``nox -s fuzz``);
the targets that run the command line or a database per example get a quarter of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import json_values

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    JsonlAuditSink,
    MemoryAuditSink,
    SqlAuditSink,
    records_from_lines,
)
from securecustomer.cli import main

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: The targets that run the command line or a database per example take a share of them.
SLOW = settings(FUZZ, max_examples=max(10, EXAMPLES // 4))
KEY = bytes(range(32))
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def _events(trail: AuditTrail, count: int = 3) -> None:
    for n in range(count):
        trail.append(
            AuditEvent(
                action="read",
                actor=f"user-{n}",
                resource_type="customer",
                subject=trail.pseudonym(n),
                fields=("email",),
                extra={"note": "Zoë", "n": n},
                timestamp=AT + dt.timedelta(seconds=n),
            )
        )


def _canonical_lines() -> list[bytes]:
    sink = MemoryAuditSink()
    _events(AuditTrail(sink, key=KEY))
    return [record.line() for record in sink.stored]


LINES = _canonical_lines()


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """*original* with bytes flipped, inserted, deleted or a slice repeated."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("flip", "insert", "delete", "repeat", "json")))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(_TOKENS))
        elif kind == "delete" and data:
            data[at : at + draw(st.integers(1, 8))] = b""
        elif kind == "repeat":
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
        else:
            data[at:at] = json.dumps(draw(json_values)).encode()
    return bytes(data)


_TOKENS = (b" ", b",", b'"', b"\\", b"{", b"[", b"\\u0000", b"1e400", b"NaN", b'"seq":"2"', b"\n")

#: A line of any kind: random bytes, a mutation of a canonical record, any JSON value.
hostile_lines = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(LINES).flatmap(mutations),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.integers(1, 60_000).map(lambda depth: b"[" * depth + b"]" * depth),
)


def _report(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(argv)


class TestJsonLines:
    """Planted and mutated lines in a JSON-lines trail."""

    @SLOW
    @given(position=st.integers(0, len(LINES)), planted=hostile_lines)
    def test_never_raises_and_a_changed_line_never_verifies(
        self, position: int, planted: bytes
    ) -> None:
        lines = list(LINES)
        if position < len(lines):
            lines[position] = planted.replace(b"\n", b"")
        else:
            lines.append(planted.replace(b"\n", b""))
        with tempfile.TemporaryDirectory() as where:
            path = Path(where) / "audit.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in lines))
            trail = AuditTrail(JsonlAuditSink(path), key=KEY)
            report = trail.verify()
            if lines != LINES:
                assert (False, position + 1) == (report.ok, report.first_bad), report
            os.environ["SC_FUZZ_AUDIT_KEY"] = KEY.hex()
            argv = ["audit", "report", "--jsonl", str(path), "--key-env", "SC_FUZZ_AUDIT_KEY"]
            assert _report([*argv, "--format", "json"]) in (0, 1)
            verify = ["audit", "verify", "--jsonl", str(path), "--key-env", "SC_FUZZ_AUDIT_KEY"]
            assert (0 if lines == LINES else 1) == _report(verify)

    @FUZZ
    @given(
        st.sampled_from(range(len(LINES))).flatmap(
            lambda i: st.tuples(st.just(i), mutations(LINES[i]))
        )
    )
    def test_a_mutated_canonical_record_never_verifies(self, case: tuple[int, bytes]) -> None:
        index, mutated = case
        if b"\n" in mutated or mutated == LINES[index]:
            return
        lines = [*LINES[:index], mutated, *LINES[index + 1 :]]
        with tempfile.TemporaryDirectory() as where:
            path = Path(where) / "audit.jsonl"
            path.write_bytes(b"".join(line + b"\n" for line in lines))
            report = AuditTrail(JsonlAuditSink(path), key=KEY).verify()
        assert (False, index + 1) == (report.ok, report.first_bad), report


@pytest.fixture(scope="module")
def sql_trail() -> Iterator[tuple[str, SqlAuditSink, list[dict[str, Any]]]]:
    """A SQLite trail of three records, and its rows (restored before each example)."""
    with tempfile.TemporaryDirectory() as where:
        url = f"sqlite:///{Path(where) / 'audit.db'}"
        engine = sa.create_engine(url)
        try:
            sink = SqlAuditSink(engine)
            sink.create()
            _events(AuditTrail(sink, key=KEY))
            with engine.connect() as conn:
                rows = [r._asdict() for r in conn.execute(sa.select(sink.table))]
            yield url, sink, rows
        finally:
            engine.dispose()


class TestSqlRows:
    """Planted and mutated rows in a SQL trail (SQLite: it stores any text, and any type)."""

    @SLOW
    @given(
        event=st.one_of(
            st.text(max_size=200),
            st.sampled_from(LINES).flatmap(mutations).map(lambda b: b.decode("utf-8", "replace")),
        ),
        prev=st.none() | st.text(max_size=70),
        seq=st.none() | st.integers(4, 2**63 - 1) | st.text(max_size=5) | st.floats(),
    )
    def test_never_raises(
        self,
        sql_trail: tuple[str, SqlAuditSink, list[dict[str, Any]]],
        event: str,
        prev: str | None,
        seq: object,
    ) -> None:
        url, sink, rows = sql_trail
        t = sink.table
        values: dict[str, object] = {"event": event.replace("\x00", "")}
        if prev is not None:
            values["prev"] = prev.replace("\x00", "")
        if seq is not None:
            values["seq"] = seq
        with sink.engine.begin() as conn:
            conn.execute(sa.delete(t))
            conn.execute(sa.insert(t), rows)
            conn.execute(sa.update(t).where(t.c.seq == 2).values(**values))
        report = AuditTrail(sink, key=KEY).verify()
        assert not report.ok or (event, prev, seq) == (rows[1]["event"], None, None)
        os.environ["SC_FUZZ_AUDIT_KEY"] = KEY.hex()
        argv = ["audit", "report", "--sql", url, "--key-env", "SC_FUZZ_AUDIT_KEY"]
        assert _report(argv) in (0, 1)


class TestStructlogLines:
    """Any log lines, planted among a structlog trail's, read and verified."""

    @FUZZ
    @given(planted=st.lists(hostile_lines, max_size=4), position=st.integers(0, 3))
    def test_never_raises(self, planted: list[bytes], position: int) -> None:
        sink = MemoryAuditSink()
        _events(AuditTrail(sink, key=KEY))
        lines = [
            json.dumps({"event": "audit", "seq": r.seq, "prev": r.prev, "hash": r.hash, **r.event})
            for r in sink.stored
        ]
        text = [line.decode("utf-8", "surrogateescape") for line in planted]
        lines[position:position] = text
        read = MemoryAuditSink()
        read.stored.extend(records_from_lines(lines))
        AuditTrail(read, key=KEY).verify()
