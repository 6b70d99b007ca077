"""`securecustomer policy lint | explain | review`, as a policy author runs them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from securecustomer.cli import main

POLICY = """\
version = 1

[roles.agent]
[roles.senior]
inherits = ["agent"]
[roles.auditor]
[roles.clerk]

[constraints]
exclusive = [["auditor", "clerk"]]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }
when = "resource.region == subject.region"

[[rules]]
id = "no-ssn"
effect = "deny"
roles = ["*"]
actions = ["*"]
resources = ["customer"]
fields = ["ssn"]

[[rules]]
id = "auditors-read"
effect = "allow"
roles = ["auditor", "clerk"]
actions = ["read"]
resources = ["ledger"]
fields = ["amount"]
"""

AGENT = json.dumps({"id": "user-7", "roles": ["agent"], "attributes": {"region": "eu"}})


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    return path


class TestLint:
    """lint exits 1 on a document that does not load, and reports findings as warnings."""

    def test_clean(self, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status, out, _ = run(["policy", "lint", str(policy)], capsys)

        assert 0 == status
        assert f"{policy}: 3 rule(s), 0 warning(s), 0 errors\n" == out

    def test_findings_are_warnings(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(POLICY.replace('roles = ["agent"]\nactions', 'roles = ["agnet"]\nactions'))

        status, out, _ = run(["policy", "lint", str(path)], capsys)
        strict, _, _ = run(["policy", "lint", "--strict", str(path)], capsys)

        assert (0, 1) == (status, strict)
        assert f"{path}: warning: unknown-role (rule 'agents-read'): " in out
        assert "0 errors" in out

    def test_error_names_rule_and_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(POLICY.replace('effect = "deny"', 'effect = "maybe"'))

        status, out, _ = run(["policy", "lint", str(path)], capsys)

        assert 1 == status
        assert out.startswith(f"{path}: error: ")
        assert "at rule 'no-ssn', field 'effect'" in out

    def test_unknown_mask_is_an_error(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(POLICY.replace('email = "email"', 'email = "smudge"'))

        status, out, _ = run(["policy", "lint", str(path)], capsys)

        assert 1 == status
        assert "unknown mask 'smudge'" in out

    def test_json_policy(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "policy.json"
        path.write_text(json.dumps({"version": 1, "roles": {"agent": {}}, "rules": []}))

        status, out, _ = run(["policy", "lint", str(path)], capsys)

        assert 0 == status
        assert "0 rule(s)" in out

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status, _, err = run(["policy", "lint", str(tmp_path / "nope.toml")], capsys)

        assert 2 == status
        assert (
            f"securecustomer policy lint: error: {str(tmp_path / 'nope.toml')!r}: no such file\n"
            == err
        )


class TestExplain:
    """explain prints the decision, what is visible, and every rule's part in it."""

    def test_allowed_with_mask(self, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        resource = json.dumps({"type": "customer", "id": 42, "attributes": {"region": "eu"}})
        args = ["policy", "explain", str(policy), "--subject", AGENT, "--action", "read"]

        status, out, _ = run([*args, "--resource", resource, "--fields", "name,email"], capsys)

        assert 0 == status
        lines = out.splitlines()
        assert lines[0].startswith("allow: ")
        assert lines[1].startswith("  + agents-read (allow): ")
        assert "  + no-ssn (deny): matched: denies fields [ssn]" == lines[2]
        assert lines[3].startswith("  - auditors-read (allow): ")
        assert "visible fields: email, name" in out
        assert "masked: email (email)" in out

    def test_unmasked(self, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        lifting = policy.read_text() + (
            '\n[[rules]]\nid = "seniors-clear"\neffect = "allow"\nroles = ["senior"]\n'
            'actions = ["read"]\nresources = ["customer"]\nfields = ["email"]\n'
            'unmask = ["email"]\n'
        )
        policy.write_text(lifting)
        senior = json.dumps({"id": "u-8", "roles": ["senior"], "attributes": {"region": "eu"}})
        resource = json.dumps({"type": "customer", "id": 42, "attributes": {"region": "eu"}})
        args = ["policy", "explain", str(policy), "--subject", senior, "--action", "read"]

        status, out, _ = run([*args, "--resource", resource], capsys)

        assert 0 == status
        assert "lifts every mask on [email] (unmask)" in out
        assert "masked: email (email)" not in out
        assert "unmasked: email (a matching rule lifts its masks with unmask)" in out

    def test_denied_by_condition(self, policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        resource = json.dumps({"type": "customer", "id": 42, "attributes": {"region": "us"}})
        args = ["policy", "explain", str(policy), "--subject", AGENT, "--action", "read"]

        status, out, _ = run([*args, "--resource", resource], capsys)

        assert 0 == status
        assert out.startswith("deny: ")
        assert "  - agents-read (allow): " in out
        assert "visible fields" not in out

    def test_purpose_context_and_now(
        self, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        resource = json.dumps({"type": "ledger"})
        subject = json.dumps({"id": "u-1", "roles": ["auditor"], "mfa_at": "2026-11-01T09:00"})
        args = ["policy", "explain", str(policy), "--subject", subject, "--action", "read"]
        extra = ["--purpose", "audit", "--context", '{"ip": "10.0.0.1"}']

        status, out, _ = run(
            [*args, "--resource", resource, *extra, "--now", "2026-11-01T09:05"], capsys
        )

        assert 0 == status
        assert out.startswith("allow: ")
        assert "  + auditors-read (allow): " in out

    @pytest.mark.parametrize(
        ("option", "value", "message"),
        [
            ("--subject", "{not json", "--subject: not valid JSON: "),
            ("--subject", '["user-7"]', "--subject: expected a JSON object"),
            ("--subject", '{"roles": []}', '--subject: "id" must be a string'),
            ("--subject", '{"id": "u", "role": []}', "--subject: unknown key(s) role"),
            ("--subject", '{"id": "u", "roles": "agent"}', '"roles" must be a list'),
            ("--resource", '{"id": 1}', '--resource: "type" must be a string'),
            ("--context", "[1]", "--context: expected a JSON object"),
            ("--now", "yesterday", "--now: not an ISO datetime: 'yesterday'"),
        ],
    )
    def test_bad_input(
        self,
        policy: Path,
        capsys: pytest.CaptureFixture[str],
        option: str,
        value: str,
        message: str,
    ) -> None:
        values = {"--subject": AGENT, "--resource": '{"type": "customer"}'}
        values[option] = value
        args = ["policy", "explain", str(policy), "--action", "read"]
        args += [item for pair in values.items() for item in pair]

        status, out, err = run(args, capsys)

        assert (2, "") == (status, out)
        assert err.startswith("securecustomer policy explain: error: ")
        assert message in err


class TestReview:
    """review renders the assignments' effective permissions as Markdown or CSV."""

    def test_markdown_from_json_text(
        self, policy: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assignments = json.dumps({"user-9": ["senior"], "user-2": ["auditor", "clerk"]})

        status, out, _ = run(
            ["policy", "review", str(policy), "--assignments", assignments], capsys
        )

        assert 0 == status
        assert out.startswith("| subject | roles | effect |")
        assert "| user-9 | senior | allow | read | customer |" in out
        assert "senior -> agent" in out
        assert "**user-2**: denied: separation of duties" in out

    def test_csv_from_file(
        self, policy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "assignments.json"
        path.write_text(json.dumps({"user-7": ["agent"], "user-2": ["auditor", "clerk"]}))
        args = ["policy", "review", str(policy), "--assignments", str(path)]

        status, out, err = run([*args, "--format", "csv"], capsys)

        rows = list(csv.DictReader(io.StringIO(out)))
        assert 0 == status
        assert {("user-7", "agents-read"), ("user-2", "auditors-read")} <= {
            (row["subject"], row["rule"]) for row in rows
        }
        assert "warning: user-2: denied: separation of duties" in err

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ('{"user-7": "agent"}', "expected a JSON object of subject id -> list of roles"),
            ("[]", "expected a JSON object of subject id -> list of roles"),
            ("no-such-file.json", "--assignments: cannot read 'no-such-file.json'"),
            ("{oops", "--assignments: not valid JSON"),
        ],
    )
    def test_bad_assignments(
        self, policy: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
    ) -> None:
        status, _, err = run(["policy", "review", str(policy), "--assignments", value], capsys)

        assert 2 == status
        assert message in err


class TestHelp:
    """Every policy action has help; no action prints the usage."""

    def test_no_action(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert 2 == main(["policy"])
        assert "lint" in capsys.readouterr().out

    @pytest.mark.parametrize("action", ["lint", "explain", "review"])
    def test_help(self, action: str, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as info:
            main(["policy", action, "--help"])
        assert 0 == info.value.code
        assert "FILE" in capsys.readouterr().out
