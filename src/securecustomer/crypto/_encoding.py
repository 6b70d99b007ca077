"""Typed plaintext encoding: one canonical byte string per value, no pickle, no repr().

The type travels in the high nibble of the token's algorithm byte (see ``docs/format.md``),
so the plaintext bytes carry no framing and a short string costs no extra byte.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from securecustomer.exceptions import DecryptionError, UnsupportedValueError

__all__ = ["DECODERS", "TYPE_CODES", "Value", "decode_value", "encode_value", "type_code"]

#: Values the format can carry. JSON means a ``dict`` or ``list`` of JSON-able values.
Value = (
    bytes
    | str
    | int
    | bool
    | float
    | Decimal
    | dt.date
    | dt.datetime
    | uuid.UUID
    | dict[str, Any]
    | list[Any]
)

BYTES, STR, INT, BOOL, FLOAT, DECIMAL, DATE, DATETIME, UUID, JSON = range(10)

#: Type code of each supported Python type (exact types: subclasses are refused).
TYPE_CODES: Final[dict[type, int]] = {
    bytes: BYTES,
    str: STR,
    int: INT,
    bool: BOOL,
    float: FLOAT,
    Decimal: DECIMAL,
    dt.date: DATE,
    dt.datetime: DATETIME,
    uuid.UUID: UUID,
    dict: JSON,
    list: JSON,
}

_DOUBLE = struct.Struct(">d")


def type_code(value: object) -> int:
    """Return the type code of *value*, or raise `UnsupportedValueError`."""
    try:
        return TYPE_CODES[type(value)]
    except KeyError:
        raise _unsupported(value) from None


def _unsupported(value: object) -> UnsupportedValueError:
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}"
    for base in TYPE_CODES:
        if isinstance(value, base):
            return UnsupportedValueError(
                f"values of type {name} cannot be encrypted: it is a subclass of "
                f"{base.__qualname__}, which would not round-trip; convert it first"
            )
    if value is None:
        return UnsupportedValueError(
            "None cannot be encrypted: store NULL yourself if the column allows it"
        )
    supported = ", ".join(sorted({t.__qualname__ for t in TYPE_CODES}))
    return UnsupportedValueError(
        f"values of type {name} cannot be encrypted; supported types: {supported}"
    )


def _enc_int(value: int) -> bytes:
    # minimal two's complement: -128 is one byte (0x80), 128 is two (0x0080)
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def _enc_float(value: float) -> bytes:
    return _DOUBLE.pack(value)


def _enc_bool(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def _enc_decimal(value: Decimal) -> bytes:
    return str(value).encode("ascii")


def _enc_date(value: dt.date) -> bytes:
    return value.isoformat().encode("ascii")


def _enc_datetime(value: dt.datetime) -> bytes:
    tz = value.tzinfo
    if tz is None or value.utcoffset() is None:
        raise UnsupportedValueError(
            "naive datetime values cannot be encrypted: attach a timezone (for example UTC) "
            "so the value means the same instant when it is read back"
        )
    data = _format_datetime(value)
    back = _parse_datetime(data)
    if back != value or back.utcoffset() != value.utcoffset():
        raise UnsupportedValueError(
            "the datetime does not exist in its time zone (it falls in a clock change gap); "
            "convert it to an existing time first"
        )
    return data


def _dump_json(value: object) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _enc_json(value: dict[str, Any] | list[Any]) -> bytes:
    try:
        text = _dump_json(value)
        data = text.encode("utf-8")
        same = json.loads(text) == value
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnsupportedValueError(f"the JSON value cannot be encoded: {exc}") from None
    if not same:
        raise UnsupportedValueError(
            "the JSON value would not round-trip: use str keys, lists rather than tuples, "
            "and only JSON types (str, int, float, bool, None, dict, list)"
        )
    return data


def _enc_str(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedValueError(
            "the string contains lone surrogates and is not valid Unicode text"
        ) from None


_ENCODERS: Final[dict[int, Callable[[Any], bytes]]] = {
    BYTES: bytes,
    STR: _enc_str,
    INT: _enc_int,
    BOOL: _enc_bool,
    FLOAT: _enc_float,
    DECIMAL: _enc_decimal,
    DATE: _enc_date,
    DATETIME: _enc_datetime,
    UUID: lambda value: value.bytes,
    JSON: _enc_json,
}


def encode_value(value: object) -> tuple[int, bytes]:
    """Return ``(type_code, canonical bytes)`` for *value*."""
    if type(value) is str:  # the common case first, without a dict lookup
        return STR, _enc_str(value)
    code = type_code(value)
    return code, _ENCODERS[code](value)


class _Malformed(DecryptionError, ValueError):
    """An authenticated plaintext that does not decode: only a foreign encoder can cause it."""


def _dec_int(data: bytes) -> int:
    value = int.from_bytes(data, "big", signed=True)
    if not data or _enc_int(value) != data:
        raise _Malformed
    return value


def _dec_bool(data: bytes) -> bool:
    if data == b"\x01":
        return True
    if data == b"\x00":
        return False
    raise _Malformed


def _dec_float(data: bytes) -> float:
    if len(data) != 8:
        raise _Malformed
    value: float = _DOUBLE.unpack(data)[0]
    return value


def _dec_decimal(data: bytes) -> Decimal:
    value = Decimal(data.decode("ascii"))
    if str(value).encode("ascii") != data:
        raise _Malformed
    return value


def _dec_date(data: bytes) -> dt.date:
    value = dt.date.fromisoformat(data.decode("ascii"))
    if _enc_date(value) != data:
        raise _Malformed
    return value


def _format_datetime(value: dt.datetime) -> bytes:
    text = value.isoformat()
    tz = value.tzinfo
    if isinstance(tz, zoneinfo.ZoneInfo) and tz.key:
        text += f"[{tz.key}]"
    return text.encode("ascii")


def _dec_datetime(data: bytes) -> dt.datetime:
    value = _parse_datetime(data)
    if _format_datetime(value) != data:
        raise _Malformed
    return value


def _parse_datetime(data: bytes) -> dt.datetime:
    text = data.decode("ascii")
    zone = None
    if text.endswith("]"):
        text, _, key = text[:-1].partition("[")
        zone = zoneinfo.ZoneInfo(key)
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise _Malformed
    if zone is not None:
        value = value.astimezone(zone)
    return value


def _dec_uuid(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=data)


def _dec_json(data: bytes) -> dict[str, Any] | list[Any]:
    value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    if type(value) not in (dict, list) or _dump_json(value).encode("utf-8") != data:
        raise _Malformed
    return value  # type: ignore[no-any-return]


def _reject_constant(name: str) -> float:
    raise _Malformed


def _strict(decoder: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """Make *decoder* raise only `ValueError` on malformed input."""

    def decode(data: bytes) -> Any:
        try:
            return decoder(data)
        except (ValueError, ArithmeticError, LookupError, RecursionError):
            raise _Malformed from None

    return decode


def _dec_str(data: bytes) -> str:
    return data.decode("utf-8")


#: Decoder of each type code; each raises `ValueError` (only) on malformed bytes.
DECODERS: Final[dict[int, Callable[[bytes], Any]]] = {
    BYTES: bytes,
    STR: _dec_str,
    INT: _strict(_dec_int),
    BOOL: _dec_bool,
    FLOAT: _dec_float,
    DECIMAL: _strict(_dec_decimal),
    DATE: _strict(_dec_date),
    DATETIME: _strict(_dec_datetime),
    UUID: _strict(_dec_uuid),
    JSON: _strict(_dec_json),
}


def decode_value(code: int, data: bytes) -> Value:
    """Decode canonical bytes of type *code*; raise `ValueError` if they are malformed."""
    decoder = DECODERS.get(code)
    if decoder is None:
        raise _Malformed
    return decoder(data)  # type: ignore[no-any-return]
