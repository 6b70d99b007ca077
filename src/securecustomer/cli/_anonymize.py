"""``securecustomer anonymize IN OUT --plan plan.toml``: stream a CSV or Parquet file.

Memory stays bounded: CSV is read and written row by row with the ``csv`` module,
Parquet batch by batch (``ParquetFile.iter_batches``). Progress goes to stderr as one
line rewritten every ``--progress-every`` rows. The output is written to a temporary
file next to ``OUT`` (readable by its owner only) and renamed at the end, so a failure
never leaves half a file. A CSV file must be UTF-8 text with as many cells in each row as
in its header, quoted by the rules of RFC 4180 (``csv.reader(strict=True)``): anything
else is refused with the file and line, never guessed at.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from securecustomer.anonymize._anonymizer import Anonymizer
from securecustomer.cli._files import check_output, input_file, replacing, text_lines
from securecustomer.exceptions import AnonymizationError, ConfigurationError

__all__ = ["add_anonymize_parser", "run_anonymize"]

_BATCH_ROWS = 10_000


def add_anonymize_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "anonymize", help="apply an anonymisation plan to a CSV or Parquet file"
    )
    parser.add_argument("input", metavar="IN", help="the file to read")
    parser.add_argument("output", metavar="OUT", help="the file to write (replaced if present)")
    parser.add_argument("--plan", required=True, metavar="PLAN", help="a TOML anonymisation plan")
    parser.add_argument(
        "--format",
        choices=("csv", "parquet"),
        help="the file format (default: from IN's suffix, .parquet/.pq or else csv)",
    )
    parser.add_argument(
        "--progress-every",
        type=int,
        default=100_000,
        metavar="N",
        help="update the progress line every N rows; 0 for none (default: %(default)s)",
    )


class _Progress:
    """A one-line counter on a stream, like tqdm's without a dependency."""

    def __init__(self, stream: TextIO, every: int) -> None:
        self.stream = stream
        self.every = every
        self.rows = 0
        self._next = every

    def advance(self, rows: int) -> None:
        self.rows += rows
        if self.every > 0 and self.rows >= self._next:
            self.stream.write(f"\ranonymize: {self.rows:,} rows")
            self.stream.flush()
            self._next = (self.rows // self.every + 1) * self.every

    def interrupt(self) -> None:
        """End a drawn progress line, so that the error line starts on its own."""
        if self.every > 0 and self.rows >= self.every:
            self.stream.write("\n")
            self.stream.flush()

    def close(self) -> None:
        if self.every > 0:
            self.stream.write(f"\ranonymize: {self.rows:,} rows done\n")
            self.stream.flush()


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    return "parquet" if Path(args.input).suffix.lower() in {".parquet", ".pq"} else "csv"


def _anonymize_csv(
    anonymizer: Anonymizer, source: Path, target: TextIO, progress: _Progress
) -> None:
    with source.open("rb") as handle:
        reader = csv.reader(text_lines(handle, str(source)), strict=True)
        rows = _rows(reader, source)
        header = next(rows, None)
        if header is None:
            raise ConfigurationError(f"{source}: the CSV file has no header row")
        seen: dict[str, int] = {}
        for number, name in enumerate(header, 1):
            if name in seen:  # named by position: a file without a header row has data here
                raise ConfigurationError(
                    f"{source}, line {reader.line_num}: columns {seen[name]} and {number} "
                    "have the same name"
                )
            seen[name] = number
        writer = csv.DictWriter(
            target, fieldnames=anonymizer.output_fields(header), lineterminator="\n"
        )
        writer.writeheader()
        for row in anonymizer.apply_many(_cells(rows, header, reader, source)):
            writer.writerow(row)
            progress.advance(1)


def _rows(reader: Any, source: Path) -> Iterator[list[str]]:
    """The records of *reader*, blank lines skipped; bad quoting names the line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ConfigurationError(
                f"{source}, line {reader.line_num}: malformed CSV: {exc}"
            ) from None
        if row:
            yield row


def _cells(
    rows: Iterator[list[str]], header: list[str], reader: Any, source: Path
) -> Iterator[dict[str, str | None]]:
    for row in rows:
        if len(row) != len(header):
            more = "more" if len(row) > len(header) else "fewer"
            raise ConfigurationError(
                f"{source}, line {reader.line_num}: {more} cells than the header has columns"
            )
        # CSV has no NULL: an empty cell stays empty and is never passed to a transform.
        yield {
            key: (value if value != "" else None) for key, value in zip(header, row, strict=True)
        }


def _anonymize_parquet(
    anonymizer: Anonymizer, source: Path, target: str, progress: _Progress
) -> None:
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ImportError(
            "Parquet support needs the 'pyarrow' package: pip install pyarrow"
        ) from exc
    unreadable = (importlib.import_module("pyarrow").ArrowException, OSError)
    try:
        reader = parquet.ParquetFile(source)
        batches = reader.iter_batches(batch_size=_BATCH_ROWS)
    except unreadable as exc:
        raise _not_parquet(source, exc) from None
    writer: Any = None
    try:
        while True:
            try:
                batch = next(batches, None)
            except unreadable as exc:
                raise _not_parquet(source, exc) from None
            if batch is None:
                break
            table = anonymizer.apply_table(batch)
            if writer is None:
                writer = parquet.ParquetWriter(target, table.schema)
            elif table.schema != writer.schema:
                try:
                    table = table.cast(writer.schema)
                except (ValueError, TypeError, NotImplementedError) as exc:
                    raise AnonymizationError(
                        f"{source}: transformed columns changed type between batches "
                        f"({table.schema.types} after {writer.schema.types})"
                    ) from exc
            writer.write_table(table)
            progress.advance(table.num_rows)
        if writer is None:  # no rows: keep the planned columns of the input's schema
            empty = anonymizer.apply_table(reader.schema_arrow.empty_table())
            writer = parquet.ParquetWriter(target, empty.schema)
    finally:
        if writer is not None:
            writer.close()


def _not_parquet(source: Path, exc: Exception) -> ConfigurationError:
    # pyarrow's reading errors describe the file's structure (footer, pages), not values.
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return ConfigurationError(f"{source}: not a readable Parquet file: {reason}")


def run_anonymize(args: argparse.Namespace, *, stderr: TextIO | None = None) -> int:
    """Run ``securecustomer anonymize``; returns the exit status."""
    source = input_file(args.input, "IN")
    check_output(args.output, "OUT")
    anonymizer = Anonymizer.from_plan(args.plan)
    progress = _Progress(sys.stderr if stderr is None else stderr, args.progress_every)
    try:
        with replacing(args.output, "OUT") as temporary:
            if _format(args) == "csv":
                with temporary.open("w", newline="", encoding="utf-8") as target:
                    _anonymize_csv(anonymizer, source, target, progress)
            else:
                _anonymize_parquet(anonymizer, source, str(temporary), progress)
    except BaseException:
        progress.interrupt()
        raise
    progress.close()
    return 0
