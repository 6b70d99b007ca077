"""Coverage-guided fuzzing with atheris (libFuzzer) of the targets tests/fuzz covers with
Hypothesis: ``python tests/fuzz/atheris_targets.py TARGET [libFuzzer options]``
(``--list`` prints the targets).

Targets, and what each asserts of any input:

- ``token``: `FieldCipher.decrypt` of the bytes returns or raises `DecryptionError`
  (the one opaque error for a bad token), nothing else;
- ``policy-json`` and ``policy-toml``: `Policy.from_json` / `Policy.from_toml` of the text
  return a `Policy` or raise `PolicyError`;
- ``audit``: the bytes, as the lines of a JSON-lines audit file, verify (`AuditTrail.verify`)
  to a `VerificationReport`, never raising; a trail that verifies ``ok`` holds only records
  that the trail's key chained (so random lines never verify, except the empty trail);
- ``pii``: `detect_pii` of the text returns non-overlapping spans inside the text, in
  order, each holding its match's text.

`nox -s fuzz` runs each target for ``SECURECUSTOMER_FUZZ_SECONDS`` (default 30) with
``-max_total_time``; the corpus grows in ``build/fuzz/corpus/TARGET`` (seeded with valid
inputs on first use) and crashing inputs are written to ``build/fuzz/crashes/``. This file is
not a test module (pytest does not collect it: its name does not start with ``test_``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris
import attrs

with atheris.instrument_imports():
    from securecustomer import Context, Keyring, LocalKeyProvider
    from securecustomer.anonymize import detect_pii
    from securecustomer.audit import AuditEvent, AuditTrail, JsonlAuditSink, Record
    from securecustomer.exceptions import DecryptionError, PolicyError
    from securecustomer.keys import MemoryKeyStore
    from securecustomer.policy import Policy

ROOT = Path(__file__).resolve().parents[2]
AUDIT_KEY = bytes(range(32))
CONTEXT = Context("customers", "email", row=7)
CIPHER = Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load().cipher("customers.email")
WORK = Path(tempfile.mkdtemp(prefix="securecustomer-atheris-"))

POLICY_TOML = """\
version = 1
[roles.agent]
[roles.supervisor]
inherits = ["agent"]
[[rules]]
id = "agents-read-contact"
effect = "allow"
roles = ["agent"]
actions = ["read"]
resources = ["customer"]
fields = ["name", "email"]
masks = { email = "email" }
when = "resource.region == subject.region and subject.level >= 2"
"""
POLICY_JSON = (
    '{"version": 1, "roles": {"agent": {}}, "rules": [{"id": "r", "effect": "deny", '
    '"roles": ["agent"], "actions": ["delete"], "resources": ["customer"], '
    '"when": "not (resource.tags contains \\"vip\\")"}]}'
)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def token(data: bytes) -> None:
    with contextlib.suppress(DecryptionError):
        CIPHER.decrypt(data, context=CONTEXT)


def policy_json(data: bytes) -> None:
    text = _text(data)
    if not text.lstrip().startswith("{"):
        text = "{" + text  # anything else is read as a file name
    with contextlib.suppress(PolicyError):
        Policy.from_json(text)


def policy_toml(data: bytes) -> None:
    text = _text(data)
    if "=" not in text:
        text += "\n#="  # text without "=" is read as a file name
    with contextlib.suppress(PolicyError):
        Policy.from_toml(text)


def audit(data: bytes) -> None:
    path = WORK / "audit.jsonl"
    path.write_bytes(data)
    report = AuditTrail(JsonlAuditSink(path, fsync="never"), key=AUDIT_KEY).verify()
    if report.ok:
        # only records chained under AUDIT_KEY verify: the seed trail's, from its start
        records = list(JsonlAuditSink(path).records())
        assert records == SEED_RECORDS[: len(records)], "a record not chained by the key verified"


def pii(data: bytes) -> None:
    text = _text(data)
    matches = detect_pii(text)
    end = 0
    for match in matches:
        assert end <= match.start < match.end <= len(text), (match.start, match.end)
        assert text[match.start : match.end] == match.text
        end = match.end


def _seed_audit() -> tuple[bytes, list[Record]]:
    path = WORK / "seed.jsonl"
    trail = AuditTrail(JsonlAuditSink(path, fsync="never"), key=AUDIT_KEY)
    for n in range(3):
        # fixed ids and times: every run's seed trail is the same, and so is SEED_RECORDS
        event = AuditEvent("read", actor=f"user-{n}", resource_id=str(n), id=f"{n:024x}")
        trail.append(attrs.evolve(event, timestamp=dt.datetime(2026, 1, 1, n, tzinfo=dt.UTC)))
    trail.flush()
    return path.read_bytes(), list(JsonlAuditSink(path).records())


SEED_AUDIT, SEED_RECORDS = _seed_audit()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "token": token,
    "policy-json": policy_json,
    "policy-toml": policy_toml,
    "audit": audit,
    "pii": pii,
}


def _seeds(name: str) -> list[bytes]:
    if name == "token":
        return [
            CIPHER.encrypt(value, context=CONTEXT) for value in ("ada@example.com", 42, b"\x00")
        ]
    if name == "policy-json":
        return [POLICY_JSON.encode()]
    if name == "policy-toml":
        return [POLICY_TOML.encode()]
    if name == "audit":
        return [SEED_AUDIT]
    return [
        b"Reply to ada@example.com or +44 20 7946 0958, card 4111 1111 1111 1111, "
        b"IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, from 8.8.8.8, born 1990-03-05"
    ]


def main(argv: list[str]) -> None:
    if argv[1:] == ["--list"]:
        print("targets:", " ".join(TARGETS))  # atheris may print to stdout too
        return
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    name = argv[1]
    corpus = ROOT / "build" / "fuzz" / "corpus" / name
    crashes = ROOT / "build" / "fuzz" / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        for i, seed in enumerate(_seeds(name)):
            (corpus / f"seed-{i}").write_bytes(seed)
    options = [f"-artifact_prefix={crashes}/{name}-", *argv[2:], str(corpus)]
    atheris.Setup([argv[0], *options], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
