"""What is stored must be exactly the canonical encoding, and hostile stored text is reported
as tampering at its position, never raised (issue 14, findings 3 and 4).

The chain's MAC covers the canonical encoding of the *parsed* record. Text that parses to the
same record (duplicate keys, spaces, escapes, ``"seq":"2"``) would verify while meaning
something else to another reader (MariaDB's ``JSON_VALUE`` reads the first of duplicate
keys): verification compares each stored line, or SQL row, with the record's canonical
encoding byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    Checkpoint,
    JsonlAuditSink,
    MemoryAuditSink,
    SqlAuditSink,
    VerificationReport,
    records_from_lines,
)
from securecustomer.exceptions import AuditError

KEY = bytes(range(32))
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def fill(trail: AuditTrail, count: int = 3) -> Checkpoint:
    for n in range(count):
        trail.append(
            AuditEvent(
                action="read",
                actor=f"user-{n}",
                resource_type="customer",
                subject=trail.pseudonym(n),
                fields=("email",),
                extra={"note": "Zoë"},
                timestamp=AT + dt.timedelta(seconds=n),
            )
        )
    return trail.checkpoint()


def expect(report: VerificationReport, first_bad: int, *words: str) -> None:
    assert (False, first_bad) == (report.ok, report.first_bad), report
    assert report.problem is not None
    for word in words:
        assert word in report.problem, report


#: Rewrites of a stored event's JSON text that parse to the same record.
EVENT_REWRITES: dict[str, Callable[[bytes], bytes]] = {
    "space after a colon": lambda t: t.replace(b'"action":"read"', b'"action": "read"'),
    "duplicate key, first one read by JSON_VALUE": lambda t: t.replace(
        b'"action":"read"', b'"action":"export","action":"read"'
    ),
    "escaped letter": lambda t: t.replace(b'"action":"read"', b'"action":"\\u0072ead"'),
    "upper-case escape": lambda t: t.replace(b"\\u00eb", b"\\u00EB"),
    "raw UTF-8 instead of an escape": lambda t: t.replace(b"\\u00eb", "ë".encode()),
    "trailing space": lambda t: t + b" ",
    "float for an int": lambda t: t.replace(b'"schema":1', b'"schema":1.0'),
    "key order": lambda t: b'{"schema":1,' + t[1:].replace(b',"schema":1', b""),
}

#: Rewrites of a whole JSON line (the record's envelope around the event).
LINE_REWRITES: dict[str, Callable[[bytes], bytes]] = {
    **{f"event: {what}": rewrite for what, rewrite in EVENT_REWRITES.items()},
    "seq as a string": lambda line: line.replace(b'"seq":2}', b'"seq":"2"}'),
    "seq as a float": lambda line: line.replace(b'"seq":2}', b'"seq":2.0}'),
    "duplicate seq": lambda line: b'{"seq":99,' + line[1:],
    "envelope key order": lambda line: b'{"seq":2,' + line[1:].replace(b',"seq":2}', b"}"),
    "carriage return": lambda line: line + b"\r",
}


class TestCanonicalText:
    """A stored record that is not exactly its canonical encoding fails verification at its
    position, even against a signed checkpoint; a trail written by this code verifies."""

    @pytest.mark.parametrize("what", LINE_REWRITES)
    def test_jsonl_rewrites(self, tmp_path: Path, what: str) -> None:
        path = tmp_path / "audit.jsonl"
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)
        checkpoint = fill(trail)
        lines = path.read_bytes().split(b"\n")
        rewritten = LINE_REWRITES[what](lines[1])
        assert rewritten != lines[1]
        lines[1] = rewritten
        path.write_bytes(b"\n".join(lines))

        expect(trail.verify([checkpoint]), 2)

    @pytest.mark.parametrize("what", EVENT_REWRITES)
    def test_sql_rewrites(self, engine: sa.Engine, what: str) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail = AuditTrail(sink, key=KEY)
        checkpoint = fill(trail)
        t = sink.table
        with engine.begin() as conn:
            text = conn.execute(sa.select(t.c.event).where(t.c.seq == 2)).scalar_one()
            rewritten = EVENT_REWRITES[what](text.encode()).decode()
            assert rewritten != text
            conn.execute(sa.update(t).where(t.c.seq == 2).values(event=rewritten))

        expect(trail.verify([checkpoint]), 2)

    def test_sql_padded_hash(self, sqlite_url: str) -> None:
        engine = sa.create_engine(sqlite_url)
        try:
            sink = SqlAuditSink(engine)
            sink.create()
            trail = AuditTrail(sink, key=KEY)
            checkpoint = fill(trail)
            t = sink.table
            with engine.begin() as conn:
                conn.execute(sa.update(t).where(t.c.seq == 2).values(hash=t.c.hash + " "))
            expect(trail.verify([checkpoint]), 2)
        finally:
            engine.dispose()

    def test_a_trail_written_by_this_code_verifies(self, tmp_path: Path, engine: sa.Engine) -> None:
        sql = SqlAuditSink(engine)
        sql.create()
        jsonl = JsonlAuditSink(tmp_path / "audit.jsonl", max_bytes=2000)
        for sink in (sql, jsonl, MemoryAuditSink()):
            trail = AuditTrail(sink, key=KEY, batch_size=4)
            checkpoint = fill(trail, 20)
            report = trail.verify([checkpoint])
            assert (True, 20) == (report.ok, report.checked), (sink, report)
        assert len(jsonl.rotated_files()) > 1


def _valid_line_2(tmp_path: Path) -> tuple[AuditTrail, Path, list[bytes]]:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(JsonlAuditSink(path), key=KEY)
    fill(trail)
    return trail, path, path.read_bytes().split(b"\n")[:-1]


DEEP = 50_000


def hostile_lines(line: bytes) -> dict[str, bytes]:
    """Planted lines, made from a valid *line* (record 2) where they need its chain values."""
    head, _, rest = line.partition(b'"hash":')
    chain = b'"hash":' + rest.rpartition(b',"seq":')[0]
    return {
        "not JSON": b"not json",
        "a JSON array": b"[1, 2, 3]",
        "JSON null": b"null",
        "a JSON string": b'"record"',
        "deep nesting": b"[" * DEEP + b"]" * DEEP,
        "deep nesting in the event": b'{"event":{"a":'
        + b"[" * DEEP
        + b"]" * DEEP
        + b"},"
        + chain
        + b',"seq":2}',
        "seq overflowing to infinity": b'{"event":{},' + chain + b',"seq":1e400}',
        "a huge seq": b'{"event":{},' + chain + b',"seq":' + b"9" * 5000 + b"}",
        "a seq past 64 bits": b'{"event":{},' + chain + b',"seq":' + b"9" * 30 + b"}",
        "a negative seq": b'{"event":{},' + chain + b',"seq":-2}',
        "a boolean seq": b'{"event":{},' + chain + b',"seq":true}',
        "missing keys": b'{"seq":2}',
        "event not an object": b'{"event":[],' + chain + b',"seq":2}',
        "prev not a string": line.replace(b'"prev":"', b'"prev":["').replace(
            b'","seq"', b'"],"seq"'
        ),
        "hash null": head + b'"hash":null,' + rest.partition(b",")[2],
        "NaN in the event": line.replace(b'"duration_ms":null', b'"duration_ms":NaN'),
        "infinity in the event": line.replace(b'"duration_ms":null', b'"duration_ms":1e400'),
        "huge int in the event": line.replace(
            b'"duration_ms":null', b'"duration_ms":' + b"7" * 5000
        ),
        "NUL bytes": b"\x00" * 16,
        "NUL in a string": line.replace(b'"read"', b'"re\x00ad"'),
        "invalid UTF-8": line.replace(b'"read"', b'"r\xffad"'),
        "lone surrogate escape": line.replace(b'"read"', b'"\\ud800"'),
        "non-string keys in the event": line.replace(b'"schema":1', b'"schema":{"1":2}'),
    }


HOSTILE = list(hostile_lines(b'{"event":{},"hash":"h","prev":"p","seq":2}'))


_ZEROS = "0" * 64
_AUDIT = '{"event":"audit","prev":"' + _ZEROS + '","hash":"' + _ZEROS + '","seq":'
STRUCTLOG_HOSTILE = {
    "seq overflowing to infinity": _AUDIT + "1e400}",
    "a huge seq": _AUDIT + "9" * 5000 + "}",
    "seq not a number": _AUDIT + "[]}",
    "a negative seq": _AUDIT + "-2}",
    "a boolean seq": _AUDIT + "true}",
    "deep nesting": "[" * DEEP + "]" * DEEP,
    "deep nesting in the event": _AUDIT + '2,"extra":' + "[" * DEEP + "]" * DEEP + "}",
    "prev not a string": _AUDIT.replace('"prev":"' + _ZEROS + '"', '"prev":null') + "2}",
}


class TestHostileLines:
    """A planted line never makes verification or reading raise: it is reported as tampering
    at its position (record number, and the file's line number)."""

    @pytest.mark.parametrize("what", HOSTILE)
    def test_jsonl_line_in_the_middle(self, tmp_path: Path, what: str) -> None:
        trail, path, lines = _valid_line_2(tmp_path)
        lines[1] = hostile_lines(lines[1])[what]
        path.write_bytes(b"\n".join(lines) + b"\n")

        expect(trail.verify(), 2)
        assert 3 == len(list(trail.sink.records()))

    @pytest.mark.parametrize("what", HOSTILE)
    def test_jsonl_line_at_the_end(self, tmp_path: Path, what: str) -> None:
        trail, path, lines = _valid_line_2(tmp_path)
        lines.append(hostile_lines(lines[1])[what])
        path.write_bytes(b"\n".join(lines) + b"\n")

        expect(trail.verify(), 4)

    def test_unreadable_line_is_named(self, tmp_path: Path) -> None:
        trail, path, lines = _valid_line_2(tmp_path)
        lines[1] = b"not json"
        path.write_bytes(b"\n".join(lines) + b"\n")

        expect(trail.verify(), 2, "line 2", "audit.jsonl")

    @pytest.mark.parametrize("what", STRUCTLOG_HOSTILE)
    def test_structlog_lines(self, what: str) -> None:
        sink = MemoryAuditSink()
        trail = AuditTrail(sink, key=KEY)
        fill(trail)
        lines = [
            json.dumps({"event": "audit", "seq": r.seq, "prev": r.prev, "hash": r.hash, **r.event})
            for r in sink.stored
        ]
        lines[1] = STRUCTLOG_HOSTILE[what]
        read = MemoryAuditSink()
        read.stored.extend(records_from_lines(lines))

        expect(AuditTrail(read, key=KEY).verify(), 2)

    @pytest.mark.parametrize(
        "text",
        [
            "not json",
            "[]",
            "null",
            '{"a":' + "[" * DEEP + "]" * DEEP + "}",
            '{"a":NaN}',
            '{"a":1e400}',
            '{"a":' + "7" * 5000 + "}",
            '{"a":"\\ud800"}',
            '{"a":1,"a":2}',
            "",
        ],
        ids=["text", "array", "null", "deep", "nan", "inf", "huge", "surrogate", "dup", "empty"],
    )
    def test_sql_event_text(self, engine: sa.Engine, text: str) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail = AuditTrail(sink, key=KEY)
        fill(trail)
        t = sink.table
        with engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.seq == 2).values(event=text))

        expect(trail.verify(), 2)
        assert 3 == len(list(sink.records()))

    def test_sql_columns(self, engine: sa.Engine) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail = AuditTrail(sink, key=KEY)
        fill(trail)
        t = sink.table
        for values in ({"prev": "x" * 64}, {"hash": "Z" * 64}, {"seq": 10**15}):
            with engine.begin() as conn:
                rows = [r._asdict() for r in conn.execute(sa.select(t).order_by(t.c.seq))]
                conn.execute(sa.update(t).where(t.c.seq == 2).values(**values))
            expect(trail.verify(), 2)
            with engine.begin() as conn:
                conn.execute(sa.delete(t))
                conn.execute(sa.insert(t), rows)
        assert trail.verify().ok

    def test_nothing_is_linked_or_signed_after_an_unreadable_last_row(
        self, engine: sa.Engine
    ) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail = AuditTrail(sink, key=KEY)
        fill(trail)
        t = sink.table
        with engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.seq == 3).values(event="not json"))
        with pytest.raises(AuditError, match="the last row is not a valid record"):
            trail.checkpoint()
        with pytest.raises(AuditError):
            fill(trail, 1)
        assert 3 == len(list(sink.records()))
