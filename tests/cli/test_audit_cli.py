"""`securecustomer audit verify | report`, as an investigator runs them."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from securecustomer.audit import AuditEvent, AuditTrail, JsonlAuditSink, SqlAuditSink
from securecustomer.cli import main

KEY = secrets.token_bytes(32)
T0 = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)


def _fill(trail: AuditTrail) -> None:
    for n in range(6):
        trail.append(
            AuditEvent(
                action="read" if n % 2 else "export",
                actor=f"user-{n % 3}",
                resource_type="customer",
                resource_id=str(n),
                subject=trail.pseudonym(n),
                fields=("email",),
                timestamp=T0 + dt.timedelta(days=n),
            )
        )


@pytest.fixture
def jsonl(tmp_path: Path) -> tuple[Path, AuditTrail]:
    path = tmp_path / "audit.jsonl"
    trail = AuditTrail(JsonlAuditSink(path), key=KEY)
    _fill(trail)
    return path, trail


class TestVerify:
    """verify exits 0 on an intact trail and 1, naming the record, on a tampered one."""

    def test_intact_with_checkpoint(
        self,
        jsonl: tuple[Path, AuditTrail],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, trail = jsonl
        checkpoint = tmp_path / "cp.json"
        checkpoint.write_text(json.dumps(trail.checkpoint().to_dict()))
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        argv = ["audit", "verify", "--jsonl", str(path), "--key-env", "AUDIT_KEY"]
        assert 0 == main([*argv, "--checkpoint", str(checkpoint)])
        assert "ok: 6 records verified, 1 checkpoint(s) reached\n" == capsys.readouterr().out

    def test_edited_record(
        self,
        jsonl: tuple[Path, AuditTrail],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        path, _ = jsonl
        lines = path.read_text().splitlines()
        lines[3] = lines[3].replace('"user-0"', '"user-9"')
        path.write_text("\n".join(lines) + "\n")
        key_file = tmp_path / "key"
        key_file.write_text(KEY.hex())
        assert 1 == main(["audit", "verify", "--jsonl", str(path), "--key-file", str(key_file)])
        assert capsys.readouterr().out.startswith("TAMPERED: record 4: ")

    def test_cut_tail_needs_the_checkpoint(
        self,
        jsonl: tuple[Path, AuditTrail],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, trail = jsonl
        checkpoint = tmp_path / "cp.json"
        checkpoint.write_text(json.dumps(trail.checkpoint().to_dict()))
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:4]))
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        argv = ["audit", "verify", "--jsonl", str(path), "--key-env", "AUDIT_KEY"]
        assert 0 == main(argv)  # a chain alone cannot show a cut tail
        assert 1 == main([*argv, "--checkpoint", str(checkpoint)])
        assert "(cut)" in capsys.readouterr().out

    def test_wrong_key_and_bad_key(
        self,
        jsonl: tuple[Path, AuditTrail],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, _ = jsonl
        monkeypatch.setenv("OTHER", secrets.token_bytes(32).hex())
        assert 1 == main(["audit", "verify", "--jsonl", str(path), "--key-env", "OTHER"])
        assert "TAMPERED: record 1" in capsys.readouterr().out
        monkeypatch.setenv("SHORT", "abcd")
        assert 2 == main(["audit", "verify", "--jsonl", str(path), "--key-env", "SHORT"])
        err = capsys.readouterr().err
        assert "32 bytes" in err
        assert "abcd" not in err
        assert 2 == main(["audit", "verify", "--jsonl", str(path), "--key-env", "UNSET_VAR"])
        assert "'UNSET_VAR' is not set" in capsys.readouterr().err


class TestReport:
    """report filters by actor, action and period, as text or JSON lines."""

    def test_text_filters(
        self, jsonl: tuple[Path, AuditTrail], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path, trail = jsonl
        argv = ["audit", "report", "--jsonl", str(path), "--actor", "user-1"]
        assert 0 == main([*argv, "--since", "2026-11-02", "--until", "2026-11-05"])
        lines = capsys.readouterr().out.splitlines()
        assert 1 == len(lines)
        assert lines[0].split()[0] == "2"
        assert f"customer/1 subject={trail.pseudonym(1)} fields=email success" in lines[0]

    def test_json_and_sql(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        import sqlalchemy as sa

        url = f"sqlite:///{tmp_path / 'audit.db'}"
        sink = SqlAuditSink(sa.create_engine(url))
        sink.create()
        trail = AuditTrail(sink, key=KEY)
        _fill(trail)
        checkpoint = trail.checkpoint()  # the SQL sink finds its head in one query
        assert (6, list(sink.records())[-1].hash) == (checkpoint.seq, checkpoint.hash)
        assert trail.verify(checkpoints=[checkpoint]).ok
        assert 0 == main(
            ["audit", "report", "--sql", url, "--action", "export", "--format", "json"]
        )
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [1, 3, 5] == [row["seq"] for row in rows]
        assert {"export"} == {row["action"] for row in rows}


def _plant(path: Path, position: int, line: bytes) -> None:
    lines = path.read_bytes().split(b"\n")[:-1]
    lines[position - 1] = line
    path.write_bytes(b"\n".join(lines) + b"\n")


def _canonical_line(path: Path, position: int, **changes: Any) -> bytes:
    """Record *position* of *path* with its event changed, spelt canonically."""
    from securecustomer.audit._event import canonical

    data = json.loads(path.read_bytes().split(b"\n")[position - 1])
    for name, value in changes.items():
        if value is _DROP:
            del data["event"][name]
        else:
            data["event"][name] = value
    return canonical(data)


_DROP = object()


class TestHostileRecords:
    """A bad record is one clear line and exit 1; `report` keeps going past it (issue 14,
    findings 4 and 9)."""

    @pytest.mark.parametrize(
        "planted",
        [
            b"not json",
            b"[" * 50_000 + b"]" * 50_000,
            b'{"event":{},"hash":"' + b"0" * 64 + b'","prev":"' + b"0" * 64 + b'","seq":1e400}',
            b"\x00\xff",
        ],
        ids=["text", "deep", "inf", "binary"],
    )
    def test_report_keeps_going(
        self, jsonl: tuple[Path, AuditTrail], capsys: pytest.CaptureFixture[str], planted: bytes
    ) -> None:
        path, _ = jsonl
        _plant(path, 3, planted)
        assert 1 == main(["audit", "report", "--jsonl", str(path)])
        out, err = capsys.readouterr()
        assert ["1", "2", "4", "5", "6"] == [line.split()[0] for line in out.splitlines()]
        assert "record 3: line 3 of audit.jsonl: not a record" in err
        assert 1 == len(err.splitlines())

    @pytest.mark.parametrize(
        "changes",
        [
            {"timestamp": _DROP},
            {"timestamp": "yesterday"},
            {"timestamp": "2026-11-01T09:00:00"},
            {"fields": "email"},
            {"fields": [1, 2]},
            {"actor": ["a"]},
            {"outcome": "maybe"},
            {"extra": []},
            {"duration_ms": "fast"},
            {"schema": True},
        ],
        ids=lambda changes: "-".join(f"{k}={v!r}"[:20] for k, v in changes.items()),
    )
    def test_report_on_a_record_that_is_not_an_event(
        self,
        jsonl: tuple[Path, AuditTrail],
        capsys: pytest.CaptureFixture[str],
        changes: dict[str, Any],
    ) -> None:
        path, _ = jsonl
        _plant(path, 2, _canonical_line(path, 2, **changes))
        for fmt in ("text", "json"):
            assert 1 == main(["audit", "report", "--jsonl", str(path), "--format", fmt])
            out, err = capsys.readouterr()
            assert 5 == len(out.splitlines())
            (problem,) = err.splitlines()
            assert problem.startswith("securecustomer: record 2: not a valid audit event: key ")

    def test_control_characters_are_not_printed_raw(
        self, jsonl: tuple[Path, AuditTrail], capsys: pytest.CaptureFixture[str]
    ) -> None:
        path, _ = jsonl
        _plant(path, 2, _canonical_line(path, 2, actor="\x1b[2Jevil\ud800"))
        assert 0 == main(["audit", "report", "--jsonl", str(path)])
        out = capsys.readouterr().out
        assert "\x1b" not in out
        assert '"\\u001b[2Jevil\\ud800"' in out

    def test_verify_names_the_line(
        self,
        jsonl: tuple[Path, AuditTrail],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, _ = jsonl
        _plant(path, 4, b"[" * 50_000 + b"]" * 50_000)
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        assert 1 == main(["audit", "verify", "--jsonl", str(path), "--key-env", "AUDIT_KEY"])
        assert (
            "TAMPERED: record 4: line 4 of audit.jsonl: not a record (nested too deeply) "
            "(3 records verified before it)\n"
        ) == capsys.readouterr().out

    def test_verify_an_emptied_trail(
        self,
        jsonl: tuple[Path, AuditTrail],
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, trail = jsonl
        checkpoint = tmp_path / "cp.json"
        checkpoint.write_text(json.dumps(trail.checkpoint().to_dict()))
        path.write_bytes(b"")
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        argv = ["audit", "verify", "--jsonl", str(path), "--key-env", "AUDIT_KEY"]
        assert 1 == main(argv)
        out = capsys.readouterr().out
        assert "ok" not in out
        assert out.startswith("EMPTY: the trail holds no records")
        assert 1 == main([*argv, "--checkpoint", str(checkpoint)])
        out = capsys.readouterr().out
        assert out.startswith("TAMPERED: record 1: the trail ends at record 0")

    def test_verify_an_empty_table(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import sqlalchemy as sa

        url = f"sqlite:///{tmp_path / 'audit.db'}"
        SqlAuditSink(sa.create_engine(url)).create()
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        assert 1 == main(["audit", "verify", "--sql", url, "--key-env", "AUDIT_KEY"])
        assert capsys.readouterr().out.startswith("EMPTY: the trail holds no records")

    def test_report_on_a_tampered_trail_with_the_key(
        self,
        jsonl: tuple[Path, AuditTrail],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, _ = jsonl
        text = path.read_text().replace('"actor":"user-2"', '"actor":"user-9"')
        path.write_text(text)
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        assert 1 == main(["audit", "report", "--jsonl", str(path), "--key-env", "AUDIT_KEY"])
        out, err = capsys.readouterr()
        assert 6 == len(out.splitlines())
        assert "the trail does not verify at record 3" in err


class TestSubjectIdsInTheTrail:
    """With the key, `report` finds events that store a data subject's id in clear next to
    its pseudonym (trails written before issue 14, finding 1), and never prints the id."""

    def test_old_trail(
        self,
        jsonl: tuple[Path, AuditTrail],
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        path, trail = jsonl  # _fill stored resource_id=str(n) next to pseudonym(n)
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        argv = ["audit", "report", "--jsonl", str(path), "--key-env", "AUDIT_KEY"]
        assert 1 == main([*argv, "--actor", "user-1"])
        out, err = capsys.readouterr()
        assert (
            "securecustomer: 6 events store the data subject's own id in clear next to its "
            "pseudonym (resource_id): records 1, 2, 3, 4, 5, 6\n"
        ) == err
        assert 2 == len(out.splitlines())
        assert "customer/1 " not in out
        assert f"customer/[withheld] subject={trail.pseudonym(1)}" in out
        assert 1 == main([*argv, "--format", "json"])
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [None] * 6 == [row["resource_id"] for row in rows]
        assert [True] * 6 == [row["resource_id_withheld"] for row in rows]

    def test_new_trail(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from securecustomer.audit import audited

        path = tmp_path / "audit.jsonl"
        trail = AuditTrail(JsonlAuditSink(path), key=KEY)

        @audited("read", resource="customer", resource_id="cid", subject="cid", trail=trail)
        def show(cid: int) -> None:
            pass

        @audited("read", resource="order", resource_id="oid", subject="cid", trail=trail)
        def order(oid: int, cid: int) -> None:
            pass

        show(1)
        order(7, 1)
        monkeypatch.setenv("AUDIT_KEY", KEY.hex())
        argv = ["audit", "report", "--jsonl", str(path), "--key-env", "AUDIT_KEY"]
        assert 0 == main(argv)
        out, err = capsys.readouterr()
        assert "" == err
        assert f"customer/{trail.pseudonym(1)} subject={trail.pseudonym(1)}" in out
        assert f"order/7 subject={trail.pseudonym(1)}" in out
