"""Regenerate ``tests/vectors/format_v1.json``, the published test vectors of value format v1.

Run from the project root (with securecustomer importable)::

    python tests/vectors/generate.py           # rewrite format_v1.json
    python tests/vectors/generate.py --check   # exit 1 if the file is not what this produces

Every valid token is produced by the public `securecustomer.hazmat` functions
(`encrypt_with_nonce` with a fixed nonce for AES-256-GCM, `field_cipher` for AES-256-SIV
and the blind index), from fixed key material, key ids and nonces, so the output is
deterministic. The derived subkeys and the associated data recorded next to each token
are computed here from the written specification (``docs/format.md``) with the
`cryptography` primitives directly, and every token is checked against them before the
file is written: a token that does not open under the documented key and associated data
aborts the run. Invalid tokens whose tag must verify (unknown version, algorithm or type,
non-canonical plaintexts) are sealed here with the raw AEAD and the documented layout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import struct
import sys
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securecustomer.crypto import Context
from securecustomer.hazmat import encrypt_with_nonce, field_cipher

OUTPUT = Path(__file__).with_name("format_v1.json")

GCM, SIV = "aes-256-gcm", "aes-256-siv"
ALGORITHM_NIBBLE = {GCM: 0x1, SIV: 0x2}
TYPE_CODES = {
    "bytes": 0,
    "str": 1,
    "int": 2,
    "bool": 3,
    "float": 4,
    "decimal": 5,
    "date": 6,
    "datetime": 7,
    "uuid": 8,
    "json": 9,
}
LABELS = {
    "aes-256-gcm": (b"securecustomer/v1/aes-256-gcm", 32),
    "aes-256-siv": (b"securecustomer/v1/aes-256-siv", 64),
    "blind-index": (b"securecustomer/v1/blind-index", 32),
}
PARIS = zoneinfo.ZoneInfo("Europe/Paris")
UTC = dt.UTC

#: Fixed data keys: name -> (32-byte material, key id).
KEYS: dict[str, tuple[bytes, int]] = {
    "k1": (bytes(range(0x20)), 0x000004D2),
    "k2": (bytes(range(0xE0, 0x100)), 0xFFFFFFFF),
    # Same key id as k1, other material: a token of k1 must not open under it.
    "k1-impostor": (bytes(range(0x20, 0x40)), 0x000004D2),
}

# -- the written specification, for the side data and the hand-sealed tokens --------------


def lp(part: bytes) -> bytes:
    """Length-prefixed part: u32be(len) || bytes."""
    return len(part).to_bytes(4, "big") + part


def header(version: int, nibble: int, type_code: int, key_id: int) -> bytes:
    return bytes((version, type_code << 4 | nibble)) + key_id.to_bytes(4, "big")


def aad(
    head: bytes, table: str, column: str, row: str | None, scope: str, schema: str | None = None
) -> bytes:
    # The schema part is there only when the context has a schema (docs/format.md).
    parts = (b"securecustomer", *([schema] if schema is not None else []), table, column)
    parts += (row or "", scope)
    return head + b"".join(lp(p if isinstance(p, bytes) else p.encode("utf-8")) for p in parts)


def subkey(material: bytes, label: str) -> bytes:
    info, length = LABELS[label]
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


def seal(
    key: str,
    algorithm: str,
    head: bytes,
    plaintext: bytes,
    ad: bytes,
    nonce: bytes | None,
) -> bytes:
    """Seal *plaintext* with the raw AEAD under *head* (which may be one the library refuses)."""
    material = KEYS[key][0]
    if algorithm == GCM:
        assert nonce is not None
        return head + nonce + AESGCM(subkey(material, GCM)).encrypt(nonce, plaintext, ad)
    sealed = AESSIV(subkey(material, SIV)).encrypt(plaintext, [ad])
    return head + sealed[16:] + sealed[:16]


def open_token(key: str, algorithm: str, token: bytes, ad: bytes) -> bytes:
    """Open *token* with the raw AEAD and the documented layout (raises InvalidTag)."""
    material = KEYS[key][0]
    if algorithm == GCM:
        return AESGCM(subkey(material, GCM)).decrypt(token[6:18], token[18:], ad)
    return AESSIV(subkey(material, SIV)).decrypt(token[-16:] + token[6:-16], [ad])


_nonce_counter = 0


def next_nonce() -> bytes:
    """A fixed, distinct 12-byte nonce per GCM token (a nonce is never reused under a key)."""
    global _nonce_counter
    _nonce_counter += 1
    seed = b"securecustomer/v1/test-vector-nonce" + _nonce_counter.to_bytes(4, "big")
    return hashlib.sha256(seed).digest()[:12]


# -- typed values in JSON ----------------------------------------------------------------


def typed(value: Any) -> dict[str, Any]:
    """The typed JSON form of a plaintext value."""
    if type(value) is bytes:
        return {"type": "bytes", "value": value.hex()}
    if type(value) is str:
        return {"type": "str", "value": value}
    if type(value) is bool:
        return {"type": "bool", "value": value}
    if type(value) is int:
        return {"type": "int", "value": str(value)}
    if type(value) is float:
        return {"type": "float", "value": repr(value), "ieee754": struct.pack(">d", value).hex()}
    if type(value) is Decimal:
        return {"type": "decimal", "value": str(value)}
    if type(value) is dt.datetime:
        form = {"type": "datetime", "value": value.isoformat()}
        if isinstance(value.tzinfo, zoneinfo.ZoneInfo):
            form["zone"] = value.tzinfo.key
        return form
    if type(value) is dt.date:
        return {"type": "date", "value": value.isoformat()}
    if type(value) is uuid.UUID:
        return {"type": "uuid", "value": str(value)}
    if type(value) in (dict, list):
        return {"type": "json", "value": value}
    raise TypeError(type(value))


# -- the vectors -------------------------------------------------------------------------

# (id, value, description) encrypted with AES-256-GCM under k1.
GCM_VALUES: list[tuple[str, Any, str]] = [
    ("bytes-empty", b"", "empty bytes: the ciphertext is empty, the token is header|nonce|tag"),
    ("bytes", b"\x00\x01\x7f\x80\xfe\xff", "arbitrary bytes, carried as is"),
    ("str-empty", "", "empty string"),
    ("str-ascii", "ada@example.com", "ASCII string"),
    ("str-non-ascii", "Zoë Ÿ 日本 \U0001f389", "UTF-8 with 2-, 3- and 4-byte sequences"),
    ("int-zero", 0, "zero is one 0x00 byte"),
    ("int-127", 127, "largest one-byte int"),
    ("int-128", 128, "needs a 0x00 sign byte"),
    ("int-minus-1", -1, "minus one is one 0xff byte"),
    ("int-minus-128", -128, "one byte 80: minimal two's complement"),
    ("int-minus-129", -129, "two bytes ff7f"),
    ("int-2-pow-63-minus-1", 2**63 - 1, "largest signed 64-bit int"),
    ("int-2-pow-64", 2**64, "beyond 64 bits"),
    ("int-minus-2-pow-64-minus-1", -(2**64) - 1, "negative, beyond 64 bits"),
    ("int-10-pow-40", 10**40, "a 133-bit int"),
    ("bool-true", True, "True is 0x01 (type code 3, not an int)"),
    ("bool-false", False, "False is 0x00"),
    ("float-zero", 0.0, "positive zero"),
    ("float-negative-zero", -0.0, "negative zero keeps its sign bit"),
    ("float-pi", 3.141592653589793, "IEEE 754 binary64, big-endian"),
    ("float-subnormal", 5e-324, "smallest subnormal"),
    ("float-infinity", float("inf"), "infinity is allowed for floats (not inside JSON)"),
    ("decimal-1.10", Decimal("1.10"), "trailing zero kept: 1.10 is not 1.1"),
    ("decimal-negative-zero", Decimal("-0.00"), "negative zero with exponent -2"),
    ("decimal-exponent", Decimal("1E+3"), "scientific form from str()"),
    ("decimal-small", Decimal("0.0000001"), "str() switches to 1E-7 below 1e-6"),
    ("decimal-long", Decimal("-123456789012345678901234567890.123"), "more digits than a double"),
    ("date", dt.date(2024, 2, 29), "ISO yyyy-mm-dd"),
    ("date-min", dt.date(1, 1, 1), "year padded to 4 digits"),
    ("date-max", dt.date(9999, 12, 31), "largest date"),
    ("datetime-utc", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "UTC is +00:00"),
    (
        "datetime-utc-microseconds",
        dt.datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
        "microseconds as 6 digits, only when not zero",
    ),
    (
        "datetime-fixed-offset",
        dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "fixed negative offset",
    ),
    (
        "datetime-offset-seconds",
        dt.datetime(
            2024, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=45, seconds=30))
        ),
        "an offset with seconds is written +HH:MM:SS",
    ),
    (
        "datetime-zone-summer",
        dt.datetime(2024, 7, 14, 12, 0, tzinfo=PARIS),
        "IANA zone: offset then [Zone/Key]",
    ),
    (
        "datetime-zone-winter",
        dt.datetime(2024, 12, 24, 18, 30, tzinfo=PARIS),
        "same zone, other offset",
    ),
    (
        "datetime-zone-ambiguous-fold",
        dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=PARIS),
        "second 02:30 of the autumn change: the offset (+01:00) says which one",
    ),
    ("uuid", uuid.UUID("12345678-9abc-4def-8123-456789abcdef"), "the 16 bytes of the UUID"),
    ("uuid-nil", uuid.UUID(int=0), "nil UUID"),
    (
        "json-dict",
        {"name": "Zoë", "tags": ["a", "b"], "age": 36, "vip": True, "score": 1.5, "note": None},
        "keys sorted, no spaces, UTF-8 not \\u escapes",
    ),
    (
        "json-nested",
        {"b": {"y": [1, 2.0, -3e-7], "x": '"quoted"\n'}, "a": [], "\u00e9": {}},
        "nested, escapes, floats as Python repr",
    ),
    ("json-list", [3, "two", [1], {"k": False}], "a list at the top"),
    ("json-empty-dict", {}, "{}"),
    ("json-empty-list", [], "[]"),
]

# (id, value, description) encrypted with AES-256-SIV under k1: one or more per type.
SIV_VALUES: list[tuple[str, Any, str]] = [
    ("bytes-empty", b"", "empty bytes: the token is header|V"),
    ("bytes", b"\x00\x01\x7f\x80\xfe\xff", "arbitrary bytes"),
    ("str-empty", "", "empty string"),
    ("str-ascii", "ada@example.com", "ASCII string"),
    ("str-non-ascii", "Zoë Ÿ 日本 \U0001f389", "UTF-8"),
    ("int-minus-2-pow-64-minus-1", -(2**64) - 1, "negative, beyond 64 bits"),
    ("bool-true", True, "True"),
    ("float-negative-zero", -0.0, "negative zero"),
    ("decimal-1.10", Decimal("1.10"), "trailing zero kept"),
    ("date", dt.date(2024, 2, 29), "ISO date"),
    ("datetime-utc", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "UTC"),
    ("datetime-zone", dt.datetime(2024, 7, 14, 12, 0, tzinfo=PARIS), "IANA zone"),
    ("uuid", uuid.UUID("12345678-9abc-4def-8123-456789abcdef"), "UUID"),
    ("json-dict", {"b": 2, "a": [1, "x"]}, "JSON dict"),
    ("json-list", [1, "two", None], "JSON list"),
]

TABLE = "customers"
SCOPE_K1 = "customers.pii"
SCOPE_K2 = "subject:Zoë/42"


def context_json(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"table": ctx.table, "column": ctx.column, "row": ctx.row}
    if ctx.schema is not None:  # only then: the vectors without a schema stay as they were
        out["schema"] = ctx.schema
    return out


def valid_vector(
    vector_id: str,
    description: str,
    *,
    key: str,
    algorithm: str,
    value: Any,
    ctx: Context,
    scope: str,
) -> dict[str, Any]:
    material, key_id = KEYS[key]
    nonce = next_nonce() if algorithm == GCM else None
    token = encrypt_with_nonce(
        material,
        key_id=key_id,
        scope=scope,
        value=value,
        context=ctx,
        nonce=nonce,
        algorithm=algorithm,  # type: ignore[arg-type]
    )
    cipher = field_cipher(material, key_id=key_id, scope=scope)
    form = typed(value)
    head = header(1, ALGORITHM_NIBBLE[algorithm], TYPE_CODES[form["type"]], key_id)
    ad = aad(head, ctx.table, ctx.column, ctx.row, scope, ctx.schema)
    if token[:6] != head:
        raise SystemExit(
            f"{vector_id}: header {token[:6].hex()} is not the documented {head.hex()}"
        )
    plaintext = open_token(key, algorithm, token, ad)  # InvalidTag here: code and spec disagree
    return {
        "id": f"{algorithm.removeprefix('aes-256-')}-{vector_id}",
        "description": description,
        "key": key,
        "scope": scope,
        "algorithm": algorithm,
        "context": context_json(ctx),
        "value": form,
        "type_code": TYPE_CODES[form["type"]],
        "plaintext": plaintext.hex(),
        "header": head.hex(),
        "nonce": nonce.hex() if nonce is not None else None,
        "aad": ad.hex(),
        "aead_key": subkey(material, algorithm).hex(),
        "token": token.hex(),
        "blind_index": cipher.blind_index(value, context=ctx).hex(),
    }


def valid_vectors() -> list[dict[str, Any]]:
    out = []
    for vector_id, value, description in GCM_VALUES:
        ctx = Context(TABLE, vector_id.split("-")[0], row=42)
        out.append(
            valid_vector(
                vector_id,
                description,
                key="k1",
                algorithm=GCM,
                value=value,
                ctx=ctx,
                scope=SCOPE_K1,
            )
        )
    for vector_id, value, description in SIV_VALUES:
        ctx = Context(TABLE, vector_id.split("-")[0])
        out.append(
            valid_vector(
                vector_id,
                description,
                key="k1",
                algorithm=SIV,
                value=value,
                ctx=ctx,
                scope=SCOPE_K1,
            )
        )
    # Rows: absent, int (written in decimal), UUID (canonical text), non-ASCII text; other keys.
    member = uuid.UUID("0b6c1a7e-4f3d-4c2b-9a81-7e5d3c2b1a09")
    extra: list[tuple[str, str, str, str, Any, Context, str]] = [
        ("row-absent", "no row: an empty length-prefixed part", "k1", GCM, "ada@example.com",
         Context(TABLE, "email"), SCOPE_K1),
        ("row-int", "row=42 given as an int is the text 42", "k1", GCM, "ada@example.com",
         Context(TABLE, "email", row=42), SCOPE_K1),
        ("row-uuid", "a UUID row is its canonical lower-case text", "k1", GCM, "ada@example.com",
         Context(TABLE, "email", row=member), SCOPE_K1),
        ("row-text", "a non-ASCII row and table", "k1", GCM, Decimal("19.99"),
         Context("commandes_été", "montant", row="FR-2024/Zoë"), SCOPE_K1),
        ("key-id-max", "key id 0xffffffff under a non-ASCII scope", "k2", GCM, "ada@example.com",
         Context(TABLE, "email", row=42), SCOPE_K2),
        ("row-absent", "deterministic, no row", "k1", SIV, "ada@example.com",
         Context(TABLE, "email"), SCOPE_K1),
        ("row-int", "deterministic, row=42", "k1", SIV, "ada@example.com",
         Context(TABLE, "email", row=42), SCOPE_K1),
        ("key-id-max", "deterministic, key id 0xffffffff", "k2", SIV, "ada@example.com",
         Context(TABLE, "email", row=42), SCOPE_K2),
    ]  # fmt: skip
    for vector_id, description, key, algorithm, value, ctx, scope in extra:
        out.append(
            valid_vector(
                vector_id,
                description,
                key=key,
                algorithm=algorithm,
                value=value,
                ctx=ctx,
                scope=scope,
            )
        )
    ids = [v["id"] for v in out]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate vector ids")
    return out


def invalid_vectors(valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {v["id"]: v for v in valid}
    out: list[dict[str, Any]] = []

    def add(
        vector_id: str,
        description: str,
        base: dict[str, Any],
        token: bytes,
        *,
        error: str = "DecryptionError",
        key: str | None = None,
        scope: str | None = None,
        context: dict[str, Any] | None = None,
        authentic: bool = False,
    ) -> None:
        out.append(
            {
                "id": vector_id,
                "description": description,
                "key": key or base["key"],
                "scope": scope if scope is not None else base["scope"],
                "algorithm": base["algorithm"],
                "context": context if context is not None else base["context"],
                "token": token.hex(),
                "authentic": authentic,
                "error": error,
            }
        )

    gcm = by_id["gcm-row-int"]
    siv = by_id["siv-row-int"]
    for base in (gcm, siv):
        name = base["algorithm"].removeprefix("aes-256-")
        token = bytes.fromhex(base["token"])
        ctx = base["context"]
        add(f"{name}-truncated-1", "last byte removed", base, token[:-1])
        add(f"{name}-truncated-5", "only 5 bytes: shorter than a header", base, token[:5])
        add(f"{name}-header-only", "the 6 header bytes alone", base, token[:6])
        add(f"{name}-empty", "empty token", base, b"")
        add(f"{name}-extended-1", "one 0x00 byte appended", base, token + b"\x00")
        add(f"{name}-wrong-table", "other table", base, token, context={**ctx, "table": "orders"})
        add(f"{name}-wrong-column", "other column", base, token, context={**ctx, "column": "phone"})
        add(f"{name}-wrong-row", "other row", base, token, context={**ctx, "row": "43"})
        add(
            f"{name}-row-missing",
            "row absent at decryption",
            base,
            token,
            context={**ctx, "row": None},
        )
        add(
            f"{name}-wrong-scope", "other key scope, same key", base, token, scope="customers.other"
        )
        add(f"{name}-wrong-key", "same key id, other key material", base, token, key="k1-impostor")
        add(
            f"{name}-unknown-key-id",
            "a key id the key set does not hold",
            base,
            token,
            key="k2",
            error="UnknownKeyError",
        )
        # Table and column boundaries are length-prefixed: "customers"|"email" is not
        # "customersemai"|"l" even though the concatenation is the same.
        add(
            f"{name}-shifted-boundary",
            "table/column boundary moved",
            base,
            token,
            context={
                **ctx,
                "table": ctx["table"] + ctx["column"][:-1],
                "column": ctx["column"][-1:],
            },
        )
    siv_token = bytes.fromhex(siv["token"])
    add(
        "siv-rfc-order",
        "V at the front (RFC 5297 order) instead of at the end",
        siv,
        siv_token[:6] + siv_token[-16:] + siv_token[6:-16],
    )
    row_absent = by_id["gcm-row-absent"]
    add(
        "gcm-row-added",
        "a token without a row, decrypted with a row",
        row_absent,
        bytes.fromhex(row_absent["token"]),
        context={**row_absent["context"], "row": "42"},
    )

    # Headers the library must refuse even though the tag verifies under them.
    ctx = gcm["context"]
    plaintext = bytes.fromhex(gcm["plaintext"])
    key_id = KEYS["k1"][1]

    def authentic(
        vector_id: str,
        description: str,
        algorithm: str,
        version: int,
        nibble: int,
        code: int,
        data: bytes,
    ) -> None:
        head = header(version, nibble, code, key_id)
        ad = aad(head, ctx["table"], ctx["column"], ctx["row"], SCOPE_K1)
        nonce = next_nonce() if algorithm == GCM else None
        base = gcm if algorithm == GCM else siv
        token = seal("k1", algorithm, head, data, ad, nonce)
        add(vector_id, description, base, token, context=ctx, authentic=True)

    authentic("gcm-version-2", "version byte 0x02", GCM, 2, 0x1, 1, plaintext)
    authentic("gcm-version-0", "version byte 0x00", GCM, 0, 0x1, 1, plaintext)
    authentic("gcm-algorithm-0", "algorithm nibble 0x0", GCM, 1, 0x0, 1, plaintext)
    authentic("gcm-algorithm-3", "algorithm nibble 0x3 (unassigned)", GCM, 1, 0x3, 1, plaintext)
    authentic("gcm-algorithm-f", "algorithm nibble 0xf", GCM, 1, 0xF, 1, plaintext)
    authentic("gcm-type-10", "type code 10 (unassigned)", GCM, 1, 0x1, 10, plaintext)
    authentic("gcm-type-15", "type code 15 (unassigned)", GCM, 1, 0x1, 15, plaintext)
    authentic("siv-type-10", "type code 10 (unassigned)", SIV, 1, 0x2, 10, plaintext)

    # Plaintexts that authenticate but are not the canonical encoding of any value.
    malformed: list[tuple[str, str, str, bytes]] = [
        ("int-leading-zero", "int", "redundant leading 0x00 (00 01 for 1)", b"\x00\x01"),
        ("int-leading-ff", "int", "redundant leading 0xff (ff ff for -1)", b"\xff\xff"),
        ("int-empty", "int", "no bytes", b""),
        ("int-minus-128-two-bytes", "int", "-128 as ff80 (v1 writes the byte 80)", b"\xff\x80"),
        ("bool-2", "bool", "0x02", b"\x02"),
        ("bool-empty", "bool", "no bytes", b""),
        ("bool-two-bytes", "bool", "00 01", b"\x00\x01"),
        ("float-7-bytes", "float", "7 bytes", bytes(7)),
        ("float-9-bytes", "float", "9 bytes", bytes(9)),
        ("decimal-not-str-form", "decimal", "1.1E+1 (str() gives 11)", b"1.1E+1"),
        ("decimal-space", "decimal", "leading space", b" 1.10"),
        ("decimal-garbage", "decimal", "not a number", b"abc"),
        ("date-short", "date", "2024-1-1", b"2024-1-1"),
        ("date-compact", "date", "20240229", b"20240229"),
        ("date-week", "date", "ISO week date 2024-W09-4", b"2024-W09-4"),
        ("datetime-naive", "datetime", "no offset", b"2024-01-02T03:04:05"),
        ("datetime-z", "datetime", "Z instead of +00:00", b"2024-01-02T03:04:05Z"),
        ("datetime-space", "datetime", "space instead of T", b"2024-01-02 03:04:05+00:00"),
        ("datetime-zero-micro", "datetime", "explicit .000000",
         b"2024-01-02T03:04:05.000000+00:00"),
        ("datetime-no-seconds", "datetime", "HH:MM only", b"2024-01-02T03:04+00:00"),
        ("datetime-zone-offset-mismatch", "datetime",
         "offset +05:00 is not Europe/Paris's offset at that time",
         b"2024-07-14T12:00:00+05:00[Europe/Paris]"),
        ("datetime-nonexistent-local-time", "datetime",
         "02:30 does not exist in Paris on 2024-03-31 (the clocks jump from 02:00 to 03:00)",
         b"2024-03-31T02:30:00+01:00[Europe/Paris]"),
        ("datetime-unknown-zone", "datetime", "no such zone",
         b"2024-07-14T12:00:00+02:00[No/Such_Zone]"),
        ("uuid-15-bytes", "uuid", "15 bytes", bytes(15)),
        ("uuid-text", "uuid", "the 36-character text instead of 16 bytes",
         b"12345678-9abc-4def-8123-456789abcdef"),
        ("str-invalid-utf8", "str", "0xff is not UTF-8", b"\xff"),
        ("str-overlong", "str", "overlong encoding of NUL", b"\xc0\x80"),
        ("str-surrogate", "str", "an encoded UTF-16 surrogate", b"\xed\xa0\x80"),
        ("json-scalar", "json", "a top-level number", b"42"),
        ("json-nan", "json", "NaN is not JSON", b"[NaN]"),
        ("json-overflow", "json", "1e400 overflows a double", b"[1e400]"),
        ("json-space", "json", "a space after the comma", b"[1, 2]"),
        ("json-unsorted", "json", "keys not sorted", b'{"b":1,"a":2}'),
        ("json-duplicate-key", "json", "a key twice", b'{"a":1,"a":2}'),
        ("json-escaped-non-ascii", "json", "\\u00e9 instead of UTF-8", b'["\\u00e9"]'),
        ("json-invalid-utf8", "json", "not UTF-8", b'["\xff"]'),
    ]  # fmt: skip
    for vector_id, type_name, description, data in malformed:
        authentic(
            f"gcm-malformed-{vector_id}",
            f"{type_name}: {description}",
            GCM,
            1,
            0x1,
            TYPE_CODES[type_name],
            data,
        )
    authentic(
        "siv-malformed-int-leading-zero",
        "int: redundant leading 0x00",
        SIV,
        1,
        0x2,
        TYPE_CODES["int"],
        b"\x00\x01",
    )

    for vector in out:  # sanity: each authentic token verifies under the documented layout
        if vector["authentic"]:
            token = bytes.fromhex(vector["token"])
            c = vector["context"]
            open_token(
                vector["key"],
                vector["algorithm"],
                token,
                aad(token[:6], c["table"], c["column"], c["row"], vector["scope"], c.get("schema")),
            )
    return out


def schema_vectors(
    earlier: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Contexts with a schema (an extra part before the table), and their negative cases."""
    valid = [
        valid_vector(vector_id, description, key="k1", algorithm=algorithm,
                     value="ada@example.com", ctx=ctx, scope=scope)
        for vector_id, description, algorithm, ctx, scope in [
            ("schema-row-absent", "schema tenant_a, no row", GCM,
             Context(TABLE, "email", schema="tenant_a"), "tenant_a.customers.email"),
            ("schema-row-int", "schema tenant_a, row 42", GCM,
             Context(TABLE, "email", row=42, schema="tenant_a"), SCOPE_K1),
            ("schema-row-absent", "deterministic, schema tenant_a, no row", SIV,
             Context(TABLE, "email", schema="tenant_a"), "tenant_a.customers.email"),
        ]
    ]  # fmt: skip
    by_id = {v["id"]: v for v in valid + earlier}
    invalid: list[dict[str, Any]] = []

    def add(vector_id: str, description: str, base: dict[str, Any], ctx: dict[str, Any]) -> None:
        invalid.append(
            {
                "id": vector_id,
                "description": description,
                "key": base["key"],
                "scope": base["scope"],
                "algorithm": base["algorithm"],
                "context": ctx,
                "token": base["token"],
                "authentic": False,
                "error": "DecryptionError",
            }
        )

    for name in ("gcm", "siv"):
        base = by_id[f"{name}-schema-row-absent"]
        ctx = base["context"]
        add(f"{name}-schema-wrong", "other schema", base, {**ctx, "schema": "tenant_b"})
        add(
            f"{name}-schema-missing",
            "a token with a schema, decrypted without one",
            base,
            {key: value for key, value in ctx.items() if key != "schema"},
        )
        add(
            f"{name}-schema-in-table-part",
            'schema written into the table part: table "tenant_a.customers", no schema',
            base,
            {"table": "tenant_a.customers", "column": ctx["column"], "row": None},
        )
        plain = by_id[f"{name}-row-absent"]
        add(
            f"{name}-schema-added",
            "a token without a schema, decrypted with one",
            {**plain, "scope": plain["scope"]},
            {**plain["context"], "schema": "tenant_a"},
        )
    return valid, invalid


def document() -> dict[str, Any]:
    global _nonce_counter
    _nonce_counter = 0
    valid = valid_vectors()
    invalid = invalid_vectors(valid)
    # Added after the first release of v1: appended, so that the nonces (a counter) and
    # the bytes of every earlier vector stay the same.
    schema_valid, schema_invalid = schema_vectors(valid)
    valid += schema_valid
    invalid += schema_invalid
    return {
        "format": "securecustomer value format",
        "version": 1,
        "generator": "tests/vectors/generate.py (securecustomer.hazmat); see docs/format.md",
        "labels": {name: info.decode() for name, (info, _) in LABELS.items()},
        "keys": [
            {
                "name": name,
                "material": material.hex(),
                "key_id": key_id,
                "aes_256_gcm_key": subkey(material, "aes-256-gcm").hex(),
                "aes_256_siv_key": subkey(material, "aes-256-siv").hex(),
                "blind_index_key": subkey(material, "blind-index").hex(),
            }
            for name, (material, key_id) in KEYS.items()
        ],
        "valid": valid,
        "invalid": invalid,
        "mutations": [
            {
                "id": f"{v}-bit-flips",
                "vector": v,
                "mutation": "flip-each-bit",
                "description": (
                    "every copy of the token with exactly one bit flipped fails to decrypt: "
                    "with UnknownKeyError when the bit is in the key id (bytes 2 to 5), "
                    "with DecryptionError anywhere else"
                ),
                "error": "DecryptionError",
                "key_id_error": "UnknownKeyError",
            }
            for v in ("gcm-row-int", "siv-row-int")
        ],
    }


def render() -> str:
    """The exact text of format_v1.json."""
    return json.dumps(document(), indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python {Path(__file__).as_posix()}")
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
