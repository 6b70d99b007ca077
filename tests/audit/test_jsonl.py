"""JsonlAuditSink: round trips, rotation, fsync policies, torn lines and file modes."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from securecustomer.audit import AuditEvent, AuditTrail, JsonlAuditSink, Record
from securecustomer.audit._event import canonical
from securecustomer.exceptions import AuditError

KEY = bytes(range(32))
AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


def event(n: int = 0, **keys: Any) -> AuditEvent:
    base: dict[str, Any] = {"action": "read", "actor": f"user-{n}", "timestamp": AT}
    return AuditEvent(**(base | keys))


def fill(trail: AuditTrail, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        trail.append(event(n))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestRoundTrip:
    """What is appended is read back unchanged, one canonical JSON object per line."""

    def test_records_and_events_come_back(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl")
        trail = AuditTrail(sink, key=KEY)
        sent = [event(n, extra={"amount": 1.25, "name": "Zoë"}) for n in range(5)]
        for e in sent:
            trail.append(e)

        read = list(sink.records())

        assert [1, 2, 3, 4, 5] == [r.seq for r in read]
        assert sent == [r.audit_event() for r in read]
        assert trail.verify().ok

    def test_one_canonical_object_per_line(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        sink = JsonlAuditSink(path)
        stored = sink.append([event(1), event(2)], AuditTrail(sink, key=KEY)._keys.link)

        lines = path.read_bytes().splitlines(keepends=True)

        assert [canonical(r.to_dict()) + b"\n" for r in stored] == lines
        assert stored == [Record.from_dict(json.loads(line)) for line in lines]

    def test_a_new_sink_continues_the_chain(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        fill(AuditTrail(JsonlAuditSink(path), key=KEY), 3)
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)
        fill(trail, 3, start=3)

        assert [1, 2, 3, 4, 5, 6] == [r.seq for r in trail.sink.records()]
        assert trail.verify().ok

    def test_two_sinks_on_one_file_see_each_other(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        first = AuditTrail(JsonlAuditSink(path), key=KEY)
        second = AuditTrail(JsonlAuditSink(path), key=KEY)
        for n in range(6):
            (first if n % 2 else second).append(event(n))

        report = first.verify()

        assert report.ok
        assert 6 == report.checked

    def test_empty_trail(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl")

        assert [] == list(sink.records())
        assert [] == sink.append([], AuditTrail(sink, key=KEY)._keys.link)

    def test_files_are_private(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        fill(AuditTrail(JsonlAuditSink(path, max_bytes=600), key=KEY), 4)

        files = sorted(tmp_path.iterdir())

        assert len(files) > 2
        assert {0o600} == {mode(p) for p in files}

    def test_bad_options_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="fsync must be one of"):
            JsonlAuditSink(tmp_path / "a.jsonl", fsync="sometimes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_bytes"):
            JsonlAuditSink(tmp_path / "a.jsonl", max_bytes=0)

    def test_an_unwritable_place_is_an_audit_error(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "missing" / "audit.jsonl")
        trail = AuditTrail(sink, key=KEY)

        with pytest.raises(AuditError, match="could not store 1 event"):
            trail.append(event())


class TestRotation:
    """A full file is renamed after its first and last seq; the chain runs on across files."""

    def test_rotated_files_are_named_and_read_in_order(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        sink = JsonlAuditSink(path, max_bytes=1000)
        trail = AuditTrail(sink, key=KEY)
        fill(trail, 12)

        rotated = sink.rotated_files()
        names = [p.name for p in rotated]
        spans = [tuple(int(s) for s in n.rsplit(".", 1)[1].split("-")) for n in names]

        assert len(rotated) >= 3
        assert names == sorted(names)
        assert 1 == spans[0][0]
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))
        assert all(p.stat().st_size >= 1000 for p in rotated)
        assert list(range(1, 13)) == [r.seq for r in sink.records()]
        assert trail.verify(checkpoints=[trail.checkpoint()]).ok

    def test_chain_continues_after_rotation_from_a_new_sink(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        fill(AuditTrail(JsonlAuditSink(path, max_bytes=1), key=KEY), 3)
        assert not path.exists()  # every append rotated: the head is in a rotated file

        trail = AuditTrail(JsonlAuditSink(path, max_bytes=1), key=KEY)
        fill(trail, 2, start=3)

        assert 5 == len(trail.sink.rotated_files())
        assert trail.verify().ok

    def test_a_deleted_rotated_file_is_found(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        sink = JsonlAuditSink(path, max_bytes=1000)
        trail = AuditTrail(sink, key=KEY)
        fill(trail, 12)
        second = sink.rotated_files()[1]
        first_seq = int(second.name.rsplit(".", 1)[1].split("-")[0])

        second.unlink()
        report = trail.verify()

        assert not report.ok
        assert first_seq == report.first_bad


class TestFsync:
    """Every fsync policy writes the same verifiable trail; ``sync`` flushes a batch."""

    @pytest.mark.parametrize("policy", ["always", "batch", "never"])
    def test_policies(self, tmp_path: Path, policy: Any) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl", fsync=policy, max_bytes=900)
        trail = AuditTrail(sink, key=KEY)
        fill(trail, 10)
        sink.sync()

        assert policy == sink.fsync
        assert 10 == trail.verify().checked

    def test_batch_syncs_when_the_interval_has_passed(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl", fsync="batch", sync_interval=0.0)
        trail = AuditTrail(sink, key=KEY)
        fill(trail, 3)

        assert not sink._unsynced
        assert trail.verify().ok

    def test_sync_of_an_empty_trail(self, tmp_path: Path) -> None:
        sink = JsonlAuditSink(tmp_path / "audit.jsonl", fsync="batch", sync_interval=3600)
        sink.sync()

        assert [] == list(sink.records())


class TestTornLine:
    """A line cut short by a killed writer is never read, and the next append removes it."""

    def torn(self, tmp_path: Path) -> tuple[Path, AuditTrail, bytes]:
        path = tmp_path / "audit.jsonl"
        fill(AuditTrail(JsonlAuditSink(path), key=KEY), 4)
        whole = path.read_bytes()
        last = whole.splitlines(keepends=True)[-1]
        with path.open("ab") as f:
            f.write(last[: len(last) // 2])  # what a writer killed mid-write leaves
        return path, AuditTrail(JsonlAuditSink(path), key=KEY), whole

    def test_complete_records_still_verify(self, tmp_path: Path) -> None:
        _, trail, _ = self.torn(tmp_path)

        report = trail.verify()

        assert report.ok
        assert 4 == report.checked

    def test_append_truncates_the_partial_line_and_links_after_the_last_record(
        self, tmp_path: Path
    ) -> None:
        path, trail, whole = self.torn(tmp_path)
        trail.append(event(99))

        data = path.read_bytes()

        assert data.startswith(whole)
        assert 5 == len(data.splitlines())
        assert [1, 2, 3, 4, 5] == [r.seq for r in trail.sink.records()]
        assert trail.verify().ok

    def test_a_torn_line_in_a_cached_sink_is_found(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)
        fill(trail, 2)
        with path.open("ab") as f:
            f.write(b'{"event":{"act')

        fill(trail, 1, start=2)

        assert [1, 2, 3] == [r.seq for r in trail.sink.records()]
        assert trail.verify().ok


class TestUnreadableLines:
    """A line that is not a record shows at its position, and nothing is linked after it."""

    def test_a_garbage_line_is_reported_where_it_is(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)
        fill(trail, 5)
        lines = path.read_bytes().splitlines(keepends=True)
        lines[2] = b"not json at all\n"
        path.write_bytes(b"".join(lines))

        report = trail.verify()

        assert not report.ok
        assert 3 == report.first_bad

    def test_no_append_after_an_unreadable_last_line(self, tmp_path: Path) -> None:
        path = tmp_path / "audit.jsonl"
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)
        fill(trail, 2)
        with path.open("ab") as f:
            f.write(b"[1, 2, 3]\n")
        size = path.stat().st_size

        with pytest.raises(AuditError) as caught:
            AuditTrail(JsonlAuditSink(path), key=KEY).append(event(secret := 1234567))

        assert str(secret) not in str(caught.value)
        assert size == path.stat().st_size
        assert os.fspath(path) in str(caught.value.__cause__)
