"""`securecustomer inventory | assess | subject | retention | audit scope`, as a privacy
officer runs them on the `app` package's shop (see app/shop.py)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
from app.shop import APP_DIR, SHOPPERS, TRAIL_ENV, TRAIL_KEY, Shop, run, shop

from securecustomer.audit import AuditEvent, AuditTrail, SqlAuditSink
from securecustomer.privacy import ConsentLedger, LegalHolds

LEDGER_KEY = TRAIL_KEY  # the commands' default ledger key: the audit trail's

__all__ = ["shop"]  # the fixture

MODELS = ["--models", "app.models", "--app-dir", APP_DIR]

POLICY = """\
version = 1
[roles.agent]
[roles.dpo]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["shoppers"]
fields = ["email", "passport"]

[[rules]]
id = "dpo-all"
effect = "allow"
roles = ["dpo"]
actions = ["read"]
resources = ["parcels"]
fields = ["address"]
"""


class TestInventory:
    """inventory lists the classified columns and flags the unprotected ones."""

    def test_markdown(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run(["inventory", *MODELS], capsys)

        assert (0, "") == (status, err)
        assert "shoppers" in out
        assert "passport" in out
        assert "unencrypted-restricted" in out

    def test_json_without_database(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(["inventory", *MODELS, "--format", "json"], capsys)

        report = json.loads(out)
        entries = {(e["table"], e["column"]): e for e in report["entries"]}
        findings = {(f["code"], f["where"]) for f in report["findings"]}
        assert 0 == status
        assert entries["shoppers", "email"]["encrypted"] is True
        assert ["email_index"] == entries["shoppers", "email"]["blind_indexes"]
        assert entries["shoppers", "passport"]["encrypted"] is False
        assert ("unencrypted-restricted", "shoppers.passport") in findings
        assert ("unclassified-pii", "shoppers.phone") in findings

    def test_sampled_with_keys(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["inventory", *MODELS, "--url", shop.url, *shop.key_args(), "--format", "json"]

        status, out, _ = run([*args, "--controller", "Shop AG"], capsys)

        report = json.loads(out)
        assert 0 == status
        assert "Shop AG" == report["controller"]
        assert "s1@example.com" not in out
        assert "+41 79 1" not in out

    @pytest.mark.parametrize(("fail_on", "expected"), [("high", 1), ("low", 1)])
    def test_fail_on(self, capsys: pytest.CaptureFixture[str], fail_on: str, expected: int) -> None:
        status, out, _ = run(["inventory", *MODELS, "--fail-on", fail_on], capsys)

        assert expected == status
        assert "unencrypted-restricted" in out

    @pytest.mark.parametrize("spec", ["app.models:Base", "app.models:Base.metadata"])
    def test_named_metadata(self, capsys: pytest.CaptureFixture[str], spec: str) -> None:
        status, out, _ = run(["inventory", "--models", spec, "--app-dir", APP_DIR], capsys)

        assert 0 == status
        assert "passport" in out

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("app.nowhere", "--models 'app.nowhere': cannot import app.nowhere: "),
            ("app.models:Nope", "--models 'app.models:Nope': app.models has no Nope"),
            ("app.retention", "--models 'app.retention': no MetaData found"),
            ("app.retention:RULES", "--models 'app.retention:RULES': no MetaData found"),
        ],
    )
    def test_bad_models(self, capsys: pytest.CaptureFixture[str], spec: str, message: str) -> None:
        status, out, err = run(["inventory", "--models", spec, "--app-dir", APP_DIR], capsys)

        assert (2, "") == (status, out)
        assert err.startswith(f"securecustomer inventory: error: {message}")

    def test_key_store_without_master_key(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["inventory", *MODELS, "--key-store-file", str(shop.store_file)]

        status, _, err = run(args, capsys)

        assert 2 == status
        assert "--key-store-file needs --key-file or --key-env" in err


class TestAssess:
    """assess adds the policy's grants, the keys and the trail's use of the grants."""

    def test_report(self, shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        policy = tmp_path / "policy.toml"
        policy.write_text(POLICY)
        trail = shop.trail()
        trail.append(AuditEvent(action="read", actor="user-1", resource_type="parcels"))
        args = ["assess", *MODELS, "--policy", str(policy), *shop.key_args(), "--url", shop.url]

        status, out, err = run([*args, *shop.trail_args(), "--format", "json"], capsys)

        report = json.loads(out)
        codes = {f["code"] for f in report["findings"]}
        assert (0, "") == (status, err)
        assert {"unencrypted-restricted", "local-master-key"} <= codes
        assert report["counts"]["high"] >= 1
        assert any("shoppers.passport" in f["where"] for f in report["findings"])

    def test_markdown_unverified_trail(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        shop.trail().append(AuditEvent(action="read", actor="user-1", resource_type="parcels"))
        trail = ["--audit-jsonl", str(shop.trail_file)]

        status, out, err = run(["assess", *MODELS, *trail, "--fail-on", "high"], capsys)

        assert 1 == status
        assert out.startswith("# Security risk report")
        assert "read without verifying it" in err

    def test_bad_resource_type(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(["assess", *MODELS, "--resource-type", "shoppers"], capsys)

        assert 2 == status
        assert "--resource-type 'shoppers': expected TABLE=TYPE" in err


class TestSubjectExport:
    """export prints (or writes) everything about one subject and records it."""

    def test_to_stdout(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["subject", "export", "2", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, _ = run([*args, *shop.trail_args()], capsys)

        export = json.loads(out)
        text = json.dumps(export)
        assert 0 == status
        assert "s2@example.com" in text
        assert "2 Old Road" in text
        assert "s1@example.com" not in text
        assert ["subject.export"] == shop.actions()
        assert shop.trail().verify().ok

    def test_to_file(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        out_file = shop.directory / "export.json"
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, _ = run([*args, *shop.trail_args(), "--out", str(out_file)], capsys)

        assert 0 == status
        assert f"exported to {out_file}" in out
        assert "s1@example.com" not in out
        assert "s1@example.com" in out_file.read_text()
        assert 0o600 == out_file.stat().st_mode & 0o777

    def test_existing_file_needs_force(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out_file = shop.directory / "export.json"
        out_file.write_text("an earlier export\n")
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]
        args += [*shop.trail_args(), "--out", str(out_file)]

        status, out, err = run(args, capsys)

        assert (2, "") == (status, out)
        expected = f"--out {str(out_file)!r}: exists: add --force to overwrite it"
        assert f"securecustomer subject export: error: {expected}\n" == err
        assert "an earlier export\n" == out_file.read_text()
        assert [] == shop.actions()  # refused before anything is read or audited

        status, out, _ = run([*args, "--force"], capsys)

        assert 0 == status
        assert "s1@example.com" in out_file.read_text()
        assert ["subject.export"] == shop.actions()

    def test_export_written_before_its_event(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file that cannot be written (its name is too long) is not audited as exported."""
        out_file = shop.directory / ("x" * 250)
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, err = run([*args, *shop.trail_args(), "--out", str(out_file)], capsys)

        assert (2, "") == (status, out)
        assert f"--out {str(out_file)!r}: cannot write" in err
        assert [] == shop.actions()
        assert [] == [p.name for p in shop.directory.iterdir() if p.name.startswith(".x")]

    def test_no_file_when_the_event_fails(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An export whose audit event cannot be written is not left behind."""
        out_file = shop.directory / "export.json"
        listing = sorted(p.name for p in shop.directory.iterdir())
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]
        args += ["--audit-jsonl", str(shop.directory), "--audit-key-env", TRAIL_ENV]

        status, out, err = run([*args, "--out", str(out_file)], capsys)

        assert (2, "") == (status, out)
        assert "the audit sink JsonlAuditSink could not store 1 event(s)" in err
        assert listing == sorted(p.name for p in shop.directory.iterdir())

    def test_with_consents(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        engine = sa.create_engine(shop.url)
        ledger = ConsentLedger(engine, key=LEDGER_KEY)
        ledger.create()
        ledger.grant(2, "newsletter", source="signup form")
        engine.dispose()
        args = ["subject", "export", "2", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, _ = run([*args, *shop.trail_args()], capsys)

        assert 0 == status
        assert "newsletter" in json.dumps(json.loads(out)["consents"])

    def test_sql_trail(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        engine = sa.create_engine(shop.url)
        sink = SqlAuditSink(engine, table="trail")
        sink.create()
        args = ["subject", "export", "3", *MODELS, "--url", shop.url, *shop.key_args()]
        trail = ["--audit-sql", shop.url, "--audit-table", "trail", "--audit-key-env", TRAIL_ENV]

        status, out, _ = run([*args, *trail], capsys)

        assert 0 == status
        assert "s3@example.com" in out
        assert ["subject.export"] == [r.event["action"] for r in sink.records()]
        assert AuditTrail(sink, key=TRAIL_KEY).verify().ok
        engine.dispose()

    def test_sql_trail_table_missing(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["subject", "erase", "3", *MODELS, "--url", shop.url, *shop.key_args(), "--yes"]
        trail = ["--audit-sql", shop.url, "--audit-key-env", TRAIL_ENV]

        status, _, err = run([*args, *trail], capsys)

        assert 2 == status
        assert "no audit table 'audit_events' in the --audit-sql database" in err
        assert 3 == shop.count("shoppers")

    def test_needs_a_trail(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, err = run(args, capsys)

        assert (2, "") == (status, out)
        assert "no audit trail: give --audit-jsonl PATH or --audit-sql URL" in err

    def test_needs_the_trail_key(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]

        status, _, err = run([*args, "--audit-jsonl", str(shop.trail_file)], capsys)

        assert 2 == status
        assert "the audit trail needs its key: --audit-key-env VAR" in err
        assert not shop.trail_file.exists() or [] == shop.actions()

    @pytest.mark.parametrize(
        ("subject", "id_type", "message"),
        [
            ("abc", "int", "subject id 'abc' is not an int (see --id-type)"),
            ("abc", "uuid", "subject id 'abc' is not a UUID (see --id-type)"),
        ],
    )
    def test_bad_id(
        self,
        shop: Shop,
        capsys: pytest.CaptureFixture[str],
        subject: str,
        id_type: str,
        message: str,
    ) -> None:
        args = ["subject", "export", subject, "--id-type", id_type, *MODELS, "--url", shop.url]

        status, _, err = run([*args, *shop.key_args(), *shop.trail_args()], capsys)

        assert 2 == status
        assert message in err

    def test_no_registered_model(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = ["subject", "export", "1", "--models", "json", "--url", shop.url]

        status, _, err = run([*args, *shop.key_args(), *shop.trail_args()], capsys)

        assert 2 == status
        assert "no model of this package is registered with register_subject()" in err


class TestSubjectErase:
    """erase refuses without --yes, respects legal holds, and prints its receipt."""

    def args(self, shop: Shop, subject: str) -> list[str]:
        keys = [*shop.key_args(), *shop.trail_args()]
        return ["subject", "erase", subject, *MODELS, "--url", shop.url, *keys]

    def test_refuses_without_yes(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, err = run(self.args(shop, "1"), capsys)

        assert (2, "") == (status, out)
        assert "add --yes to erase it" in err
        assert 3 == shop.count("shoppers")

    def test_erase_and_again(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        args = [*self.args(shop, "1"), "--yes", "--no-holds"]
        status, out, err = run([*args, "--reason", "request"], capsys)

        assert (0, "") == (status, err)
        assert out.startswith(f"erased subject {shop.trail().pseudonym(1)}\n")
        assert "deleted rows: cli-app-shoppers: 1" in out
        assert "shredded rows: cli-app-parcels: 2" in out
        assert "keys destroyed: 0x" in out
        assert {2, 3} == set(shop.emails())
        assert 0 == shop.count("shoppers", "id = 1")

        status, out, _ = run(args, capsys)

        assert 0 == status
        assert "(already erased: nothing was left)" in out
        assert ["subject.erase", "subject.erase"] == shop.actions()
        assert shop.trail().verify().ok

    def test_missing_holds_table_is_an_error(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No holds table is not "no holds": the erasure is refused until the operator
        names the table or says --no-holds."""
        status, out, err = run([*self.args(shop, "2"), "--yes"], capsys)

        assert (2, "") == (status, out)
        assert "no legal holds table 'securecustomer_legal_holds'" in err
        assert "--no-holds" in err
        assert 3 == shop.count("shoppers")
        assert [] == shop.actions()

    def test_holds_table_that_does_not_verify(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        engine = sa.create_engine(shop.url)
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(2, matter="case 17")
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM securecustomer_legal_holds WHERE subject_id = '2'"))
        engine.dispose()

        status, out, err = run([*self.args(shop, "2"), "--yes"], capsys)

        assert (2, "") == (status, out)
        assert "does not verify" in err
        assert 3 == shop.count("shoppers")

    def test_wrong_ledger_key(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        engine = sa.create_engine(shop.url)
        LegalHolds(engine, key=LEDGER_KEY).create()
        engine.dispose()
        monkeypatch.setenv("OTHER_LEDGER_KEY", secrets.token_bytes(32).hex())

        args = [*self.args(shop, "2"), "--yes", "--ledger-key-env", "OTHER_LEDGER_KEY"]
        status, out, err = run(args, capsys)

        assert (2, "") == (status, out)
        assert "does not verify" in err
        assert 3 == shop.count("shoppers")

    def test_legal_hold(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        engine = sa.create_engine(shop.url)
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(2, matter="case 17", placed_by="dpo@example.com")
        engine.dispose()

        status, out, err = run([*self.args(shop, "2"), "--yes"], capsys)

        assert (2, "") == (status, out)
        assert err.startswith("securecustomer subject erase: error: ")
        assert "hold" in err
        assert 3 == shop.count("shoppers")
        assert [] == shop.actions()


class TestRetention:
    """retention deletes expired rows in batches, or counts them in a dry run."""

    def args(self, shop: Shop, *extra: str) -> list[str]:
        rules = ["--rules", "app.retention:RULES", "--app-dir", APP_DIR]
        return ["retention", *rules, "--url", shop.url, *extra]

    def test_dry_run_then_run(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(self.args(shop, "--dry-run", "--no-holds"), capsys)

        assert 0 == status
        assert out.startswith("# Retention (dry run)")
        assert "| old-parcels |" in out
        assert 6 == shop.count("parcels")

        status, out, _ = run(
            self.args(
                shop,
                *shop.trail_args(),
                "--yes",
                "--no-holds",
                "--batch-size",
                "2",
                "--format",
                "json",
            ),
            capsys,
        )

        report = json.loads(out)
        assert 0 == status
        assert [("old-parcels", 3, 3, 2)] == [
            (o["rule"], o["expired"], o["deleted"], o["batches"]) for o in report["outcomes"]
        ]
        assert 3 == shop.count("parcels")
        assert ["retention.delete"] * 2 == shop.actions()

    def test_held_rows_kept(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        engine = sa.create_engine(shop.url)
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(3, matter="case 18")
        engine.dispose()

        args = self.args(shop, *shop.trail_args(), "--yes", "--format", "json")
        status, out, _ = run(args, capsys)

        outcome = json.loads(out)["outcomes"][0]
        assert 0 == status
        assert (2, 1) == (outcome["deleted"], outcome["held"])
        assert 4 == shop.count("parcels")

    def test_needs_a_trail(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(self.args(shop, "--yes", "--no-holds"), capsys)

        assert 2 == status
        assert "no audit trail" in err
        assert 6 == shop.count("parcels")

    def test_missing_holds_table_is_an_error(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        for extra in (["--dry-run"], [*shop.trail_args(), "--yes"]):
            status, out, err = run(self.args(shop, *extra), capsys)

            assert (2, "") == (status, out)
            assert "no legal holds table" in err
        assert 6 == shop.count("parcels")
        assert [] == shop.actions()

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("app.retention:NOT_RULES", "not a list of RetentionRule"),
            ("app.retention", "expected MODULE:CLASS"),
        ],
    )
    def test_bad_rules(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], spec: str, message: str
    ) -> None:
        args = ["retention", "--rules", spec, "--app-dir", APP_DIR, "--url", shop.url]

        status, _, err = run([*args, "--dry-run"], capsys)

        assert 2 == status
        assert message in err


class TestAuditScope:
    """audit scope reports what an actor's events touched, and when to notify."""

    DISCOVERED = "2026-11-20T12:00:00+00:00"

    def fill(self, shop: Shop) -> None:
        trail = shop.trail()
        t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
        for n, who in enumerate(["svc-export", "svc-export", "agent-1"]):
            trail.append(
                AuditEvent(
                    action="export",
                    actor=who,
                    resource_type="shoppers",
                    resource_id=str(SHOPPERS[n]),
                    subject=trail.pseudonym(SHOPPERS[n]),
                    fields=("email",),
                    timestamp=t0 + dt.timedelta(hours=n),
                )
            )

    def test_json(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        self.fill(shop)
        candidates = shop.directory / "ids.txt"
        candidates.write_text("1\n2\n3\n")
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]
        args += ["--actor", "svc-export", "--discovered-at", self.DISCOVERED]

        status, out, err = run([*args, "--candidates", str(candidates), "--format", "json"], capsys)

        scope = json.loads(out)
        assert (0, "") == (status, err)
        assert 2 == scope["events"]
        assert 2 == scope["subject_count"]
        assert {"shoppers.email": 2} == scope["fields"]
        assert scope["trail_verified"] is True
        assert "2026-11-23T12:00:00+00:00" == scope["notify_by"]

    def test_markdown_unverified(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        self.fill(shop)
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--since", "2026-11-01T10:00"]

        status, out, err = run(args, capsys)

        assert 0 == status
        assert "read unverified" in err
        assert "agent-1" in out

    def test_by_key_id(self, shop: Shop, capsys: pytest.CaptureFixture[str]) -> None:
        self.fill(shop)
        keyring = shop.keyring()
        primary = keyring.keyset("shoppers.email").primary
        assert primary is not None
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]
        keys = ["--master-key-file", str(shop.key_file), "--key-store-file", str(shop.store_file)]

        status, out, _ = run([*args, "--key-id", f"{primary.key_id:#010x}", *keys], capsys)

        assert 0 == status
        assert "svc-export" in out
        assert "agent-1" in out

    def test_by_key_id_counts_reads_without_fields_by_inference(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        trail = shop.trail()
        t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
        trail.append(  # as @audited("read", resource="shopper", subject=...) records it
            AuditEvent(
                action="read",
                actor="eve",
                resource_type="shopper",
                subject=trail.pseudonym(SHOPPERS[0]),
                timestamp=t0,
            )
        )
        trail.append(AuditEvent(action="search", actor="eve", resource_type="shopper"))
        keyring = shop.keyring()
        primary = keyring.keyset("shoppers.email").primary
        assert primary is not None
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]
        args += ["--master-key-file", str(shop.key_file), "--key-store-file", str(shop.store_file)]
        args += ["--key-id", f"{primary.key_id:#010x}", "--resource-type", "shoppers=shopper"]

        status, out, err = run([*args, "--format", "json"], capsys)

        scope = json.loads(out)
        assert 0 == status
        assert (2, 2, 1, 1) == (
            scope["events"],
            scope["inferred_events"],
            scope["inferred_subject_count"],
            scope["unnamed_events"],
        )
        assert [trail.pseudonym(SHOPPERS[0])] == scope["inferred_subjects"]
        assert "counted by inference" in err
        status, out, _ = run(args, capsys)
        assert "**Data subjects concerned:** 1 (0 exact, 1 by inference)" in out

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ([], "criteri"),
            (["--actor", "x", "--candidates", "ids.txt"], "--candidates needs the trail key"),
            (["--key-id", "0x1", "--key-store-file", "k.json"], "needs --master-key-file"),
        ],
    )
    def test_errors(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
    ) -> None:
        self.fill(shop)

        status, _, err = run(["audit", "scope", "--jsonl", str(shop.trail_file), *extra], capsys)

        assert 2 == status
        assert message in err


class TestHelp:
    """Every privacy command explains itself."""

    @pytest.mark.parametrize(
        "command",
        [
            ["inventory"],
            ["assess"],
            ["subject", "export"],
            ["subject", "erase"],
            ["retention"],
            ["audit", "scope"],
        ],
    )
    def test_help(self, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
        with pytest.raises(SystemExit) as info:
            run([*command, "--help"], capsys)
        assert 0 == info.value.code
        assert "usage: securecustomer" in capsys.readouterr().out

    def test_subject_without_action(self, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(["subject"], capsys)

        assert 2 == status
        assert "export" in out


class TestReviewFixes:
    """Defects found in review: each test failed before its fix."""

    def test_retention_refuses_without_yes(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["retention", "--rules", "app.retention:RULES", "--app-dir", APP_DIR]

        status, _, err = run([*args, "--url", shop.url, *shop.trail_args()], capsys)

        assert 2 == status
        assert "--yes" in err
        assert 6 == shop.count("parcels")

    @pytest.mark.parametrize("command", [["scope", "--actor", "x"], ["verify"], ["report"]])
    def test_missing_trail_file_is_an_error(
        self, shop: Shop, capsys: pytest.CaptureFixture[str], command: list[str]
    ) -> None:
        missing = shop.directory / "no-such-trail.jsonl"
        args = ["audit", command[0], "--jsonl", str(missing), "--key-env", TRAIL_ENV]

        status, out, err = run([*args, *command[1:]], capsys)

        assert (2, "") == (status, out)
        assert "no audit trail" in err
        assert not missing.exists()

    def test_scope_until_a_date_covers_that_day(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        TestAuditScope().fill(shop)
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]

        status, out, _ = run([*args, "--until", "2026-11-01", "--format", "json"], capsys)

        assert 0 == status
        assert 3 == json.loads(out)["events"]

    def test_scope_with_a_checkpoint_sees_a_cut_tail(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        TestAuditScope().fill(shop)
        checkpoint = shop.directory / "checkpoint.json"
        checkpoint.write_text(json.dumps(shop.trail().checkpoint().to_dict()))
        lines = shop.trail_file.read_text().splitlines(keepends=True)
        shop.trail_file.write_text("".join(lines[:-1]))  # the last event is removed
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]

        status, out, err = run(
            [*args, "--actor", "svc-export", "--checkpoint", str(checkpoint)], capsys
        )

        assert 0 == status
        assert "tampered" in err
        assert "DID NOT VERIFY" in out

    def test_export_to_a_missing_directory_exports_nothing(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out_file = shop.directory / "no-such-dir" / "export.json"
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]

        status, out, err = run([*args, *shop.trail_args(), "--out", str(out_file)], capsys)

        assert (2, "") == (status, out)
        assert "--out" in err
        assert [] == shop.actions()  # no subject.export event for an export never delivered

    def test_export_to_a_directory_exports_nothing(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = ["subject", "export", "1", *MODELS, "--url", shop.url, *shop.key_args()]
        listing = sorted(p.name for p in shop.directory.iterdir())

        status, out, err = run([*args, *shop.trail_args(), "--out", str(shop.directory)], capsys)

        assert (2, "") == (status, out)
        expected = f"--out {str(shop.directory)!r}: is a directory, not a file"
        assert f"securecustomer subject export: error: {expected}\n" == err
        assert listing == sorted(p.name for p in shop.directory.iterdir())
        assert [] == shop.actions()

    def test_scope_subject_key_under_a_custom_prefix(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        TestAuditScope().fill(shop)
        keyring = shop.keyring()
        keyring.cipher(f"client:{SHOPPERS[0]}")
        (status,) = [s for s in keyring.status() if s.scope == f"client:{SHOPPERS[0]}"]
        assert status.key_id is not None
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]
        args += ["--master-key-file", str(shop.key_file), "--key-store-file", str(shop.store_file)]
        args += ["--key-id", f"{status.key_id:#010x}", "--subject-prefix", "client:"]

        code, out, _ = run([*args, "--format", "json"], capsys)

        scope = json.loads(out)
        assert 0 == code
        assert f"client:{shop.trail().pseudonym(SHOPPERS[0])}" == scope["criteria"]["key_scope"]
        assert 1 == scope["events"]

    def test_scope_candidates_are_identified_in_the_output(
        self, shop: Shop, capsys: pytest.CaptureFixture[str]
    ) -> None:
        TestAuditScope().fill(shop)
        candidates = shop.directory / "ids.txt"
        candidates.write_text("1\n2\n3\n")
        args = ["audit", "scope", "--jsonl", str(shop.trail_file), "--key-env", TRAIL_ENV]
        args += ["--actor", "svc-export", "--candidates", str(candidates)]

        code, out, _ = run([*args, "--format", "json"], capsys)

        ps = shop.trail().pseudonym
        assert 0 == code
        assert {ps(1): "1", ps(2): "2"} == json.loads(out)["identified"]
        code, out, _ = run(args, capsys)
        assert "## Identified subjects" in out
