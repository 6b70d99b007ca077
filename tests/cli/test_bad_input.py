"""Bad input to any command: one line on stderr, a documented exit status, no traceback,
no partial output file (issue 14, finding 9)."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from securecustomer.cli import main
from securecustomer.cli._errors import describe, report
from securecustomer.exceptions import ConfigurationError

KEY = secrets.token_bytes(32)

PLAN = """\
key_env = "SC_CLI_BAD_INPUT_KEY"

[fields]
name = "drop"
email = "mask_email"
"""

CSV = "name,email\nJane,jane@example.com\nJoe,joe@example.org\n"

POLICY = """\
version = 1
[roles.agent]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
"""

DEPTH = 100_000  # far beyond the interpreter's recursion limit


def _deep_toml() -> str:
    return POLICY + f"\n[roles.deep]\nnote = {'[' * DEPTH}{']' * DEPTH}\n"


def _deep_json() -> str:
    return '{"version": 1, "roles": {"deep": ' + "[" * DEPTH + "]" * DEPTH + "}}"


def one_error_line(err: str, command: str) -> str:
    """The single line a command prints for bad input: checked, returned without prefix."""
    prefix = f"securecustomer {command}: error: "
    assert err.startswith(prefix), err
    assert err.endswith("\n"), err
    assert 1 == len(err.splitlines()), err
    assert "Traceback" not in err
    return err.removeprefix(prefix).rstrip("\n")


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with plan.toml, in.csv and policy.toml; the plan's key is set."""
    monkeypatch.setenv("SC_CLI_BAD_INPUT_KEY", KEY.hex())
    monkeypatch.delenv("SECURECUSTOMER_DEBUG", raising=False)
    (tmp_path / "plan.toml").write_text(PLAN, encoding="utf-8")
    (tmp_path / "in.csv").write_text(CSV, encoding="utf-8")
    (tmp_path / "policy.toml").write_text(POLICY, encoding="utf-8")
    return tmp_path


def _anonymize(files: Path, source: Path | str, target: Path | str, *more: str) -> list[str]:
    return [
        "anonymize",
        str(source),
        str(target),
        "--plan",
        str(files / "plan.toml"),
        "--progress-every",
        "0",
        *more,
    ]


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*"))


class TestOutputPath:
    """OUT in a missing directory, or a directory: refused before anything is written."""

    def test_missing_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        before = _listing(files)
        target = files / "nowhere" / "out.csv"

        status = main(_anonymize(files, files / "in.csv", target))

        captured = capsys.readouterr()
        message = one_error_line(captured.err, "anonymize")
        assert (2, "") == (status, captured.out)
        assert f"OUT {str(target)!r}: no such directory {str(target.parent)!r}" == message
        assert before == _listing(files)

    def test_a_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        (files / "out").mkdir()
        before = _listing(files)

        status = main(_anonymize(files, files / "in.csv", files / "out"))

        message = one_error_line(capsys.readouterr().err, "anonymize")
        assert 2 == status
        assert f"OUT {str(files / 'out')!r}: is a directory, not a file" == message
        assert before == _listing(files)

    def test_parquet_to_a_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        pq = pytest.importorskip("pyarrow.parquet")
        pa = pytest.importorskip("pyarrow")
        pq.write_table(pa.table({"name": ["Jane"], "email": ["j@example.com"]}), files / "in.pq")
        (files / "out").mkdir()
        before = _listing(files)

        status = main(_anonymize(files, files / "in.pq", files / "out"))

        assert 2 == status
        assert "is a directory" in one_error_line(capsys.readouterr().err, "anonymize")
        assert before == _listing(files)

    def test_input_is_a_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status = main(_anonymize(files, files, files / "out.csv"))

        message = one_error_line(capsys.readouterr().err, "anonymize")
        assert 2 == status
        assert f"IN {str(files)!r}: is a directory, not a file" == message
        assert not (files / "out.csv").exists()

    def test_owner_only_and_replaced_whole(self, files: Path) -> None:
        target = files / "out.csv"
        target.write_text("old\n")

        assert 0 == main(_anonymize(files, files / "in.csv", target))

        assert 0o600 == target.stat().st_mode & 0o777
        assert target.read_text().startswith("email\n")
        assert ["in.csv", "out.csv", "plan.toml", "policy.toml"] == _listing(files)


class TestMalformedCsv:
    """A CSV file that is not clean UTF-8 text with one cell per column: exit 2, file and
    line named, the old output left as it was, no value in the message."""

    @pytest.mark.parametrize(
        ("content", "line", "problem"),
        [
            (b"name,email\nJane,j@example.com,extra\n", 2, "more cells than the header"),
            (b"name,email\nJane,j@example.com\nJoe\n", 3, "fewer cells than the header"),
            (b'name,email\n"Jane"x,j@example.com\n', 2, "malformed CSV"),
            (b'name,email\nJane,"j@example.com\n', 2, "malformed CSV"),
            (b"name,email\nJa\x00ne,j@example.com\n", 2, "a NUL byte"),
            (b"name,email\nJ\xe4ne,j@example.com\n", 2, "not UTF-8 text"),
            (b"name,email\nJane,j@example.com\n\xff\xfe\n", 3, "not UTF-8 text"),
            (b"na\xffme,email\n", 1, "not UTF-8 text"),
            (
                b"\nname,email,name\nJane,j@example.com,Joe\n",
                2,
                "columns 1 and 3 have the same name",
            ),
        ],
        ids=[
            "more-cells",
            "fewer-cells",
            "text-after-quote",
            "unterminated-quote",
            "nul",
            "latin-1",
            "bom-utf16",
            "header-not-utf8",
            "duplicate-column",
        ],
    )
    def test_refused(
        self,
        files: Path,
        capsys: pytest.CaptureFixture[str],
        content: bytes,
        line: int,
        problem: str,
    ) -> None:
        source, target = files / "bad.csv", files / "out.csv"
        source.write_bytes(content)
        target.write_text("earlier output\n")

        status = main(_anonymize(files, source, target))

        captured = capsys.readouterr()
        message = one_error_line(captured.err, "anonymize")
        assert (2, "") == (status, captured.out)
        assert message.startswith(f"{source}, line {line}: {problem}"), message
        assert "Jane" not in message
        assert "example.com" not in message
        assert "earlier output\n" == target.read_text()
        assert ["bad.csv", "in.csv", "out.csv", "plan.toml", "policy.toml"] == _listing(files)

    def test_byte_order_mark_and_crlf_are_fine(self, files: Path) -> None:
        source, target = files / "excel.csv", files / "out.csv"
        source.write_bytes(b"\xef\xbb\xbfname,email\r\nJane,jane@example.com\r\n")

        assert 0 == main(_anonymize(files, source, target))

        assert "email\nj***@example.com\n" == target.read_text()

    def test_not_a_parquet_file(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        pytest.importorskip("pyarrow")
        source, target = files / "in.parquet", files / "out.parquet"
        source.write_text(CSV)

        status = main(_anonymize(files, source, target))

        message = one_error_line(capsys.readouterr().err, "anonymize")
        assert 2 == status
        assert message.startswith(f"{source}: not a readable Parquet file"), message
        assert not target.exists()

    def test_plan_not_utf8(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        (files / "plan.toml").write_bytes(b'key_env = "K\xff"\n')

        status = main(_anonymize(files, files / "in.csv", files / "out.csv"))

        message = one_error_line(capsys.readouterr().err, "anonymize")
        assert 2 == status
        assert str(files / "plan.toml") in message


class TestPolicyFiles:
    """Deeply nested, non-UTF-8, missing policy files: one line, never a RecursionError."""

    @pytest.mark.parametrize(
        ("name", "text"), [("deep.toml", _deep_toml), ("deep.json", _deep_json)]
    )
    def test_deep_nesting_lint(
        self, files: Path, capsys: pytest.CaptureFixture[str], name: str, text: object
    ) -> None:
        path = files / name
        path.write_text(text())  # type: ignore[operator]

        status = main(["policy", "lint", str(path)])

        captured = capsys.readouterr()
        assert (1, "") == (status, captured.err)
        assert 1 == len(captured.out.splitlines()), captured.out
        assert captured.out.startswith(f"{path}: error: ")
        assert "nested more than 32 levels deep" in captured.out

    @pytest.mark.parametrize(
        ("name", "text"), [("deep.toml", _deep_toml), ("deep.json", _deep_json)]
    )
    def test_deep_nesting_review(
        self, files: Path, capsys: pytest.CaptureFixture[str], name: str, text: object
    ) -> None:
        path = files / name
        path.write_text(text())  # type: ignore[operator]

        status = main(["policy", "review", str(path), "--assignments", "{}"])

        captured = capsys.readouterr()
        message = one_error_line(captured.err, "policy review")
        assert (2, "") == (status, captured.out)
        assert str(path) in message
        assert "nested more than 32 levels deep" in message

    def test_deep_json_option(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        subject = '{"id": "u", "attributes": {"a": ' + "[" * DEPTH + "]" * DEPTH + "}}"
        argv = ["policy", "explain", str(files / "policy.toml"), "--subject", subject]

        status = main([*argv, "--action", "read", "--resource", '{"type": "customer"}'])

        message = one_error_line(capsys.readouterr().err, "policy explain")
        assert 2 == status
        assert "--subject: nested too deeply" in message

    def test_not_utf8(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = files / "latin1.toml"
        path.write_bytes(POLICY.encode() + b"\n[roles.r\xe9sum\xe9]\n")

        status = main(["policy", "review", str(path), "--assignments", "{}"])

        message = one_error_line(capsys.readouterr().err, "policy review")
        assert 2 == status
        assert str(path) in message

    def test_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status = main(["policy", "review", str(files), "--assignments", "{}"])

        message = one_error_line(capsys.readouterr().err, "policy review")
        assert 2 == status
        assert f"{str(files)!r}: is a directory, not a file" == message

    def test_missing_is_bad_usage_even_for_lint(
        self, files: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status = main(["policy", "lint", str(files / "nope.toml")])

        message = one_error_line(capsys.readouterr().err, "policy lint")
        assert 2 == status
        assert f"{str(files / 'nope.toml')!r}: no such file" == message

    def test_assignments_file_not_utf8(
        self, files: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (files / "a.json").write_bytes(b'{"u\xff": []}')
        argv = ["policy", "review", str(files / "policy.toml"), "--assignments"]

        status = main([*argv, str(files / "a.json")])

        message = one_error_line(capsys.readouterr().err, "policy review")
        assert 2 == status
        assert message.startswith(f"--assignments: cannot read {str(files / 'a.json')!r}")


class TestOtherCommands:
    """The same convention for every command."""

    def test_demo_dir_is_a_file(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status = main(["demo", "--dir", str(files / "in.csv")])

        message = one_error_line(capsys.readouterr().err, "demo")
        assert 2 == status
        assert f"--dir {str(files / 'in.csv')!r}: not a directory" == message

    def test_key_file_is_a_directory(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        argv = ["keys", "status", "--key-file", str(files), "--key-store-file", str(files / "s")]

        status = main(argv)

        captured = capsys.readouterr()
        assert (2, "") == (status, captured.out)
        assert str(files) in one_error_line(captured.err, "keys status")

    def test_key_file_not_utf8(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        key = files / "master.key"
        key.write_bytes(b"\xff\xfe{}")
        key.chmod(0o600)
        argv = ["keys", "status", "--key-file", str(key), "--key-store-file", str(files / "s")]

        status = main(argv)

        assert 2 == status
        assert str(key) in one_error_line(capsys.readouterr().err, "keys status")


class TestDebug:
    """--debug and SECURECUSTOMER_DEBUG add the traceback to the line, for bug reports."""

    def test_flag(self, files: Path, capsys: pytest.CaptureFixture[str]) -> None:
        status = main(["--debug", *_anonymize(files, files / "in.csv", files / "no" / "o.csv")])

        err = capsys.readouterr().err
        assert 2 == status
        assert err.startswith("Traceback (most recent call last):\n")
        assert err.splitlines()[-1].startswith("securecustomer anonymize: error: OUT ")

    def test_environment(
        self, files: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SECURECUSTOMER_DEBUG", "1")

        status = main(_anonymize(files, files / "in.csv", files / "no" / "o.csv"))

        assert 2 == status
        assert "Traceback (most recent call last):" in capsys.readouterr().err


class TestEntryPoint:
    """Each case once through ``python -m securecustomer``, as a user runs it."""

    @staticmethod
    def cli(files: Path, *argv: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        env.pop("SECURECUSTOMER_DEBUG", None)
        return subprocess.run(
            [sys.executable, "-m", "securecustomer", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=files,
            timeout=120,
            check=False,
        )

    @pytest.mark.parametrize(
        ("case", "command"),
        [
            ("missing-output-dir", "anonymize"),
            ("output-is-a-directory", "anonymize"),
            ("non-utf8-csv", "anonymize"),
            ("ragged-csv", "anonymize"),
            ("deep-policy", "policy review"),
        ],
    )
    def test_one_line_exit_2(self, files: Path, case: str, command: str) -> None:
        (files / "dir").mkdir()
        (files / "latin1.csv").write_bytes(b"name,email\nJ\xe4ne,j@example.com\n")
        (files / "ragged.csv").write_bytes(b"name,email\nJane\n")
        (files / "deep.toml").write_text(_deep_toml())
        argv = {
            "missing-output-dir": _anonymize(files, "in.csv", "no/out.csv"),
            "output-is-a-directory": _anonymize(files, "in.csv", "dir"),
            "non-utf8-csv": _anonymize(files, "latin1.csv", "out.csv"),
            "ragged-csv": _anonymize(files, "ragged.csv", "out.csv"),
            "deep-policy": ["policy", "review", "deep.toml", "--assignments", "{}"],
        }[case]
        before = _listing(files)

        result = self.cli(files, *argv)

        assert (2, "") == (result.returncode, result.stdout), result.stderr
        one_error_line(result.stderr, command)
        assert before == _listing(files)


class TestDescribe:
    """What the one line says for errors from outside the library: never the input."""

    def test_os_error_names_the_file(self) -> None:
        exc = FileNotFoundError(2, "No such file or directory", "/data/in.csv")

        assert "'/data/in.csv': No such file or directory" == describe(exc)

    def test_not_utf8_without_the_bytes(self) -> None:
        exc = UnicodeDecodeError("utf-8", b"J\xe4ne", 1, 2, "invalid continuation byte")

        assert "the input is not UTF-8 text" == describe(exc)

    def test_unexpected_error_without_its_message(self) -> None:
        message = describe(TypeError("cannot use 'jane@example.com' here"))

        assert message.startswith("unexpected TypeError (please report it")
        assert "jane" not in message

    def test_database_error_first_line_only(self) -> None:
        import sqlalchemy.exc

        orig = Exception("no such table: customers\nDETAIL: Key (email)=(jane@example.com)")
        exc = sqlalchemy.exc.OperationalError("SELECT 1", {"email": "jane@example.com"}, orig)

        assert "database: Exception: no such table: customers" == describe(exc)

    def test_interrupted(self) -> None:
        stream = io.StringIO()

        assert 130 == report("keys rotate", KeyboardInterrupt(), debug=False, stream=stream)
        assert "\nsecurecustomer keys rotate: interrupted\n" == stream.getvalue()

    def test_multi_line_library_message_is_one_line(self) -> None:
        exc = ConfigurationError("first\n  second")

        assert "first second" == describe(exc)
