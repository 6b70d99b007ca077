"""`securecustomer demo`: the whole story, as a newcomer runs it."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from securecustomer.cli import main
from securecustomer.cli._demo import run_demo


def _run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One run of the demo in a fresh directory: the directory and what it printed."""
    directory = tmp_path_factory.mktemp("demo")
    status, out = _run(["demo", "--dir", str(directory)])
    assert 0 == status, out
    return directory, out


class TestStory:
    """Each step prints what it did, in order, and the demo says it finished."""

    def test_steps_in_order(self, story: tuple[Path, str]) -> None:
        _, out = story
        positions = [out.index(f"\n== {n}. ") for n in range(1, 9)]
        assert sorted(positions) == positions
        assert (
            out.rstrip()
            .splitlines()[-2]
            .startswith("Demo finished: every step behaved as expected.")
        )

    def test_keys(self, story: tuple[Path, str]) -> None:
        directory, out = story
        assert f"{directory / 'master.key'} (mode 0600, created)" in out
        for name in ("master.key", "audit.key"):
            assert 0o600 == (directory / name).stat().st_mode & 0o777

    def test_stored_row_is_ciphertext(self, story: tuple[Path, str]) -> None:
        _, out = story
        stored = _between(out, "row 1 as stored", "row 1 read through the ORM")
        decrypted = _between(out, "row 1 read through the ORM", "data keys:")
        for plaintext in ("Ada Lovelace", "ada@example.com", "7946 0018"):
            assert plaintext not in stored
            assert plaintext in decrypted
        assert "16-byte keyed hash" in stored
        assert "postcode     'SW1A 1AA'" in stored  # kept in clear, generalised in step 7
        assert "subject:3" in _between(out, "data keys:", "\n")

    def test_search(self, story: tuple[Path, str]) -> None:
        _, out = story
        assert "found:   customer 1, Ada Lovelace" in out
        assert "found:   no customer" in out

    def test_policy(self, story: tuple[Path, str]) -> None:
        _, out = story
        agent = _between(out, "support agent-7 reads customer 1:", "admin-1 reads")
        assert "email='a***@example.com'" in agent
        assert "notes" not in agent
        admin = _between(out, "admin-1 reads customer 1:", "mkt-2")
        assert "email='ada@example.com'" in admin
        assert "notes=['Prefers e-mail." in " ".join(admin.split())
        assert "AccessDenied: 'mkt-2' may not 'read' 'customer'" in out
        assert "svc-crm-sync reads customers 1-7: ['email', 'id', 'name'] of each" in out

    def test_audit(self, story: tuple[Path, str]) -> None:
        directory, out = story
        step = _between(out, "\n== 5. ", "\n== 6. ")
        assert "mkt-2          denied   1 event" in step
        assert "verify:        ok, 10 records checked" in step
        assert "signed with Ed25519" in step
        assert json.loads((directory / "checkpoint.json").read_text())["seq"] == 10
        assert "securecustomer audit verify --jsonl" in step

    def test_subject_rights(self, story: tuple[Path, str]) -> None:
        _, out = story
        step = _between(out, "\n== 6. ", "\n== 7. ")
        assert "grace@example.net" in _between(step, "her export", "erasure receipt")
        assert "deleted {'customers': 1}" in step
        assert "her notes now: [ERASED, ERASED]" in step
        assert "-> KeyDestroyedError" in step
        assert "already_erased=True" in step
        assert "verify:        ok" in step

    def test_anonymized_export(self, story: tuple[Path, str]) -> None:
        directory, out = story
        step = _between(out, "\n== 7. ", "\n== 8. ")
        assert "k-anonymity:  1 before (every customer unique), 2 after" in step
        with (directory / "customers-anonymized.csv").open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        assert ["id", "email", "age", "postcode"] == list(rows[0])
        assert 6 == len(rows)
        assert {"a***@example.com", "r***@example.com"} <= {r["email"] for r in rows}
        assert {"30-39", "40-49", "50-59"} == {r["age"] for r in rows}
        text = (directory / "customers-anonymized.csv").read_text(encoding="utf-8")
        assert "ada@example.com" not in text
        assert "Lovelace" not in text

    def test_breach_scope(self, story: tuple[Path, str]) -> None:
        _, out = story
        step = _between(out, "\n== 8. ", "\nDemo finished")
        assert "trail:         verified" in step
        assert "7 reads by svc-crm-sync" in step
        assert "7 customers: ids [1, 2, 3, 4, 5, 6, 7]" in step
        assert "customer.email (7)" in step
        assert "(72 hours after discovery)" in step

    def test_no_secret_printed(self, story: tuple[Path, str]) -> None:
        directory, out = story
        master = json.loads((directory / "master.key").read_text())
        secrets = [entry["key"] for entry in master["keys"]]
        secrets += [base64.b64decode(key).hex() for key in list(secrets)]
        audit = bytes.fromhex((directory / "audit.key").read_text().strip())
        secrets += [audit.hex(), base64.b64encode(audit).decode()]
        assert 4 == len(secrets)
        for secret in secrets:
            assert secret not in out


class TestRuns:
    """Where the demo runs, and what it does when a step misbehaves."""

    def test_rerun_on_same_directory(self, tmp_path: Path) -> None:
        assert 0 == _run(["demo", "--dir", str(tmp_path)])[0]
        master = (tmp_path / "master.key").read_bytes()
        status, out = _run(["demo", "--dir", str(tmp_path)])
        assert 0 == status, out
        assert "an earlier run's database" in out
        assert "(mode 0600, reused)" in out
        assert "every step behaved as expected" in out
        assert master == (tmp_path / "master.key").read_bytes()

    def test_temporary_directory_is_removed(self) -> None:
        status, out = _run(["demo"])
        assert 0 == status, out
        directory = out.splitlines()[0].removeprefix("securecustomer demo in ")
        assert not Path(directory).exists()

    def test_step_timer(self, tmp_path: Path) -> None:
        seen: list[str] = []
        with contextlib.redirect_stdout(io.StringIO()):
            assert 0 == run_demo(str(tmp_path), on_step=lambda name, _: seen.append(name))
        assert ["imports", "1. keys", "2. table", "3. search", "4. policy"] == seen[:5]
        assert "8. breach" == seen[-1]

    def test_misbehaving_step_exits_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from securecustomer.cli import _demo_steps
        from securecustomer.policy import Subject

        monkeypatch.setattr(_demo_steps, "AGENT", Subject("agent-7", roles=["admin"]))
        status, out = _run(["demo", "--dir", str(tmp_path)])
        assert 1 == status
        assert "!! step 4 did not behave as expected: the agent sees the e-mail masked" in out
        assert "Demo finished" not in out

    def test_as_module(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        result = subprocess.run(
            [sys.executable, "-m", "securecustomer", "demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        assert "Demo finished: every step behaved as expected." in result.stdout
        assert "" == result.stderr
