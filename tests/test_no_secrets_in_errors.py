"""No plaintext, key or secret ever appears in an error, a log line or a traceback.

Canary values (strings, an int, a date, a datetime, JSON, a master key, a key file, an
anonymization key, an audit key) are encrypted, stored or passed in; then every error
path we can reach of the public API and of the CLI is driven with them. For each case,
the exception's message, ``repr``, attributes, its ``__cause__`` / ``__context__`` chain,
its formatted traceback (without locals), every log record (``logging`` and structlog)
and everything printed are searched for every canary, and for the hex and base64 of the
canary keys. The cases are a list: add one per new error path.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import logging
import tempfile
import traceback
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from securecustomer import Context, Keyring, LocalKeyProvider
from securecustomer.keys import FileKeyStore, MemoryKeyStore

CANARY = "CANARY-7f3a9c1e"
CANARY_WORD = "CANARYWORDXQZ"  # no digit in it
CANARY_INT = 7314159265358979
CANARY_DATE = dt.date(1917, 3, 14)
#: 02:30 on 2024-03-31 does not exist in Paris (the clocks jump from 02:00 to 03:00).
CANARY_GAP = dt.datetime(2024, 3, 31, 2, 30, 17, 731459, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
CANARY_JSON = {"note": f"{CANARY}-json", "n": CANARY_INT}
CANARY_KEY = bytes.fromhex("c4a7e19d3b5f" * 5 + "0b1e")  # 32 bytes
CANARY_AUDIT_KEY = bytes.fromhex("a11d17c4a7e1" * 5 + "9d3b")
CANARY_ANON_KEY = bytes.fromhex("e1d2c3b4a5f6" * 5 + "0718")
WHERE = Context("customers", "notes", row=42)


def _forms(key: bytes) -> list[str]:
    """A key as it could leak: hex, base64 (both alphabets), and the bytes' repr."""
    return [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode().rstrip("="),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        repr(key)[2:30],
    ]


NEEDLES = [
    CANARY,
    CANARY_WORD,
    str(CANARY_INT),
    CANARY_DATE.isoformat(),
    "02:30:17",
    "731459",
    *(n for k in (CANARY_KEY, CANARY_AUDIT_KEY, CANARY_ANON_KEY) for n in _forms(k)),
]


def _keyring() -> Keyring:
    return Keyring(LocalKeyProvider([CANARY_KEY]), MemoryKeyStore()).load()


def _token(value: object = CANARY) -> tuple[Keyring, bytes]:
    keyring = _keyring()
    return keyring, keyring.cipher("customers.notes").encrypt(value, context=WHERE)  # type: ignore[arg-type]


# -- the cases: each callable must raise -------------------------------------------------


def decrypt_wrong_context() -> None:
    keyring, token = _token()
    keyring.cipher("customers.notes").decrypt(token, context=Context("customers", "notes", row=43))


def decrypt_tampered() -> None:
    keyring, token = _token()
    bad = token[:-1] + bytes([token[-1] ^ 1])
    keyring.cipher("customers.notes").decrypt(bad, context=WHERE)


def decrypt_truncated() -> None:
    keyring, token = _token()
    keyring.cipher("customers.notes").decrypt(token[:-20], context=WHERE)


def decrypt_unknown_key_id() -> None:
    keyring, token = _token()
    keyring.cipher("customers.notes").decrypt(token[:2] + bytes(4) + token[6:], context=WHERE)


def decrypt_other_scope() -> None:
    keyring, token = _token()
    keyring.cipher("customers.other").encrypt("x", context=WHERE)
    keyring.cipher("customers.other").decrypt(token, context=WHERE)


def decrypt_a_str() -> None:
    _keyring().cipher("customers.notes").decrypt(CANARY, context=WHERE)  # type: ignore[arg-type]


def decrypt_destroyed() -> None:
    keyring = _keyring()
    cipher = keyring.cipher("subject:1")
    token = cipher.encrypt(CANARY, context=WHERE)
    keyring.destroy("subject:1")
    cipher.decrypt(token, context=WHERE)


def encrypt(value: object) -> Callable[[], object]:
    return lambda: _keyring().cipher("customers.notes").encrypt(value, context=WHERE)  # type: ignore[arg-type]


class _Str(str):
    pass


class _Int(enum.IntEnum):
    CANARY = CANARY_INT


def key_file(tmp: Path, content: str) -> Callable[[], object]:
    def load() -> object:
        path = tmp / "master.key"
        path.write_text(content, encoding="utf-8")
        path.chmod(0o600)
        return LocalKeyProvider.from_file(path)

    return load


def key_store_file(tmp: Path) -> Callable[[], object]:
    def load() -> object:
        path = tmp / "keys.json"
        document = {
            "format": "securecustomer.keystore",
            "version": 1,
            "roots": [],
            "data_keys": [
                {
                    "key_id": 1,
                    "scope": "customers.notes",
                    "version": 1,
                    "state": "active",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "root_version": 1,
                    "wrapped": f"{CANARY}!!{CANARY_KEY.hex()}",
                }
            ],
        }
        path.write_text(json.dumps(document), encoding="utf-8")
        return FileKeyStore(path).data_keys("x")

    return load


def wrong_master_key() -> None:
    store = MemoryKeyStore()
    Keyring(LocalKeyProvider([CANARY_KEY]), store).load()
    Keyring(LocalKeyProvider([CANARY_AUDIT_KEY]), store).load()


def env_master_key(monkeypatch: pytest.MonkeyPatch, text: str) -> Callable[[], object]:
    def load() -> object:
        monkeypatch.setenv("SC_CANARY_MASTER", text)
        return LocalKeyProvider.from_env("SC_CANARY_MASTER")

    return load


def anonymize_cases() -> list[tuple[str, Callable[[], object]]]:
    from securecustomer.anonymize import (
        FF3Cipher,
        Hierarchy,
        Pseudonymizer,
        enforce_k_anonymity,
        pseudonymize,
        shift_date,
    )

    rows = [{"city": f"{CANARY}-{i}"} for i in range(3)]
    return [
        (
            "pseudonym of a wrong type",
            lambda: pseudonymize(CANARY_GAP, CANARY_ANON_KEY, domain="d"),
        ),
        (
            "pseudonym without digits",
            lambda: Pseudonymizer(CANARY_ANON_KEY, domain="d", format="digits")(CANARY_WORD),
        ),
        ("pseudonym short key", lambda: Pseudonymizer(CANARY_ANON_KEY[:8], domain="d")),
        ("ff3 short key", lambda: FF3Cipher(CANARY_ANON_KEY[:15], bytes(7))),
        ("ff3 bad tweak", lambda: FF3Cipher(CANARY_ANON_KEY[:16], CANARY_ANON_KEY[:5])),
        (
            "ff3 character outside",
            lambda: FF3Cipher(CANARY_ANON_KEY[:16], bytes(7)).encrypt(f"12345{CANARY}"),
        ),
        ("shift a str", lambda: shift_date(CANARY, CANARY_ANON_KEY, subject=CANARY)),
        ("hierarchy unknown value", lambda: Hierarchy({"A": ["B"]}).generalize(CANARY, 1)),
        ("k unreachable", lambda: enforce_k_anonymity(rows, ["city"], 3, {}, max_suppression=0)),
    ]


def policy_cases() -> list[tuple[str, Callable[[], object]]]:
    from securecustomer.policy import Policy, PolicyEngine, Resource, Subject

    condition = f'resource.note == "{CANARY}" and'
    document = f"""
version = 1
[[rules]]
id = "r1"
effect = "allow"
actions = ["read"]
resources = ["customer"]
roles = ["agent"]
when = '{condition}'
"""
    good = """
version = 1
[[rules]]
id = "r1"
effect = "allow"
actions = ["read"]
resources = ["customer"]
roles = ["agent"]
when = 'resource.tier == "gold"'
"""

    def denied() -> object:
        engine = PolicyEngine(Policy.from_toml(good))
        resource = Resource("customer", attributes={"tier": CANARY, "note": CANARY})
        return engine.require(Subject("dana", roles={"agent"}), "read", resource)

    return [
        ("policy with a bad condition", lambda: Policy.from_toml(document)),
        ("policy unknown key", lambda: Policy.from_toml(good + f'secret = "{CANARY}"\n')),
        ("access denied", denied),
    ]


def audit_cases(tmp: Path) -> list[tuple[str, Callable[[], object]]]:
    from securecustomer.audit import AuditTrail, JsonlAuditSink, MemoryAuditSink, audited

    def failing_sink() -> object:
        trail = AuditTrail(JsonlAuditSink(tmp / "missing" / "trail.jsonl"), key=CANARY_AUDIT_KEY)

        @audited("customer.read", resource="customer", subject="note", trail=trail)
        def read(note: str) -> str:
            return note

        return read(CANARY)

    return [
        ("audit short key", lambda: AuditTrail(MemoryAuditSink(), key=CANARY_AUDIT_KEY[:8])),
        ("audit sink fails", failing_sink),
    ]


def cli(*argv: str) -> Callable[[], object]:
    def run() -> object:
        from securecustomer.cli._main import main

        status = main(list(argv))
        if status == 0:
            return status
        raise SystemExit(status)

    return run


def cli_cases(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Callable[[], object]]]:
    source = tmp / "in.csv"
    source.write_text(f"id,note\n1,{CANARY_WORD}\n", encoding="utf-8")
    written = tmp / "plan-with-key.toml"
    written.write_text(
        f'key = "{CANARY_ANON_KEY.hex()}"\n[fields]\nnote = "keep"\n', encoding="utf-8"
    )
    digits = tmp / "plan-digits.toml"
    digits.write_text(
        'key_env = "SC_CANARY_ANON"\n[fields]\n'
        'note = { pseudonymize = { domain = "d", format = "digits" } }\nid = "keep"\n',
        encoding="utf-8",
    )
    bad_env = tmp / "plan-env.toml"
    bad_env.write_text(
        'key_env = "SC_CANARY_BAD"\n[fields]\nnote = { pseudonymize = { domain = "d" } }\n'
        'id = "keep"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("SC_CANARY_ANON", CANARY_ANON_KEY.hex())
    monkeypatch.setenv("SC_CANARY_BAD", f"{CANARY}{CANARY_ANON_KEY.hex()}")
    keyfile = tmp / "cli-master.key"
    keyfile.write_text(
        json.dumps(
            {
                "format": "securecustomer.local-master-key",
                "version": 1,
                "keys": [{"id": CANARY, "key": base64.b64encode(CANARY_KEY).decode()}],
            }
        ),
        encoding="utf-8",
    )
    keyfile.chmod(0o600)
    out = str(tmp / "out.csv")
    return [
        ("cli anonymize key in plan", cli("anonymize", str(source), out, "--plan", str(written))),
        ("cli anonymize no digits", cli("anonymize", str(source), out, "--plan", str(digits))),
        ("cli anonymize bad key env", cli("anonymize", str(source), out, "--plan", str(bad_env))),
        (
            "cli keys bad key file",
            cli(
                "keys",
                "status",
                "--key-file",
                str(keyfile),
                "--key-store-file",
                str(tmp / "cli-store.json"),
            ),
        ),
    ]


def _cases(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Callable[[], object]]]:
    bad_json_file = json.dumps(
        {
            "format": "securecustomer.local-master-key",
            "version": 1,
            "keys": [{"id": "0", "created": "x", "key": base64.b64encode(CANARY_KEY).decode()}],
        }
    )
    not_base64_file = json.dumps(
        {
            "format": "securecustomer.local-master-key",
            "version": 1,
            "keys": [{"id": "0", "created": "x", "key": f"{CANARY}{CANARY_KEY.hex()}"}],
        }
    )
    short_key_file = json.dumps(
        {
            "format": "securecustomer.local-master-key",
            "version": 1,
            "keys": [
                {"id": "0", "created": "x", "key": base64.b64encode(CANARY_KEY[:31]).decode()}
            ],
        }
    )
    return [
        ("decrypt wrong context", decrypt_wrong_context),
        ("decrypt tampered", decrypt_tampered),
        ("decrypt truncated", decrypt_truncated),
        ("decrypt unknown key id", decrypt_unknown_key_id),
        ("decrypt other scope", decrypt_other_scope),
        ("decrypt a str", decrypt_a_str),
        ("decrypt destroyed", decrypt_destroyed),
        ("encrypt a str subclass", encrypt(_Str(CANARY))),
        ("encrypt an IntEnum", encrypt(_Int.CANARY)),
        ("encrypt a naive datetime", encrypt(CANARY_GAP.replace(tzinfo=None))),
        ("encrypt a datetime in a gap", encrypt(CANARY_GAP)),
        ("encrypt JSON with NaN", encrypt({**CANARY_JSON, "x": float("nan")})),
        ("encrypt JSON with a set", encrypt({**CANARY_JSON, "x": {CANARY}})),
        ("encrypt JSON with a tuple", encrypt({**CANARY_JSON, "x": (CANARY,)})),
        ("encrypt JSON with mixed keys", encrypt({CANARY: 1, CANARY_INT: 2})),
        ("encrypt lone surrogate", encrypt(f"{CANARY}\ud800")),
        ("encrypt None", encrypt(None)),
        ("encrypt a set", encrypt({CANARY})),
        ("context row too long", lambda: Context("t", "c", row=CANARY * 5000)),
        ("key file not JSON", key_file(tmp, f"{CANARY} {CANARY_KEY.hex()}")),
        ("key file id mismatch", key_file(tmp, bad_json_file)),
        ("key file short key", key_file(tmp, short_key_file)),
        ("key file key not base64", key_file(tmp, not_base64_file)),
        ("master key env not base64", env_master_key(monkeypatch, f"{CANARY}!{CANARY_KEY.hex()}")),
        (
            "master key env short",
            env_master_key(monkeypatch, base64.b64encode(CANARY_KEY[:31]).decode()),
        ),
        ("master key short", lambda: LocalKeyProvider([CANARY_KEY[:31]])),
        ("wrong master key", wrong_master_key),
        ("key store corrupt", key_store_file(tmp)),
        *anonymize_cases(),
        *policy_cases(),
        *audit_cases(tmp),
        *cli_cases(tmp, monkeypatch),
    ]


def _case_ids() -> list[str]:
    """The names of the cases, built once in a scratch directory at collection."""
    patch = pytest.MonkeyPatch()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            return [name for name, _ in _cases(Path(scratch), patch)]
    finally:
        patch.undo()


CASE_IDS = _case_ids()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """*exc* and the errors a traceback shows with it (causes, unsuppressed contexts)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo.append(error.__cause__)
        if not error.__suppress_context__:
            todo.append(error.__context__)


def _texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for error in _chain(exc):
        texts += [str(error), repr(error), repr(getattr(error, "__dict__", {}))]
        texts += [repr(a) for a in error.args]
    return texts


class TestNoCanaryAnywhere:
    """Each error path hides every canary."""

    @pytest.mark.parametrize("name", CASE_IDS)
    def test_case(
        self,
        name: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        call = dict(_cases(tmp_path, monkeypatch))[name]
        caplog.set_level(logging.DEBUG)
        # Exception: whether it is in the tree is tests/test_error_tree.py's question
        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises((Exception, SystemExit)) as info,
        ):
            call()
        printed = capsys.readouterr()
        texts = [
            *_texts(info.value),
            *(record.getMessage() for record in caplog.records),
            *(repr(record.__dict__) for record in caplog.records),
            *(repr(entry) for entry in logs),
            printed.out,
            printed.err,
        ]
        leaks = sorted({n for n in NEEDLES for text in texts if n in text})
        assert [] == leaks, "\n---\n".join(t for t in texts if any(n in t for n in leaks))

    def test_a_leak_is_found(self) -> None:
        """The search can fail: the old clock-change-gap message would be found."""
        old = ValueError(f"{CANARY_GAP.replace(tzinfo=None).isoformat()} does not exist")
        assert "02:30:17" in "".join(_texts(old))
        assert any(n in "".join(_texts(old)) for n in NEEDLES)
