"""Tamper detection over trails of thousands of records, in every sink, at every position.

For each sink a trail of `SIZE` events is built once and read back through the sink's own
``records()``. Then every edit, deletion, insertion, swap and tail cut at each position is
applied to a copy of those records and verified with `verify_chain` and the trail's keys:
each must fail with ``first_bad`` at the right sequence number. A tail cut is found only
with a checkpoint; without one the shorter chain is valid (the documented limit).

The chain MACs of the records left untouched are memoized (`MemoKeys`, below: a cache in
front of the real keys, keyed by the event object itself); the verifier and every MAC of a
changed record run for real. Every position is swept on a trail of `EVERY_SIZE` records in
the memory sink (about 4,800 tampered trails); the `SIZE`-record trails of every sink get
the same tampers at `SAMPLED` positions (both ends and every 97th record). The cost of a
sweep grows with the square of the trail's length (each tampered copy is verified up to its
change), and under coverage tracing a full sweep of 2,000 records takes minutes of CI time
without checking anything the sampled sweeps and the shorter full one do not.

A smaller number of real tamperings of the file or table themselves show that each sink's
``records()`` surfaces them.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

from securecustomer.audit import (
    AuditEvent,
    AuditSink,
    AuditTrail,
    Checkpoint,
    JsonlAuditSink,
    MemoryAuditSink,
    Record,
    SqlAuditSink,
)
from securecustomer.audit._chain import GENESIS, ChainKeys, VerificationReport, verify_chain

SIZE = 2000
EVERY_SIZE = 400
KEY = bytes(range(32))
OTHER = ChainKeys(bytes(range(1, 33)))  # a forger's key: not the trail's
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


class MemoKeys:
    """The trail's keys with a memo of each (seq, prev, event object) -> MAC."""

    def __init__(self, keys: ChainKeys) -> None:
        self.keys = keys
        self.public_key = keys.public_key
        self.memo: dict[tuple[int, str, int], tuple[Mapping[str, Any], str]] = {}

    def digest(self, seq: int, prev: str, event: Mapping[str, Any]) -> str:
        hit = self.memo.get((seq, prev, id(event)))
        if hit is not None and hit[0] is event:
            return hit[1]
        digest = self.keys.digest(seq, prev, event)
        self.memo[(seq, prev, id(event))] = (event, digest)  # holds event: ids stay unique
        return digest


def build(sink: AuditSink, size: int = SIZE) -> tuple[AuditTrail, list[Record], Checkpoint]:
    trail = AuditTrail(sink, key=KEY, batch_size=100)
    with trail:
        for n in range(size):
            trail.append(
                AuditEvent(
                    action="read",
                    actor=f"user-{n % 17}",
                    resource_type="customer",
                    resource_id=str(n),
                    fields=("email",),
                    timestamp=AT + dt.timedelta(seconds=n),
                )
            )
    records = list(sink.records())
    assert size == len(records)
    return trail, records, trail.checkpoint()


def forged(seq: int, prev: str) -> Record:
    event = AuditEvent(action="delete", actor="intruder", timestamp=AT).to_dict()
    return Record(seq, prev, OTHER.digest(seq, prev, event), event)


def renumbered(records: Iterable[Record], by: int) -> Iterable[Record]:
    return (attrs.evolve(r, seq=r.seq + by) for r in records)


#: Positions swept in the JSON-lines and SQL sinks' records: both ends and every 97th.
SAMPLED = sorted({*range(12), *range(0, SIZE, 97), *range(SIZE - 12, SIZE)})


def tampered_trails(
    records: list[Record], positions: Iterable[int]
) -> Iterable[tuple[str, int, Iterable[Record]]]:
    """(what, expected first_bad, records) for every tamper at each of *positions*."""
    n = len(records)
    for i in positions:  # records[i] has seq i + 1
        seq, before, r = i + 1, records[:i], records[i]
        prev = GENESIS if i == 0 else records[i - 1].hash
        after = records[i + 1 :]
        edited = {**r.event, "action": "export"}
        yield "edit event", seq, [*before, attrs.evolve(r, event=edited), *after]
        yield "edit hash", seq, [*before, attrs.evolve(r, hash="0" * 64), *after]
        yield "edit prev", seq, [*before, attrs.evolve(r, prev="f" * 64), *after]
        yield "reseal with another key", seq, [*before, forged(seq, prev), *after]
        yield (
            "forged insertion",
            seq,
            itertools.chain(before, [forged(seq, prev)], renumbered(records[i:], 1)),
        )
        yield "replayed record", seq + 1, [*before, r, r, *after]
        if i < n - 1:
            yield "deletion", seq, [*before, *after]
            yield "renumbered deletion", seq, itertools.chain(before, renumbered(after, -1))
            nxt = records[i + 1]
            yield "swap", seq, [*before, nxt, r, *records[i + 2 :]]
            yield (
                "swap keeping seqs",
                seq,
                [
                    *before,
                    attrs.evolve(nxt, seq=seq),
                    attrs.evolve(r, seq=seq + 1),
                    *records[i + 2 :],
                ],
            )
    yield "forged insertion at the end", n + 1, [*records, forged(n + 1, records[-1].hash)]


def sweep(
    trail: AuditTrail, records: list[Record], checkpoint: Checkpoint, positions: list[int]
) -> int:
    """Apply every tamper at each of *positions*; the number of tampered trails checked."""
    keys = MemoKeys(trail._keys)
    checked = 0
    assert verify_chain(keys, records, [checkpoint]).ok  # type: ignore[arg-type]
    for what, first_bad, trail_records in tampered_trails(records, positions):
        report = verify_chain(keys, trail_records)  # type: ignore[arg-type]
        assert (False, first_bad) == (report.ok, report.first_bad), (what, report)
        checked += 1
    for kept in positions:  # tail cuts: found with a checkpoint, not without
        cut = records[:kept]
        found = verify_chain(keys, cut, [checkpoint])  # type: ignore[arg-type]
        assert (False, kept + 1) == (found.ok, found.first_bad), ("cut", kept, found)
        unseen = verify_chain(keys, cut)  # type: ignore[arg-type]
        assert (True, kept) == (unseen.ok, unseen.checked), ("cut unseen", kept, unseen)
        checked += 2
    return checked


def expected_checks(positions: list[int], size: int = SIZE) -> int:
    """12 tampered trails per position (8 at the last), one insertion at the end."""
    return 12 * len(positions) - 4 * (size - 1 in positions) + 1


def expect(report: VerificationReport, first_bad: int) -> None:
    assert (False, first_bad) == (report.ok, report.first_bad), report


class TestEveryTamperAtEveryPosition:
    """Each edit, deletion, insertion, swap and cut of a trail read back from each sink fails
    verification at its own position (a cut only against a checkpoint): at every position
    of a 400-record trail, and at `SAMPLED` positions of 2,000-record trails."""

    def test_memory(self) -> None:
        trail, records, checkpoint = build(MemoryAuditSink(), EVERY_SIZE)
        every = list(range(EVERY_SIZE))

        assert 12 * EVERY_SIZE - 3 == expected_checks(every, EVERY_SIZE)
        assert 12 * EVERY_SIZE - 3 == sweep(trail, records, checkpoint, every)

    def test_memory_sampled(self) -> None:
        trail, records, checkpoint = build(MemoryAuditSink())

        assert expected_checks(SAMPLED) == sweep(trail, records, checkpoint, SAMPLED)

    def test_jsonl(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl", fsync="never", max_bytes=100_000)
        trail, records, checkpoint = build(sink)

        assert len(sink.rotated_files()) > 2
        assert expected_checks(SAMPLED) == sweep(trail, records, checkpoint, SAMPLED)

    def test_sql(self, engine: sa.Engine) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail, records, checkpoint = build(sink)

        assert expected_checks(SAMPLED) == sweep(trail, records, checkpoint, SAMPLED)


class TestTamperedStorage:
    """Tampering with the JSONL files or the SQL table is surfaced by the sink's own
    ``records()`` at the right position."""

    POSITIONS = (1, 2, 777, SIZE - 1)

    def test_jsonl_file(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        trail, _, checkpoint = build(JsonlAuditSink(path, fsync="never"))
        original = path.read_bytes()
        lines = original.splitlines(keepends=True)

        def verify(
            content: list[bytes], checkpoints: tuple[Checkpoint, ...] = ()
        ) -> VerificationReport:
            copy = tmp_path / "copy" / "audit.jsonl"
            shutil.rmtree(copy.parent, ignore_errors=True)
            copy.parent.mkdir()
            copy.write_bytes(b"".join(content))
            return verify_chain(trail._keys, JsonlAuditSink(copy).records(), checkpoints)

        for pos in self.POSITIONS:
            i = pos - 1
            edited = lines[i].replace(b'"action":"read"', b'"action":"erase"')
            assert edited != lines[i]
            expect(verify([*lines[:i], edited, *lines[i + 1 :]]), pos)
            expect(verify([*lines[:i], *lines[i + 1 :]]), pos)
            expect(verify([*lines[:i], lines[i + 1], lines[i], *lines[i + 2 :]]), pos)
            expect(verify([*lines[:i], lines[i], *lines[i:]]), pos + 1)
            expect(verify(lines[:i], (checkpoint,)), pos)
            assert verify(lines[:i]).ok
        assert verify(lines, (checkpoint,)).ok

    def test_sql_table(self, engine: sa.Engine) -> None:
        sink = SqlAuditSink(engine)
        sink.create()
        trail, _, checkpoint = build(sink)
        t = sink.table
        with engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(sa.select(t).order_by(t.c.seq))]

        def verify(
            *statements: Any, checkpoints: tuple[Checkpoint, ...] = ()
        ) -> VerificationReport:
            with engine.begin() as conn:
                conn.execute(sa.delete(t))
                conn.execute(sa.insert(t), rows)
                for statement in statements:
                    conn.execute(statement)
            return verify_chain(trail._keys, sink.records(), checkpoints)

        for pos in self.POSITIONS:
            row, nxt = rows[pos - 1], rows[pos]
            edited = row["event"].replace('"action":"read"', '"action":"erase"')
            expect(verify(sa.update(t).where(t.c.seq == pos).values(event=edited)), pos)
            expect(verify(sa.delete(t).where(t.c.seq == pos)), pos)
            swap = [
                sa.update(t).where(t.c.seq == pos).values(seq=-1),
                sa.update(t).where(t.c.seq == pos + 1).values(seq=pos),
                sa.update(t).where(t.c.seq == -1).values(seq=pos + 1),
            ]
            expect(verify(*swap), pos)
            replaced = [
                sa.delete(t).where(t.c.seq == pos),
                sa.insert(t).values(**{**nxt, "seq": pos, "event": edited}),
            ]
            expect(verify(*replaced), pos)
            inserted = [
                sa.update(t).where(t.c.seq >= pos).values(seq=-(t.c.seq + 1)),
                sa.update(t).where(t.c.seq < 0).values(seq=-t.c.seq),
                sa.insert(t).values(**{**row, "event": edited}),
            ]
            expect(verify(*inserted), pos)
            cut = sa.delete(t).where(t.c.seq >= pos)
            expect(verify(cut, checkpoints=(checkpoint,)), pos)
            assert verify(cut).ok
        assert verify(checkpoints=(checkpoint,)).ok
