"""`securecustomer anonymize IN OUT --plan PLAN`, on CSV and Parquet files."""

from __future__ import annotations

import argparse
import csv
import io
import secrets
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from securecustomer.anonymize._pseudonym import Pseudonymizer
from securecustomer.cli._anonymize import add_anonymize_parser, run_anonymize
from securecustomer.exceptions import AnonymizationError, ConfigurationError

KEY = secrets.token_bytes(32)

PLAN = """\
key_env = "SC_CLI_ANON_KEY"

[fields]
customer_id = { pseudonymize = { domain = "customer", length = 16 } }
email = "mask_email"
name = "drop"
city = "keep"
"""

ROWS = [
    {"customer_id": "c-1", "name": "Jane", "email": "jane.doe@example.com", "city": "Lyon"},
    {"customer_id": "c-2", "name": "Joe", "email": "", "city": "Nice"},
    {"customer_id": "c-3", "name": "Bob", "email": "bob@example.org", "city": ""},
]


def _pseudonym(value: str) -> str:
    return Pseudonymizer(KEY, domain="customer", length=16)(value)


def _run(*argv: str, stderr: io.StringIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="securecustomer")
    commands = parser.add_subparsers(dest="command", required=True)
    add_anonymize_parser(commands)
    args = parser.parse_args(["anonymize", *argv])
    return run_anonymize(args, stderr=stderr)


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SC_CLI_ANON_KEY", KEY.hex())
    path = tmp_path / "plan.toml"
    path.write_text(PLAN, encoding="utf-8")
    return path


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


class TestCsv:
    """CSV is streamed row by row; empty cells stay empty; bad input leaves no output."""

    def test_round_trip(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        _write_csv(source, ROWS)
        err = io.StringIO()
        assert 0 == _run(str(source), str(target), "--plan", str(plan), stderr=err)
        expected = (
            "customer_id,email,city\n"
            f"{_pseudonym('c-1')},j***@example.com,Lyon\n"
            f"{_pseudonym('c-2')},,Nice\n"
            f"{_pseudonym('c-3')},b***@example.org,\n"
        )
        assert expected == target.read_text(encoding="utf-8")
        assert "\ranonymize: 3 rows done\n" == err.getvalue()
        assert ["in.csv", "out.csv", "plan.toml"] == sorted(p.name for p in tmp_path.iterdir())

    def test_progress_every_n_rows(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        _write_csv(source, ROWS * 3)
        err = io.StringIO()
        _run(str(source), str(target), "--plan", str(plan), "--progress-every", "4", stderr=err)
        expected = "\ranonymize: 4 rows\ranonymize: 8 rows\ranonymize: 9 rows done\n"
        assert expected == err.getvalue()
        err = io.StringIO()
        _run(str(source), str(target), "--plan", str(plan), "--progress-every", "0", stderr=err)
        assert "" == err.getvalue()

    def test_progress_defaults_to_stderr(
        self, tmp_path: Path, plan: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        _write_csv(source, ROWS)
        _run(str(source), str(target), "--plan", str(plan))
        assert ("", "\ranonymize: 3 rows done\n") == capsys.readouterr()

    def test_ragged_row_leaves_nothing_behind(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        source.write_text("customer_id,email\nc-1,a@b.c\nc-2,a@b.c,extra\n", encoding="utf-8")
        target.write_text("old", encoding="utf-8")
        with pytest.raises(ConfigurationError, match=r"in\.csv, line 3: more cells"):
            _run(str(source), str(target), "--plan", str(plan))
        assert "old" == target.read_text(encoding="utf-8")
        assert ["in.csv", "out.csv", "plan.toml"] == sorted(p.name for p in tmp_path.iterdir())

    def test_empty_file(self, tmp_path: Path, plan: Path) -> None:
        source = tmp_path / "in.csv"
        source.write_text("", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="no header row"):
            _run(str(source), str(tmp_path / "out.csv"), "--plan", str(plan))

    def test_missing_input(self, tmp_path: Path, plan: Path) -> None:
        with pytest.raises(ConfigurationError, match=r"nope\.csv': no such file"):
            _run(str(tmp_path / "nope.csv"), str(tmp_path / "out.csv"), "--plan", str(plan))

    def test_missing_key_variable(
        self, tmp_path: Path, plan: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SC_CLI_ANON_KEY")
        source = tmp_path / "in.csv"
        _write_csv(source, ROWS)
        with pytest.raises(ConfigurationError, match="'SC_CLI_ANON_KEY' is not set"):
            _run(str(source), str(tmp_path / "out.csv"), "--plan", str(plan))
        assert not (tmp_path / "out.csv").exists()


class TestParquet:
    """Parquet is streamed batch by batch into one file with one schema."""

    def test_round_trip_over_several_batches(self, tmp_path: Path, plan: Path) -> None:
        count = 25_000
        source, target = tmp_path / "in.parquet", tmp_path / "out.parquet"
        table = pa.table(
            {
                "customer_id": [f"c-{n}" for n in range(count)],
                "name": ["x"] * count,
                # the first batch has no email at all: its column must keep the string type
                "email": [None if n < 10_000 else f"u{n}@example.com" for n in range(count)],
                "city": pa.array(["Lyon"] * count, pa.large_string()),
            }
        )
        pq.write_table(table, source, row_group_size=5_000)
        err = io.StringIO()
        args = ["--plan", str(plan), "--progress-every", "10000"]
        assert 0 == _run(str(source), str(target), *args, stderr=err)
        out = pq.read_table(target)
        assert ["customer_id", "email", "city"] == out.column_names
        assert pa.string() == out.schema.field("email").type
        assert pa.large_string() == out.schema.field("city").type
        assert count == out.num_rows
        assert _pseudonym("c-12345") == out.column("customer_id")[12345].as_py()
        assert out.column("email")[9_999].as_py() is None
        assert "u***@example.com" == out.column("email")[10_000].as_py()
        assert err.getvalue().endswith("\ranonymize: 25,000 rows done\n")
        assert "\ranonymize: 10,000 rows\ranonymize: 20,000 rows" in err.getvalue()

    def test_format_option_and_empty_file(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.dat", tmp_path / "out.dat"
        schema = pa.schema([("customer_id", pa.string()), ("city", pa.string())])
        pq.write_table(schema.empty_table(), source)
        assert 0 == _run(str(source), str(target), "--plan", str(plan), "--format", "parquet")
        out = pq.read_table(target)
        assert (0, ["customer_id", "city"]) == (out.num_rows, out.column_names)

    def test_type_change_between_batches(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.parquet", tmp_path / "out.parquet"
        ids = pa.array([None] * 10_000 + [1, 2], pa.int64())
        pq.write_table(pa.table({"customer_id": ids}), source)
        with pytest.raises(AnonymizationError, match="changed type between batches"):
            _run(str(source), str(target), "--plan", str(plan))
        assert ["in.parquet", "plan.toml"] == sorted(p.name for p in tmp_path.iterdir())

    def test_failing_first_batch_leaves_nothing_behind(self, tmp_path: Path, plan: Path) -> None:
        source, target = tmp_path / "in.parquet", tmp_path / "out.parquet"
        pq.write_table(pa.table({"customer_id": [1.5, 2.5]}), source)
        with pytest.raises(AnonymizationError, match="field 'customer_id'"):
            _run(str(source), str(target), "--plan", str(plan))
        assert ["in.parquet", "plan.toml"] == sorted(p.name for p in tmp_path.iterdir())


class TestCsvTypes:
    """CSV cells are text: number and date transforms named in a plan parse them, and
    through the real command line (securecustomer.cli.main)."""

    def test_numbers_and_dates(self, tmp_path: Path) -> None:
        from securecustomer.cli import main

        plan = tmp_path / "plan.toml"
        plan.write_text(
            '[fields]\nage = "age_band"\njoined = { generalize_date = { to = "year" } }\n'
            "spent = { generalize_number = { width = 100 } }\n",
            encoding="utf-8",
        )
        source, target = tmp_path / "in.csv", tmp_path / "out.csv"
        _write_csv(source, [{"age": "34", "joined": "2024-03-05", "spent": "250.5"}])
        assert 0 == main(["anonymize", str(source), str(target), "--plan", str(plan)])
        assert "age,joined,spent\n30-39,2024,200-299\n" == target.read_text(encoding="utf-8")
        _write_csv(source, [{"age": "thirty", "joined": "2024-03-05", "spent": "1"}])
        assert 2 == main(["anonymize", str(source), str(target), "--plan", str(plan)])
