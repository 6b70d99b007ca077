"""Fuzzing the command line's input files (issue 14): generated and mutated CSV and Parquet
files, anonymisation plans, TOML and JSON policy files, master key files and key store
files, passed to the real commands (`securecustomer.cli.main`, in-process).

Whatever the bytes, a command exits 0, 1 or 2; on 2 it prints exactly one line,
``securecustomer <command>: error: ...``, on stderr, that is not an "unexpected" error (a
bug), and it leaves no output file behind (an earlier output stays as it was). Never a
traceback. ``SECURECUSTOMER_FUZZ_EXAMPLES`` sets the number of examples per target.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import policy_documents

from securecustomer import Keyring, LocalKeyProvider
from securecustomer.cli import main
from securecustomer.keys import FileKeyStore

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # monkeypatch only sets the same environment variables for every example
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

KEY_ENV = "SC_FUZZ_CLI_KEY"
KEY = secrets.token_bytes(32)

PLAN = f"""\
key_env = "{KEY_ENV}"

[fields]
id = {{ pseudonymize = {{ domain = "customer", length = 16 }} }}
email = "mask_email"
name = "drop"
city = "keep"
"""

POLICY = """\
version = 1
[roles.agent]
[roles.senior]
inherits = ["agent"]

[[rules]]
id = "agents-read"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }
"""

#: Bytes that break parsers: quotes, separators, line ends, NUL, bytes that are not
#: UTF-8, a byte order mark, brackets (deep nesting), TOML and JSON punctuation.
_TOKENS = [
    b"\0",
    b"\xff",
    b"\xe9",
    b"\xc3",
    b"\xef\xbb\xbf",
    b'"',
    b"'",
    b",",
    b";",
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b"\\",
    b"=",
    b"#",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"[" * 3000,
    b"{" * 3000,
    b'"a":' * 20,
    b"x" * 200_000,
]


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """*base* with a few bytes flipped, tokens inserted, slices deleted or duplicated."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(_TOKENS) | st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:at] = data[at:end]
    return bytes(data)


@contextmanager
def _directory(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(KEY_ENV, KEY.hex())
    monkeypatch.delenv("SECURECUSTOMER_DEBUG", raising=False)
    with tempfile.TemporaryDirectory(prefix="sc-fuzz-cli-") as name:
        yield Path(name)


def run(
    argv: list[str], command: str, *, codes: tuple[int, ...], outputs: tuple[Path, ...] = ()
) -> int:
    """Run *argv* and check the contract; returns the exit status."""
    directory = outputs[0].parent if outputs else None
    listing = sorted(os.listdir(directory)) if directory else []
    before = {path: path.read_bytes() for path in outputs if path.exists()}
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(argv)
    errors = err.getvalue()
    assert status in codes, (status, errors)
    assert "Traceback" not in errors
    if status == 2:
        lines = errors.splitlines()
        assert 1 == len(lines), errors
        prefix = f"securecustomer {command}: error: "
        assert lines[0].startswith(prefix), errors
        assert not lines[0].removeprefix(prefix).startswith("unexpected "), errors
        assert "" == out.getvalue()
        if directory is not None:  # no partial output, no temporary file left
            assert listing == sorted(os.listdir(directory))
            assert before == {path: path.read_bytes() for path in outputs if path.exists()}
    elif directory is not None:
        assert all(path.exists() for path in outputs)
        assert not [name for name in os.listdir(directory) if name.startswith(".")]
    return status


# -- anonymize: CSV, Parquet, plans ----------------------------------------------------------

_cells = st.text(max_size=12) | st.emails() | st.sampled_from(["", " ", '"', "a,b", "x\ny"])
_csv_rows = st.lists(
    st.fixed_dictionaries({"id": _cells, "name": _cells, "email": _cells, "city": _cells}),
    max_size=5,
)


def _csv(rows: list[dict[str, str]]) -> bytes:
    handle = io.StringIO(newline="")
    writer = csv.DictWriter(handle, fieldnames=["id", "name", "email", "city"])
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue().encode("utf-8", "surrogatepass")


def _anonymize(directory: Path, source: Path, *more: str) -> list[str]:
    plan = directory / "plan.toml"
    if not plan.exists():
        plan.write_text(PLAN, encoding="utf-8")
    out = directory / "out.csv"
    return ["anonymize", str(source), str(out), "--plan", str(plan), "--progress-every", "0", *more]


class TestAnonymize:
    """anonymize IN OUT --plan PLAN on mutated inputs and plans."""

    @FUZZ
    @given(data=st.data(), rows=_csv_rows, earlier=st.booleans())
    def test_csv(
        self, monkeypatch: pytest.MonkeyPatch, data: st.DataObject, rows: Any, earlier: bool
    ) -> None:
        content = data.draw(mutated(_csv(rows)))
        with _directory(monkeypatch) as directory:
            source = directory / "in.csv"
            source.write_bytes(content)
            argv = _anonymize(directory, source)
            if earlier:
                (directory / "out.csv").write_text("an earlier output\n")
            run(argv, "anonymize", codes=(0, 2), outputs=(directory / "out.csv",))

    @FUZZ
    @given(data=st.data(), rows=_csv_rows)
    def test_parquet(self, monkeypatch: pytest.MonkeyPatch, data: st.DataObject, rows: Any) -> None:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        buffer = io.BytesIO()
        columns = {name: [row[name] for row in rows] for name in ("id", "name", "email", "city")}
        pq.write_table(pa.table(columns, schema=_schema(pa)), buffer)
        content = data.draw(mutated(buffer.getvalue()))
        with _directory(monkeypatch) as directory:
            source = directory / "in.parquet"
            source.write_bytes(content)
            argv = _anonymize(directory, source, "--format", "parquet")
            run(argv, "anonymize", codes=(0, 2), outputs=(directory / "out.csv",))

    @FUZZ
    @given(data=st.data())
    def test_plan(self, monkeypatch: pytest.MonkeyPatch, data: st.DataObject) -> None:
        plan = data.draw(mutated(PLAN.encode()))
        with _directory(monkeypatch) as directory:
            (directory / "plan.toml").write_bytes(plan)
            source = directory / "in.csv"
            source.write_bytes(
                _csv([{"id": "c-1", "name": "Jane", "email": "j@x.org", "city": ""}])
            )
            run(
                _anonymize(directory, source),
                "anonymize",
                codes=(0, 2),
                outputs=(directory / "out.csv",),
            )


def _schema(pa: Any) -> Any:
    return pa.schema([(name, pa.string()) for name in ("id", "name", "email", "city")])


# -- policy files ----------------------------------------------------------------------------


def _deep(depth: int, suffix: str) -> bytes:
    if suffix == ".json":
        return ('{"version": 1, "roles": {"a": ' + "[" * depth + "]" * depth + "}}").encode()
    return (POLICY + f"\n[roles.deep]\nnote = {'[' * depth}{']' * depth}\n").encode()


@st.composite
def policy_files(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".toml", ".json"]))
    kind = draw(st.sampled_from(["mutated", "generated", "deep"]))
    if kind == "deep":
        return suffix, _deep(draw(st.integers(1, 50_000)), suffix)
    if suffix == ".json":
        base = json.dumps(
            draw(policy_documents(max_rules=4))
            if kind == "generated"
            else {"version": 1, "roles": {"agent": {}}, "rules": []}
        ).encode()
    else:
        base = POLICY.encode()
    return suffix, draw(mutated(base))


class TestPolicy:
    """policy lint and review on generated, mutated and deeply nested policy files."""

    @FUZZ
    @given(file=policy_files())
    def test_lint(self, monkeypatch: pytest.MonkeyPatch, file: tuple[str, bytes]) -> None:
        suffix, content = file
        with _directory(monkeypatch) as directory:
            path = directory / f"policy{suffix}"
            path.write_bytes(content)
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                status = main(["policy", "lint", str(path)])
            assert status in (0, 1)
            assert "" == err.getvalue()
            if status == 1:  # does not load: one error line (and where), or warnings
                assert "Traceback" not in out.getvalue()
                first = out.getvalue().splitlines()[0]
                assert first.startswith((f"{path}: error: ", f"{path}: warning: ")), first

    @FUZZ
    @given(file=policy_files())
    def test_review(self, monkeypatch: pytest.MonkeyPatch, file: tuple[str, bytes]) -> None:
        suffix, content = file
        with _directory(monkeypatch) as directory:
            path = directory / f"policy{suffix}"
            path.write_bytes(content)
            argv = ["policy", "review", str(path), "--assignments", '{"u": ["agent"]}']
            run(argv, "policy review", codes=(0, 2))


# -- key files -------------------------------------------------------------------------------


@functools.cache
def _key_files() -> tuple[bytes, bytes]:
    """A master key file and a key store (a root key, a data key), made once: the same
    bytes for every example, as Hypothesis needs to replay one."""
    with tempfile.TemporaryDirectory(prefix="sc-fuzz-cli-") as name:
        key_file, store_file = Path(name) / "master.key", Path(name) / "keys.json"
        provider = LocalKeyProvider.create_key_file(key_file)
        Keyring(provider, FileKeyStore(store_file)).load().cipher("customers.email")
        return key_file.read_bytes(), store_file.read_bytes()


class TestKeyFiles:
    """keys status with a mutated master key file or key store file."""

    @FUZZ
    @given(data=st.data(), which=st.sampled_from(["key", "store"]))
    def test_status(self, monkeypatch: pytest.MonkeyPatch, data: st.DataObject, which: str) -> None:
        key, store = _key_files()
        if which == "key":
            key = data.draw(mutated(key))
        else:
            store = data.draw(mutated(store))
        with _directory(monkeypatch) as directory:
            key_file, store_file = directory / "master.key", directory / "keys.json"
            key_file.write_bytes(key)
            key_file.chmod(0o600)
            store_file.write_bytes(store)
            argv = [
                "keys",
                "status",
                "--key-file",
                str(key_file),
                "--key-store-file",
                str(store_file),
            ]
            run(argv, "keys status", codes=(0, 2))
