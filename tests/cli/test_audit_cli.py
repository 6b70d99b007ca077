"""`securecustomer audit verify | report`, as an investigator runs them."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

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
