"""The published test vectors of value format v1 (``tests/vectors/format_v1.json``).

Three parties are checked against each other: the vector file, the library
(`securecustomer.hazmat`) and an independent re-implementation of the written
specification (``docs/format.md``) in this file, built on the `cryptography` primitives
and the standard library only. A change in any one of them fails a test here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import re
import struct
import uuid
import zoneinfo
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from securecustomer.crypto import Context
from securecustomer.exceptions import DecryptionError, UnknownKeyError
from securecustomer.hazmat import encrypt_with_nonce, field_cipher

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
FILE = VECTORS / "format_v1.json"
DOC: dict[str, Any] = json.loads(FILE.read_text(encoding="utf-8"))
KEYS: dict[str, dict[str, Any]] = {k["name"]: k for k in DOC["keys"]}
VALID: list[dict[str, Any]] = DOC["valid"]
INVALID: list[dict[str, Any]] = DOC["invalid"]
MUTATIONS: list[dict[str, Any]] = DOC["mutations"]
BY_ID: dict[str, dict[str, Any]] = {v["id"]: v for v in VALID}
ERRORS: dict[str, type[DecryptionError]] = {
    "DecryptionError": DecryptionError,
    "UnknownKeyError": UnknownKeyError,
}


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def invalid_params() -> list[Any]:
    return [pytest.param(v, id=v["id"]) for v in INVALID]


# -- an independent implementation of docs/format.md --------------------------------------

SPEC_LABELS = {
    "aes-256-gcm": (b"securecustomer/v1/aes-256-gcm", 32),
    "aes-256-siv": (b"securecustomer/v1/aes-256-siv", 64),
    "blind-index": (b"securecustomer/v1/blind-index", 32),
}
SPEC_NIBBLES = {"aes-256-gcm": 0x1, "aes-256-siv": 0x2}
SPEC_TYPES = ["bytes", "str", "int", "bool", "float", "decimal", "date", "datetime", "uuid", "json"]


def spec_subkey(material: bytes, label: str) -> bytes:
    info, length = SPEC_LABELS[label]
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


def spec_lp(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack(">I", len(data)) + data


def spec_header(algorithm: str, type_name: str, key_id: int) -> bytes:
    return struct.pack(
        ">BBI", 1, SPEC_TYPES.index(type_name) << 4 | SPEC_NIBBLES[algorithm], key_id
    )


def spec_aad(head: bytes, context: dict[str, Any], scope: str) -> bytes:
    schema = [context["schema"]] if "schema" in context else []
    parts = ("securecustomer", *schema, context["table"], context["column"])
    parts += (context["row"] or "", scope)
    return head + b"".join(spec_lp(p) for p in parts)


def spec_int(value: int) -> bytes:
    """The v1 rule: minimal two's complement, big-endian (w = v, or -v - 1 when negative)."""
    size = (value if value >= 0 else -value - 1).bit_length() // 8 + 1
    return value.to_bytes(size, "big", signed=True)


def spec_decimal(value: Decimal) -> str:
    """to-scientific-string of the General Decimal Arithmetic specification."""
    sign, digits, exponent = value.as_tuple()
    prefix = "-" if sign else ""
    coefficient = "".join(map(str, digits))
    if exponent == "n":
        return prefix + "NaN" + coefficient.lstrip("0")
    if exponent == "N":
        return prefix + "sNaN" + coefficient.lstrip("0")
    if exponent == "F":
        return prefix + "Infinity"
    assert isinstance(exponent, int)
    adjusted = exponent + len(coefficient) - 1
    if exponent <= 0 and adjusted >= -6:
        if exponent == 0:
            return prefix + coefficient
        point = len(coefficient) + exponent
        if point > 0:
            return prefix + coefficient[:point] + "." + coefficient[point:]
        return prefix + "0." + "0" * -point + coefficient
    mantissa = coefficient[0] + ("." + coefficient[1:] if len(coefficient) > 1 else "")
    return f"{prefix}{mantissa}E{'+' if adjusted >= 0 else '-'}{abs(adjusted)}"


def spec_offset(offset: dt.timedelta) -> str:
    sign = "-" if offset < dt.timedelta(0) else "+"
    offset = abs(offset)
    hours, rest = divmod(offset, dt.timedelta(hours=1))
    minutes, rest = divmod(rest, dt.timedelta(minutes=1))
    text = f"{sign}{hours:02d}:{minutes:02d}"
    if rest:
        text += f":{rest.seconds:02d}"
        if rest.microseconds:
            text += f".{rest.microseconds:06d}"
    return text


def spec_date(value: dt.date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def spec_datetime(value: dt.datetime) -> str:
    offset = value.utcoffset()
    assert offset is not None
    text = f"{spec_date(value)}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    text += spec_offset(offset)
    if isinstance(value.tzinfo, zoneinfo.ZoneInfo):
        text += f"[{value.tzinfo.key}]"
    return text


def spec_encode(value: Any) -> tuple[str, bytes]:
    """The type name and canonical plaintext of *value*, written from the specification."""
    kind = type(value)
    if kind is bytes:
        return "bytes", value
    if kind is str:
        return "str", value.encode("utf-8")
    if kind is bool:
        return "bool", b"\x01" if value else b"\x00"
    if kind is int:
        return "int", spec_int(value)
    if kind is float:
        return "float", struct.pack(">d", value)
    if kind is Decimal:
        return "decimal", spec_decimal(value).encode("ascii")
    if kind is dt.datetime:
        return "datetime", spec_datetime(value).encode("ascii")
    if kind is dt.date:
        return "date", spec_date(value).encode("ascii")
    if kind is uuid.UUID:
        return "uuid", value.bytes
    if kind in (dict, list):
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return "json", text.encode("utf-8")
    raise AssertionError(f"no encoding for {kind}")


_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?"
    r"([+-])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{6}))?)?(?:\[([A-Za-z0-9_+\-/]+)\])?",
    re.ASCII,
)


def spec_parse_datetime(text: str) -> dt.datetime:
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError(text)
    y, mo, d, h, mi, s, us, sign, oh, om, os_, ous, zone = match.groups()
    offset = dt.timedelta(
        hours=int(oh), minutes=int(om), seconds=int(os_ or 0), microseconds=int(ous or 0)
    )
    tz = dt.timezone(-offset if sign == "-" else offset)
    value = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(us or 0), tz)
    return value.astimezone(zoneinfo.ZoneInfo(zone)) if zone else value


def spec_decode(type_code: int, data: bytes) -> Any:
    """Step 6: the value of a plaintext, which must be the canonical encoding of it.

    Raises (ValueError, LookupError, ArithmeticError or RecursionError) when it is not.
    """
    kind = SPEC_TYPES[type_code]
    value: Any
    if kind == "bytes":
        value = data
    elif kind == "str":
        value = data.decode("utf-8")
    elif kind == "int":
        value = int.from_bytes(data, "big", signed=True)
    elif kind == "bool":
        value = {b"\x00": False, b"\x01": True}[data]
    elif kind == "float":
        if len(data) != 8:
            raise ValueError("a float is 8 bytes")
        (value,) = struct.unpack(">d", data)
    elif kind == "decimal":
        value = Decimal(data.decode("ascii"))
    elif kind == "date":
        if not re.fullmatch(rb"\d{4}-\d{2}-\d{2}", data):
            raise ValueError(data)
        value = dt.date(int(data[:4]), int(data[5:7]), int(data[8:]))
    elif kind == "datetime":
        value = spec_parse_datetime(data.decode("ascii"))
    elif kind == "uuid":
        value = uuid.UUID(bytes=data)
    else:
        value = json.loads(data.decode("utf-8"), parse_constant=lambda name: float(name))
        if type(value) not in (dict, list):
            raise ValueError("JSON must be an object or an array")
    if spec_encode(value) != (kind, data):
        raise ValueError("not the canonical encoding")
    return value


def spec_seal(
    key: dict[str, Any],
    algorithm: str,
    head: bytes,
    plaintext: bytes,
    aad: bytes,
    nonce: bytes | None,
) -> bytes:
    material = bytes.fromhex(key["material"])
    if algorithm == "aes-256-gcm":
        assert nonce is not None
        assert len(nonce) == 12
        aead = AESGCM(spec_subkey(material, algorithm))
        return head + nonce + aead.encrypt(nonce, plaintext, aad)
    sealed = AESSIV(spec_subkey(material, algorithm)).encrypt(plaintext, [aad])
    return head + sealed[16:] + sealed[:16]  # V moves from the front to the end


def spec_open_raw(key: dict[str, Any], algorithm: str, token: bytes, aad: bytes) -> bytes:
    """The AEAD step alone; raises InvalidTag (or ValueError for a short nonce)."""
    material = bytes.fromhex(key["material"])
    if algorithm == "aes-256-gcm":
        return AESGCM(spec_subkey(material, algorithm)).decrypt(token[6:18], token[18:], aad)
    if len(token) < 22:
        raise InvalidTag
    siv = AESSIV(spec_subkey(material, algorithm))
    return siv.decrypt(token[-16:] + token[6:-16], [aad])


def spec_open(vector: dict[str, Any]) -> bytes | None:
    """The decryption procedure: the canonical plaintext, or None when it must fail."""
    token = bytes.fromhex(vector["token"])
    key = KEYS[vector["key"]]
    if len(token) < 22 or token[0] != 1:
        return None
    algorithm = {0x1: "aes-256-gcm", 0x2: "aes-256-siv"}.get(token[1] & 0x0F)
    if algorithm is None or token[1] >> 4 >= len(SPEC_TYPES):
        return None
    if int.from_bytes(token[2:6], "big") != key["key_id"]:
        return None
    if algorithm == "aes-256-gcm" and len(token) < 34:
        return None
    aad = spec_aad(token[:6], vector["context"], vector["scope"])
    try:
        plaintext = spec_open_raw(key, algorithm, token, aad)
        spec_decode(token[1] >> 4, plaintext)
    except (InvalidTag, ValueError, LookupError, ArithmeticError, RecursionError):
        return None
    return plaintext


# -- typed values --------------------------------------------------------------------------


def to_python(form: dict[str, Any]) -> Any:
    """The Python value of a typed JSON value."""
    kind, text = form["type"], form["value"]
    if kind == "bytes":
        return bytes.fromhex(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        value = float(text)
        assert form["ieee754"] == struct.pack(">d", value).hex()
        return value
    if kind == "decimal":
        return Decimal(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "datetime":
        value = dt.datetime.fromisoformat(text)
        if "zone" in form:
            value = value.astimezone(zoneinfo.ZoneInfo(form["zone"]))
        return value
    if kind == "uuid":
        return uuid.UUID(text)
    assert kind in ("str", "bool", "json"), kind
    return text


def identity(value: Any) -> tuple[Any, ...]:
    """What makes two values the same value: type, exact content, offset and zone."""
    if type(value) is float:
        return ("float", struct.pack(">d", value))
    if type(value) is Decimal:
        return ("decimal", str(value))
    if type(value) is dt.datetime:
        zone = value.tzinfo
        return (
            "datetime",
            value.isoformat(),
            type(zone).__name__,
            getattr(zone, "key", None),
            value.fold,
        )
    if type(value) in (dict, list):
        return ("json", type(value).__name__, json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


def context_of(vector: dict[str, Any]) -> Context:
    c = vector["context"]
    return Context(c["table"], c["column"], row=c["row"], schema=c.get("schema"))


def cipher_for(vector: dict[str, Any], *, deterministic: bool = False) -> Any:
    key = KEYS[vector["key"]]
    return field_cipher(
        bytes.fromhex(key["material"]),
        key_id=key["key_id"],
        scope=vector["scope"],
        deterministic=deterministic,
    )


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("format_v1_generator", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- tests ---------------------------------------------------------------------------------


class TestVectorFile:
    """The file is exactly what generate.py writes today, and covers what it claims to."""

    def test_file_is_what_the_generator_produces(self) -> None:
        expected = load_generator().render()
        assert expected == FILE.read_text(encoding="utf-8"), (
            "format_v1.json drifted: the library's output changed (a format change needs a "
            "new version) or the file was edited; regenerate with tests/vectors/generate.py"
        )

    def test_ids_are_unique(self) -> None:
        every = ids(VALID) + ids(INVALID) + ids(MUTATIONS)
        assert sorted(set(every)) == sorted(every)

    def test_every_type_with_both_algorithms(self) -> None:
        covered = {(v["algorithm"], v["value"]["type"]) for v in VALID}
        expected = {(a, t) for a in SPEC_NIBBLES for t in SPEC_TYPES}
        assert expected == covered

    def test_rows_present_and_absent_with_both_algorithms(self) -> None:
        covered = {(v["algorithm"], v["context"]["row"] is None) for v in VALID}
        assert {(a, absent) for a in SPEC_NIBBLES for absent in (True, False)} == covered

    @pytest.mark.parametrize(
        "vector_id",
        [
            "gcm-str-empty",
            "gcm-str-non-ascii",
            "gcm-bytes-empty",
            "gcm-int-zero",
            "gcm-int-minus-1",
            "gcm-int-2-pow-64",
            "gcm-int-minus-2-pow-64-minus-1",
            "gcm-bool-true",
            "gcm-bool-false",
            "gcm-float-negative-zero",
            "gcm-decimal-1.10",
            "gcm-date",
            "gcm-datetime-utc",
            "gcm-datetime-fixed-offset",
            "gcm-datetime-zone-summer",
            "gcm-uuid",
            "gcm-json-dict",
            "gcm-json-list",
            "gcm-key-id-max",
            "siv-bytes-empty",
            "siv-str-empty",
        ],
    )
    def test_edge_case_is_present(self, vector_id: str) -> None:
        assert vector_id in BY_ID

    def test_schemas_present_and_absent_with_both_algorithms(self) -> None:
        covered = {(v["algorithm"], "schema" in v["context"]) for v in VALID}
        assert {(a, s) for a in ("aes-256-gcm", "aes-256-siv") for s in (True, False)} == covered
        moved = {"schema-wrong", "schema-missing", "schema-added", "schema-in-table-part"}
        for algorithm in ("gcm", "siv"):
            assert {f"{algorithm}-{m}" for m in moved} <= set(ids(INVALID))

    def test_invalid_kinds_are_present(self) -> None:
        expected = {"DecryptionError", "UnknownKeyError"}
        assert expected == {v["error"] for v in INVALID}
        wanted = {
            "truncated-1",
            "truncated-5",
            "extended-1",
            "wrong-table",
            "wrong-column",
            "wrong-row",
            "wrong-scope",
            "version-2",
            "algorithm-3",
            "type-10",
            "unknown-key-id",
            "malformed-int-leading-zero",
        }
        assert set() == {w for w in wanted if not any(i.endswith(w) for i in ids(INVALID))}

    def test_worked_example_in_the_docs_is_from_this_file(self) -> None:
        """Every long hex string in docs/format.md appears in the vector file."""
        text = FILE.read_text(encoding="utf-8")
        runs = re.findall(r"\b[0-9a-f]{24,}\b", (ROOT / "docs" / "format.md").read_text("utf-8"))
        assert len(runs) >= 8
        assert [] == [run for run in runs if run not in text]


class TestSpecification:
    """An independent implementation of docs/format.md reproduces every vector."""

    @pytest.mark.parametrize("key", DOC["keys"], ids=lambda k: k["name"])
    def test_subkeys(self, key: dict[str, Any]) -> None:
        material = bytes.fromhex(key["material"])
        assert 32 == len(material)
        assert key["aes_256_gcm_key"] == spec_subkey(material, "aes-256-gcm").hex()
        assert key["aes_256_siv_key"] == spec_subkey(material, "aes-256-siv").hex()
        assert key["blind_index_key"] == spec_subkey(material, "blind-index").hex()

    def test_labels(self) -> None:
        assert {k: v[0].decode() for k, v in SPEC_LABELS.items()} == DOC["labels"]

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_plaintext_encoding(self, vector: dict[str, Any]) -> None:
        type_name, plaintext = spec_encode(to_python(vector["value"]))
        assert (vector["value"]["type"], SPEC_TYPES.index(type_name)) == (
            type_name,
            vector["type_code"],
        )
        assert vector["plaintext"] == plaintext.hex()

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_header_and_aad(self, vector: dict[str, Any]) -> None:
        key = KEYS[vector["key"]]
        head = spec_header(vector["algorithm"], vector["value"]["type"], key["key_id"])
        assert vector["header"] == head.hex()
        assert vector["token"].startswith(vector["header"])
        assert vector["aad"] == spec_aad(head, vector["context"], vector["scope"]).hex()
        assert vector["aead_key"] == key[vector["algorithm"].replace("-", "_") + "_key"]

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_token(self, vector: dict[str, Any]) -> None:
        """Sealing the documented plaintext under the documented key, AAD and nonce."""
        nonce = bytes.fromhex(vector["nonce"]) if vector["nonce"] is not None else None
        assert (vector["algorithm"] == "aes-256-gcm") == (nonce is not None)
        token = spec_seal(
            KEYS[vector["key"]],
            vector["algorithm"],
            bytes.fromhex(vector["header"]),
            bytes.fromhex(vector["plaintext"]),
            bytes.fromhex(vector["aad"]),
            nonce,
        )
        assert vector["token"] == token.hex()
        overhead = 6 + (12 if nonce is not None else 0) + 16
        assert len(bytes.fromhex(vector["plaintext"])) + overhead == len(token)

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_open(self, vector: dict[str, Any]) -> None:
        plaintext = spec_open(vector)
        assert vector["plaintext"] == (plaintext.hex() if plaintext is not None else None)

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_blind_index(self, vector: dict[str, Any]) -> None:
        c = vector["context"]
        schema = spec_lp("") + spec_lp(c["schema"]) if "schema" in c else b""
        message = (
            schema
            + spec_lp(c["table"])
            + spec_lp(c["column"])
            + bytes((vector["type_code"],))
            + bytes.fromhex(vector["plaintext"])
        )
        index_key = bytes.fromhex(KEYS[vector["key"]]["blind_index_key"])
        assert vector["blind_index"] == hmac.new(index_key, message, hashlib.sha256).hexdigest()

    @pytest.mark.parametrize("vector", INVALID, ids=ids(INVALID))
    def test_invalid_tokens_are_rejected(self, vector: dict[str, Any]) -> None:
        assert None is spec_open(vector)

    @pytest.mark.parametrize(
        "vector",
        [v for v in INVALID if v["authentic"]],
        ids=ids([v for v in INVALID if v["authentic"]]),
    )
    def test_authentic_invalid_tokens_verify(self, vector: dict[str, Any]) -> None:
        """Their tag is valid: rejecting them is the format checks' job, not the AEAD's."""
        token = bytes.fromhex(vector["token"])
        aad = spec_aad(token[:6], vector["context"], vector["scope"])
        plaintext = spec_open_raw(KEYS[vector["key"]], vector["algorithm"], token, aad)
        assert isinstance(plaintext, bytes)


class TestLibrary:
    """securecustomer.hazmat decrypts every valid vector and re-encrypts it byte for byte."""

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_decrypt(self, vector: dict[str, Any]) -> None:
        token = bytes.fromhex(vector["token"])
        value = cipher_for(vector).decrypt(token, context=context_of(vector))
        assert identity(to_python(vector["value"])) == identity(value)

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_decrypt_other_paths(self, vector: dict[str, Any]) -> None:
        """bytearray and memoryview tokens, and batches, give the same value as bytes."""
        token = bytes.fromhex(vector["token"])
        ctx = context_of(vector)
        cipher = cipher_for(vector)
        expected = identity(to_python(vector["value"]))
        assert expected == identity(cipher.decrypt(bytearray(token), context=ctx))
        assert expected == identity(cipher.decrypt(memoryview(token), context=ctx))
        writable = memoryview(bytearray(token))  # unhashable: must not reach a dict lookup
        assert expected == identity(cipher.decrypt(writable, context=ctx))
        assert [expected] * 2 == [
            identity(v) for v in cipher.decrypt_many([token, token], context=ctx)
        ]

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_reencrypt(self, vector: dict[str, Any]) -> None:
        """The decrypted value, encrypted again (same nonce for GCM), gives the same token."""
        ctx = context_of(vector)
        value = cipher_for(vector).decrypt(bytes.fromhex(vector["token"]), context=ctx)
        key = KEYS[vector["key"]]
        if vector["algorithm"] == "aes-256-gcm":
            token = encrypt_with_nonce(
                bytes.fromhex(key["material"]),
                key_id=key["key_id"],
                scope=vector["scope"],
                value=value,
                context=ctx,
                nonce=bytes.fromhex(vector["nonce"]),
            )
        else:
            token = cipher_for(vector, deterministic=True).encrypt(value, context=ctx)
        assert vector["token"] == token.hex()

    @pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
    def test_blind_index(self, vector: dict[str, Any]) -> None:
        value = to_python(vector["value"])
        cipher = cipher_for(vector)
        full = cipher.blind_index(value, context=context_of(vector))
        assert vector["blind_index"] == full.hex()
        short = cipher.blind_index(value, context=context_of(vector), size=8)
        assert vector["blind_index"][:16] == short.hex()


class TestInvalidVectors:
    """Every invalid vector fails with exactly the error it names, on every decrypt path."""

    @staticmethod
    def error_of(call: Any) -> str:
        try:
            value = call()
        except DecryptionError as exc:
            return type(exc).__name__
        return f"accepted: {value!r}"

    @pytest.mark.parametrize("vector", invalid_params())
    def test_decrypt(self, vector: dict[str, Any]) -> None:
        token = bytes.fromhex(vector["token"])
        ctx = context_of(vector)
        assert vector["error"] in ERRORS
        outcomes = {
            "bytes": self.error_of(lambda: cipher_for(vector).decrypt(token, context=ctx)),
            "bytearray": self.error_of(
                lambda: cipher_for(vector).decrypt(bytearray(token), context=ctx)
            ),
            "batch": self.error_of(lambda: cipher_for(vector).decrypt_many([token], context=ctx)),
        }
        assert dict.fromkeys(outcomes, vector["error"]) == outcomes


class TestBitFlips:
    """Every single flipped bit of a token is detected (generated here, not stored)."""

    @pytest.mark.parametrize("mutation", MUTATIONS, ids=ids(MUTATIONS))
    def test_every_bit(self, mutation: dict[str, Any]) -> None:
        vector = BY_ID[mutation["vector"]]
        token = bytes.fromhex(vector["token"])
        ctx = context_of(vector)
        cipher = cipher_for(vector)
        assert cipher.decrypt(token, context=ctx) is not None  # the original opens
        expected, actual = {}, {}
        for bit in range(len(token) * 8):
            flipped = bytearray(token)
            flipped[bit // 8] ^= 0x80 >> (bit % 8)
            in_key_id = 2 <= bit // 8 < 6
            expected[bit] = mutation["key_id_error" if in_key_id else "error"]
            try:
                cipher.decrypt(bytes(flipped), context=ctx)
                actual[bit] = "accepted"
            except DecryptionError as exc:
                actual[bit] = type(exc).__name__
        assert expected == actual


class TestMalformedPlaintexts:
    """Authenticated plaintexts no encoder writes: decryption raises DecryptionError only."""

    def test_deeply_nested_json(self) -> None:
        vector = BY_ID["gcm-json-list"]
        key = KEYS[vector["key"]]
        depth = 100_000
        nonce = hashlib.sha256(b"deeply nested json").digest()[:12]
        head = bytes.fromhex(vector["header"])
        token = spec_seal(
            key,
            "aes-256-gcm",
            head,
            b"[" * depth + b"]" * depth,
            spec_aad(head, vector["context"], vector["scope"]),
            nonce,
        )
        with pytest.raises(DecryptionError):
            cipher_for(vector).decrypt(token, context=context_of(vector))
