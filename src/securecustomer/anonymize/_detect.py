"""PII detection: regular expressions that find candidates, validators that reject look-alikes.

`detect_pii` runs one precompiled pattern per built-in recognizer over the text, keeps the
candidates its validator accepts (Luhn and card-network prefixes, IBAN lengths and mod-97,
SSN number ranges, `ipaddress`, calendar dates), then the host's own recognizers, and resolves
overlaps: the highest score wins, then the longest span, then the earliest.

`scan_columns` runs the same detection over a sample of rows and suggests a PII category per
column. Nothing here does I/O, and no matched text is ever put into a repr or an error message.
"""

from __future__ import annotations

import bisect
import datetime as dt
import ipaddress
import itertools
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, Protocol, runtime_checkable

import attrs

from securecustomer.exceptions import AnonymizationError

__all__ = [
    "CARD",
    "DATE_OF_BIRTH",
    "EMAIL",
    "IBAN",
    "IP_ADDRESS",
    "PHONE",
    "PII_KINDS",
    "SSN",
    "ColumnFinding",
    "PiiMatch",
    "Recognizer",
    "detect_pii",
    "scan_columns",
]

EMAIL: Final = "email"
PHONE: Final = "phone"
CARD: Final = "payment_card"
IBAN: Final = "iban"
SSN: Final = "us_ssn"
IP_ADDRESS: Final = "ip_address"
DATE_OF_BIRTH: Final = "date_of_birth"
PII_KINDS: Final = frozenset({EMAIL, PHONE, CARD, IBAN, SSN, IP_ADDRESS, DATE_OF_BIRTH})
"""The kinds the built-in recognizers find."""


@attrs.frozen
class PiiMatch:
    """One finding: *text* is ``source[start:end]`` and holds the PII, so repr leaves it out."""

    kind: str
    start: int
    end: int
    text: str = attrs.field(repr=False)
    score: float


@runtime_checkable
class Recognizer(Protocol):
    """What `detect_pii` needs from a recognizer a host application adds (an NER model, ...)."""

    @property
    def kind(self) -> str:
        """The kind of PII this recognizer finds."""

    def find(self, text: str) -> Iterable[PiiMatch]:
        """The matches in *text*; spans are offsets into *text*."""


@attrs.frozen
class ColumnFinding:
    """What `scan_columns` saw in one column.

    *shares* maps each kind found to the share of the scanned values holding it;
    *category* is the kind with the highest share when that share reaches the threshold.
    """

    column: str
    values: int
    shares: Mapping[str, float]
    category: str | None


_Scorer = Callable[[re.Match[str], str], float]
"""A validator: the score of a regex match in its text, 0 to reject it."""

# -- e-mail --------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-]|\.\w)"
)


def _email_score(match: re.Match[str], text: str) -> float:
    local = match.group(0).partition("@")[0]
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return 0.0
    return 0.95


# -- phone numbers -------------------------------------------------------------------------

_EXT = r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,6})?"
_PHONE_RE = re.compile(
    r"(?<![\w+.(-])(?<!\d[ .-])(?:"
    # international: +44 (0)20 7946 0958, +1-780-563-6083, +14155552671, 0044 20 7946 0958
    r"(?P<intl>(?:\+|00)\d{1,3}(?:\s?\(0\))?(?:[ .-]?\(\d{1,5}\))?"
    r"[ .-]?\d{1,12}(?:[ .-]\d{1,8}){0,6})"
    # North American: (415) 555-2671, 415.555.2671, 1-800-555-0199
    r"|(?P<nanp>(?:1[ .-])?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4})"
    # national with a trunk 0: 020 7946 0958, (0161) 4960066, 04 15 39 15 00
    r"|(?P<national>(?:\(0\d{1,4}\)[ .-]{0,2}|0\d{1,4}[ .-]{1,2})\d{2,8}(?:[ .-]{1,2}\d{2,8}){0,3})"
    # no separators at all (02079460958, 4155552671): a phone only after a phone keyword
    r"|(?P<run>0\d{9,10}|[2-9]\d{9})"
    r")" + _EXT + r"(?![\w]|[.-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)(?<![a-z])(?:phone|tel|telephone|mobile|cell|call|fax|sms|whatsapp|reach|contact)"
    r"(?![a-z])[^.;\n]{0,20}$"
)
_DATE_SHAPE = re.compile(r"\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{4}[./-]\d{1,2}[./-]\d{1,2}")
_SSN_SHAPE = re.compile(r"\d{3}([- ])\d{2}\1\d{4}")
_EXT_SPLIT = re.compile(r"\s?(?:x|ext\.?|extension)\s?\d+$")


def _phone_score(match: re.Match[str], text: str) -> float:
    number = _EXT_SPLIT.sub("", match.group(0))
    if _DATE_SHAPE.fullmatch(number) or _SSN_SHAPE.fullmatch(number):
        return 0.0
    digits = sum(char.isdigit() for char in number.replace("(0)", ""))
    if match.group("intl") is not None:
        if not 8 <= digits <= 15:
            return 0.0
        if number.startswith("00") and number.isdigit():  # a bare digit run, as below
            return (
                0.6
                if _PHONE_CONTEXT.search(text, max(0, match.start() - 40), match.start())
                else 0.0
            )
        return 0.85
    if match.group("nanp") is not None:
        return 0.75
    if match.group("run") is not None:
        return (
            0.6 if _PHONE_CONTEXT.search(text, max(0, match.start() - 40), match.start()) else 0.0
        )
    return 0.7 if 9 <= digits <= 12 else 0.0


# -- payment cards -------------------------------------------------------------------------

_CARD_RE = re.compile(r"(?<![\w.+-])\d(?:[ -]?\d){11,18}(?![\w]|[.-]\d)")

# (first digits low, high, lengths) per network; prefixes compared as integers of the same width
_NETWORKS: Final[tuple[tuple[int, int, frozenset[int]], ...]] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (1800, 1800, frozenset({15})),  # JCB, legacy 15-digit numbers
    (2131, 2131, frozenset({15})),
    (300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (3095, 3095, frozenset({14, 15, 16, 17, 18, 19})),
    (36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay (Discover's 622126-622925 included)
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card_network_ok(digits: str) -> bool:
    for low, high, lengths in _NETWORKS:
        width = len(str(low))
        if len(digits) in lengths and low <= int(digits[:width]) <= high:
            return True
    return False


def _card_score(match: re.Match[str], text: str) -> float:
    digits = match.group(0).replace(" ", "").replace("-", "")
    return 0.95 if _card_network_ok(digits) and _luhn(digits) else 0.0


# -- IBAN ----------------------------------------------------------------------------------

_IBAN_RE = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?!\w)"
)
# The IBAN registry (SWIFT): total length per country.
# fmt: off
_IBAN_LENGTHS: Final = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# fmt: on


def _find_ibans(text: str) -> Iterable[PiiMatch]:
    for match in _IBAN_RE.finditer(text):
        found = match.group(0)
        expected = _IBAN_LENGTHS.get(found[:2], 0)
        compact = found.replace(" ", "")
        if len(compact) > expected and " " in found:
            # a spaced IBAN followed by a short word ("... 2320 I paid"): cut at its length
            end, count = 0, 0
            while count < expected:
                count += found[end] != " "
                end += 1
            if end < len(found) and found[end] != " ":
                continue
            found, compact = found[:end], compact[:expected]
        if len(compact) != expected:
            continue
        moved = compact[4:] + compact[:4]
        if int("".join(str(int(char, 36)) for char in moved)) % 97 == 1:
            yield PiiMatch(IBAN, match.start(), match.start() + len(found), found, 0.98)


# -- US social security numbers ------------------------------------------------------------

_SSN_RE = re.compile(
    r"(?<![\w.+-])(?<!\d[ .-])"
    r"(?P<area>\d{3})(?P<sep>[- ]?)(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})(?![\w]|[.-]\d)"
)
_SSN_CONTEXT = re.compile(r"(?i)(?:\bssn|social\s+security(?:\s+(?:number|no\.?|#))?)\W{0,5}$")
_SSN_ADVERTISED: Final = frozenset({"078051120", "219099999"})


def _ssn_score(match: re.Match[str], text: str) -> float:
    area, group, serial = match.group("area", "group", "serial")
    if area in {"000", "666"} or area[0] == "9" or group == "00" or serial == "0000":
        return 0.0
    if area + group + serial in _SSN_ADVERTISED:
        return 0.0
    if _SSN_CONTEXT.search(text, max(0, match.start() - 30), match.start()):
        return 0.9
    sep = match.group("sep")
    # without context only the dashed form is specific enough; spaces and runs need "SSN"
    return 0.8 if sep == "-" else 0.0


# -- IP addresses --------------------------------------------------------------------------

_IP_RE = re.compile(
    r"(?<![\w.:])(?:"
    r"(?P<v4>\d{1,3}(?:\.\d{1,3}){3})"
    r"|(?P<v6>(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}))"
    r")(?![\w:]|\.\d)"
)
_VERSION_BEFORE = re.compile(r"(?i)\b(?:version|ver\.?|release|build|v)\s?$")


def _ip_score(match: re.Match[str], text: str) -> float:
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if match.group("v4") is not None:
            if _VERSION_BEFORE.search(text, max(0, match.start() - 10), match.start()):
                return 0.0
            address = ipaddress.IPv4Address(match.group(0))
        else:
            address = ipaddress.IPv6Address(match.group(0))
    except ValueError:
        return 0.0
    return 0.9 if address.is_global else 0.6


# -- dates of birth ------------------------------------------------------------------------

_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<{}>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DATE_RE = re.compile(
    r"(?i)(?<![\w./-])(?:"
    r"(?P<iy>\d{4})[-/.](?P<im>\d{1,2})[-/.](?P<id>\d{1,2})"
    r"|(?P<na>\d{1,2})(?P<ns>[-/.])(?P<nb>\d{1,2})(?P=ns)(?P<ny>\d{4}|\d{2})"
    r"|(?P<td>\d{1,2})(?:st|nd|rd|th)?\s" + _MONTH.format("tm") + r",?\s(?P<ty>\d{4})"
    r"|" + _MONTH.format("um") + r"\s(?P<ud>\d{1,2})(?:st|nd|rd|th)?,?\s(?P<uy>\d{4})"
    r")(?![\w]|[./-]\d)"
)
_BIRTH_WORDS = re.compile(
    r"(?i)(?<![a-z])(?:date[\s_-]?of[\s_-]?birth|birth[\s_-]?date|birthdate|birthday|born"
    r"|d\.?o\.?b\b\.?)(?![a-z])"
)
_BIRTH_GAP_BEFORE: Final = 40  # characters between the keyword and a following date
_BIRTH_GAP_AFTER: Final = 20  # characters between a date and a following keyword
# between a date and a keyword after it: "1990-03-05 (DOB)", "May 5, 1990 is her birthday"
_TRAILING_GAP = re.compile(r"(?i)[\s(\[:-]*(?:(?:is|was)\s+(?:my|his|her|their|the|a)\s+)?")
_LONGEST_DATE: Final = 24  # "September 30th, 2020" and the like
_CLAUSE_BREAK: Final = 25  # extra distance for each comma or semicolon in between


def _valid_date(match: re.Match[str]) -> bool:
    def ok(year: int, month: int, day: int) -> bool:
        try:
            dt.date(year, month, day)
        except ValueError:
            return False
        return True

    group = match.group
    if group("iy") is not None:
        return ok(int(group("iy")), int(group("im")), int(group("id")))
    if group("ny") is not None:
        year = int(group("ny")) + (1900 if len(group("ny")) == 2 else 0)
        a, b = int(group("na")), int(group("nb"))
        return ok(year, b, a) or ok(year, a, b)  # day first, or month first
    if group("ty") is not None:
        return ok(int(group("ty")), _MONTHS[group("tm").lower()], int(group("td")))
    return ok(int(group("uy")), _MONTHS[group("um").lower()], int(group("ud")))


def _find_dates_of_birth(text: str) -> Iterable[PiiMatch]:
    keywords = [(m.start(), m.end()) for m in _BIRTH_WORDS.finditer(text)]
    if not keywords:
        return
    dates = [m for m in _DATE_RE.finditer(text) if _valid_date(m)]
    starts = [date.start() for date in dates]
    taken: set[int] = set()
    for kw_start, kw_end in keywords:
        # the nearest valid date after or before the keyword; a comma or semicolon between
        # them counts as a clause break, which makes the date farther away
        best: tuple[int, re.Match[str]] | None = None
        low = bisect.bisect_left(starts, kw_start - _BIRTH_GAP_AFTER - _LONGEST_DATE)
        for date in dates[low : bisect.bisect_right(starts, kw_end + _BIRTH_GAP_BEFORE)]:
            if kw_end <= date.start() <= kw_end + _BIRTH_GAP_BEFORE:
                gap = text[kw_end : date.start()]
            elif kw_start - _BIRTH_GAP_AFTER <= date.end() <= kw_start:
                gap = text[date.end() : kw_start]
                # "born" reads before its date; after one it is another sentence's word
                if text[kw_start:kw_end].lower() == "born" or not _TRAILING_GAP.fullmatch(gap):
                    continue
            else:
                continue
            if ". " in gap or "\n" in gap:
                continue
            distance = len(gap) + _CLAUSE_BREAK * (gap.count(",") + gap.count(";"))
            if best is None or distance < best[0]:
                best = (distance, date)
        if best is not None and best[1].start() not in taken:
            date = best[1]
            taken.add(date.start())
            yield PiiMatch(DATE_OF_BIRTH, date.start(), date.end(), date.group(0), 0.9)


# -- the recognizers -----------------------------------------------------------------------


def _find_builtin(kind: str, text: str) -> Iterable[PiiMatch]:
    if kind == DATE_OF_BIRTH:
        yield from _find_dates_of_birth(text)
        return
    if kind == IBAN:
        yield from _find_ibans(text)
        return
    pattern, score = _BUILTIN[kind]
    for match in pattern.finditer(text):
        value = score(match, text)
        if value > 0:
            yield PiiMatch(kind, match.start(), match.end(), match.group(0), value)


_BUILTIN: Final[dict[str, tuple[re.Pattern[str], _Scorer]]] = {
    EMAIL: (_EMAIL_RE, _email_score),
    PHONE: (_PHONE_RE, _phone_score),
    CARD: (_CARD_RE, _card_score),
    SSN: (_SSN_RE, _ssn_score),
    IP_ADDRESS: (_IP_RE, _ip_score),
}
_BUILTIN_ORDER: Final = (IBAN, CARD, SSN, EMAIL, IP_ADDRESS, DATE_OF_BIRTH, PHONE)


def _resolve(found: list[PiiMatch]) -> list[PiiMatch]:
    """Non-overlapping matches: highest score first, then the longest, then the earliest.

    The characters of kept matches are marked in a bytearray, so checking and keeping a
    candidate costs its length: linear in the text, since each recognizer's candidates
    do not overlap each other (and a candidate's text is as long anyway). Inserting into
    a sorted list instead costs up to the number kept, for each one kept: quadratic.
    """
    if len(found) < 2:
        return list(found)
    ranked = sorted(found, key=lambda match: (-match.score, match.start - match.end))  # stable
    taken = bytearray(max((match.end for match in found), default=0))
    kept: list[PiiMatch] = []
    for match in ranked:
        if taken.find(1, match.start, match.end) < 0:
            taken[match.start : match.end] = b"\x01" * (match.end - match.start)
            kept.append(match)
    kept.sort(key=lambda match: match.start)
    return kept


def detect_pii(
    text: str,
    *,
    kinds: Collection[str] | None = None,
    recognizers: Iterable[Recognizer] | None = None,
) -> list[PiiMatch]:
    """The PII in *text*, as non-overlapping `PiiMatch` objects in text order.

    *kinds* limits the result to those kinds (built-in or a custom recognizer's);
    *recognizers* run after the built-in ones, and their matches compete for overlapping
    spans by score like the built-in ones. An unknown kind or a recognizer's span outside
    *text* raises `AnonymizationError`.
    """
    extra = list(recognizers or ())
    wanted = frozenset(PII_KINDS if kinds is None else kinds)
    if isinstance(kinds, str):
        raise AnonymizationError("kinds must be a collection of kinds, not one string")
    unknown = wanted - PII_KINDS - {r.kind for r in extra}
    if unknown:
        raise AnonymizationError(f"unknown PII kinds: {sorted(unknown)}")
    if kinds is None:
        wanted = wanted | {r.kind for r in extra}
    found: list[PiiMatch] = []
    for kind in _BUILTIN_ORDER:
        if kind in wanted:
            found.extend(_find_builtin(kind, text))
    for recognizer in extra:
        if recognizer.kind not in wanted:
            continue
        for match in recognizer.find(text):
            if not 0 <= match.start < match.end <= len(text):
                raise AnonymizationError(
                    f"recognizer for {recognizer.kind!r} returned a span outside the text"
                )
            found.append(match)
    return _resolve(found)


def scan_columns(
    rows: Iterable[Mapping[str, object]],
    *,
    sample: int = 1000,
    threshold: float = 0.5,
    recognizers: Iterable[Recognizer] | None = None,
) -> dict[str, ColumnFinding]:
    """Suggest a PII category for each column of the first *sample* rows.

    Each value (``None`` skipped, other values as ``str()``) is scanned with the column name
    as context, so a column named ``date_of_birth`` holding dates is found. A column's
    category is its most frequent kind when the share of values holding it is at least
    *threshold*.
    """
    if sample < 1:
        raise AnonymizationError("sample must be at least 1")
    if not 0 < threshold <= 1:
        raise AnonymizationError("threshold must be in (0, 1]")
    extra = list(recognizers or ())
    counts: dict[str, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for row in itertools.islice(rows, sample):
        for column, value in row.items():
            if value is None:
                continue
            prefix = f"{column}: "
            found = detect_pii(prefix + str(value), recognizers=extra)
            totals[column] = totals.get(column, 0) + 1
            per_kind = counts.setdefault(column, {})
            for kind in {match.kind for match in found if match.start >= len(prefix)}:
                per_kind[kind] = per_kind.get(kind, 0) + 1
    findings: dict[str, ColumnFinding] = {}
    for column, total in totals.items():
        shares = {kind: n / total for kind, n in sorted(counts[column].items())}
        best = max(shares, key=lambda kind: (shares[kind], kind), default=None)
        category = best if best is not None and shares[best] >= threshold else None
        findings[column] = ColumnFinding(column, total, shares, category)
    return findings
