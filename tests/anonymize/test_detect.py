"""detect_pii and scan_columns: every kind, its look-alikes, overlaps, custom recognizers."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import attrs
import pytest

from securecustomer.anonymize._detect import (
    CARD,
    DATE_OF_BIRTH,
    EMAIL,
    IBAN,
    IP_ADDRESS,
    PHONE,
    PII_KINDS,
    SSN,
    ColumnFinding,
    PiiMatch,
    Recognizer,
    detect_pii,
    scan_columns,
)
from securecustomer.exceptions import AnonymizationError

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "anonymize_detect.py"


def found(text: str, **kwargs: object) -> list[tuple[str, str]]:
    """(kind, matched text) of every match, in text order."""
    return [(m.kind, text[m.start : m.end]) for m in detect_pii(text, **kwargs)]  # type: ignore[arg-type]


def luhn_complete(body: str) -> str:
    """*body* with the Luhn check digit appended."""
    total = 0
    for i, char in enumerate(reversed(body)):
        n = int(char) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def iban_complete(country: str, bban: str) -> str:
    """An IBAN with correct mod-97 check digits for *country* and *bban*."""
    number = int("".join(str(int(char, 36)) for char in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


class EmployeeIds:
    """A host application's recognizer: employee ids like ``E-123456``."""

    kind = "employee_id"
    pattern = re.compile(r"E-\d{6}")

    def __init__(self, score: float = 0.99) -> None:
        self.score = score

    def find(self, text: str) -> Iterable[PiiMatch]:
        for m in self.pattern.finditer(text):
            yield PiiMatch(self.kind, m.start(), m.end(), m.group(0), self.score)


class FixedSpan:
    """A recognizer that reports one fixed span, whatever the text."""

    def __init__(self, kind: str, start: int, end: int, score: float) -> None:
        self.kind = kind
        self.span = (start, end)
        self.score = score

    def find(self, text: str) -> Iterable[PiiMatch]:
        start, end = self.span
        return [PiiMatch(self.kind, start, end, text[start:end], self.score)]


class TestPiiMatch:
    """A match is a frozen value whose repr never shows the matched PII."""

    def test_repr_hides_text(self) -> None:
        match = detect_pii("write to ada.lovelace@example.com today")[0]

        assert "ada.lovelace" not in repr(match)
        assert "start=9" in repr(match)
        assert "ada.lovelace@example.com" == match.text

    def test_frozen(self) -> None:
        match = PiiMatch(EMAIL, 0, 3, "a@b", 0.5)

        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            match.start = 1  # type: ignore[misc]

    def test_text_is_the_span(self) -> None:
        text = "card 4111 1111 1111 1111, ip 8.8.8.8, mail a@example.org"

        assert all(text[m.start : m.end] == m.text for m in detect_pii(text))
        assert 3 == len(detect_pii(text))

    def test_kinds(self) -> None:
        assert {
            "email",
            "phone",
            "payment_card",
            "iban",
            "us_ssn",
            "ip_address",
            "date_of_birth",
        } == PII_KINDS


class TestEmail:
    """E-mail addresses with a dotted domain; malformed local parts and hosts are not."""

    @pytest.mark.parametrize(
        "address",
        ["ada@example.com", "first.last+tag@mail.example.co.uk", "x_y%z@sub-domain.example.org"],
    )
    def test_valid(self, address: str) -> None:
        assert [(EMAIL, address)] == found(f"contact: {address}.")

    @pytest.mark.parametrize(
        "text",
        [
            "a..b@example.com",
            ".ada@example.com",
            "ada.@example.com",
            "user@localhost",
            "@example.com",
            "ada@example.c",
            "ada@-example.com",
        ],
    )
    def test_look_alikes(self, text: str) -> None:
        assert [] == found(text)


class TestPhone:
    """International, North American and trunk-0 national numbers; dates and versions are not."""

    @pytest.mark.parametrize(
        "number",
        [
            "+14155552671",
            "+1-780-563-6083",
            "+44 (0)20 7946 0958",
            "+44(0)115 4960914",
            "+33 1 83 41 77 76",
            "+49 (4711) 123456",
            "0044 20 7946 0958",
            "(415) 555-2671",
            "415.555.2671",
            "1-800-555-0199",
            "(415)555-2671 x123",
            "020 7946 0958",
            "(0161) 4960066",
            "(0114)4960947",
            "04 15 39 15 00",
        ],
    )
    def test_valid(self, number: str) -> None:
        assert [(PHONE, number)] == found(f"Reach: {number}, thanks")

    @pytest.mark.parametrize(
        "text",
        [
            "on 01.02.2024",
            "on 2024-05-01",
            "on 12/05/2024",
            "version 1.2.3",
            "build 10.0.19041.1",
            "ref ORD5551234567",
            "order 4155552671",
            "order 02079460958",
            "invoice 0018303369",
            "host 192.168.1.1",
            "+12 34",
            "+1234567890123456789",
            "code 0123 45",
        ],
    )
    def test_look_alikes(self, text: str) -> None:
        assert [] == found(text, kinds=[PHONE])

    @pytest.mark.parametrize("text", ["call 4155552671", "Phone: 02079460958", "tel 0018303369"])
    def test_digit_run_after_phone_word(self, text: str) -> None:
        assert [PHONE] == [kind for kind, _ in found(text)]

    def test_not_inside_a_longer_number(self) -> None:
        assert [] == found("batch 4212 0297 6120 1580", kinds=[PHONE])


class TestPaymentCard:
    """Luhn-valid numbers of a known network, length and prefix; anything else is not a card."""

    @pytest.mark.parametrize(
        "number",
        [
            "4111111111111111",  # Visa 16
            "4222222222222",  # Visa 13
            luhn_complete("411111111111111111"),  # Visa 19
            "5555555555554444",  # Mastercard
            "2221000000000009",  # Mastercard 2-series
            "378282246310005",  # American Express
            "6011111111111117",  # Discover
            luhn_complete("644000000000000"),  # Discover 644-649
            "3530111333300000",  # JCB
            "30569309025904",  # Diners Club 14
            "36227206271667",  # Diners Club International
            "6200000000000005",  # UnionPay
            "4111 1111 1111 1111",
            "3782-822463-10005",
        ],
    )
    def test_valid(self, number: str) -> None:
        assert [(CARD, number)] == found(f"paid with {number} today")

    @pytest.mark.parametrize(
        "number",
        [
            "4111111111111112",  # Luhn fails
            "5555555555554440",  # Luhn fails
            luhn_complete("123456781234567"),  # Luhn passes, no network
            luhn_complete("91111111111111"),  # Luhn passes, no network
            luhn_complete("41111111111111"),  # Visa prefix, 15 digits
            luhn_complete("378282246310005"),  # Amex prefix, 16 digits
            luhn_complete("352011133330000"),  # 3520: below JCB's 3528
            luhn_complete("2720990000000000")[:16],  # 2720-series, Luhn not fixed
            luhn_complete("273000000000000"),  # 2730: above Mastercard's 2720
        ],
    )
    def test_look_alikes(self, number: str) -> None:
        assert [] == found(f"ref {number}", kinds=[CARD])

    def test_not_inside_a_word(self) -> None:
        assert [] == found("sku X4111111111111111 and 4111111111111111Z")


class TestIban:
    """IBANs of the registered length for their country with a mod-97 check; nothing else."""

    @pytest.mark.parametrize(
        "iban",
        [
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
        ],
    )
    def test_valid(self, iban: str) -> None:
        assert [(IBAN, iban)] == found(f"refund to {iban} please")

    def test_spaced_then_short_word(self) -> None:
        assert [(IBAN, "GB82 WEST 1234 5698 7654 32")] == found(
            "to GB82 WEST 1234 5698 7654 32 A thanks"
        )

    @pytest.mark.parametrize(
        "iban",
        [
            "GB82WEST12345698765433",  # one character changed
            "GB28WEST12345698765432",  # check digits swapped
            iban_complete("GB", "WEST1234569876543"),  # mod-97 fine, one short for GB
            iban_complete("DE", "3704004405320130001"),  # mod-97 fine, one long for DE
            iban_complete("XX", "12345678901234"),  # no such country
        ],
    )
    def test_look_alikes(self, iban: str) -> None:
        assert [] == found(f"account {iban}", kinds=[IBAN])


class TestSsn:
    """US SSNs in valid ranges; advertising numbers are rejected; bare digits need context."""

    def test_dashed(self) -> None:
        [match] = detect_pii("holder 536-89-0032 on file")

        assert (SSN, "536-89-0032", 0.8) == (match.kind, match.text, match.score)

    @pytest.mark.parametrize("text", ["SSN: 536890032", "social security number 536 89 0032"])
    def test_with_context(self, text: str) -> None:
        [match] = detect_pii(text)

        assert (SSN, 0.9) == (match.kind, match.score)

    @pytest.mark.parametrize(
        "text",
        [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "078-05-1120",
            "219-09-9999",
            "SSN 078-05-1120",
            "536890032",
            "536 89 0032",
            "536-89 0032",
            "1536-89-0032",
            "536-89-00321",
        ],
    )
    def test_look_alikes(self, text: str) -> None:
        assert [] == found(text)


class TestIpAddress:
    """IPv4 and IPv6 addresses that the ipaddress module accepts; private ones score lower."""

    @pytest.mark.parametrize(
        ("address", "score"),
        [
            ("8.8.8.8", 0.9),
            ("203.0.113.195", 0.6),  # documentation range: not global
            ("192.168.1.1", 0.6),
            ("2606:4700:4700::1111", 0.9),
            ("2001:db8::1", 0.6),
            ("::1", 0.6),
            ("fe80::1", 0.6),
            ("2001:4860:4860:0:0:0:0:8888", 0.9),
        ],
    )
    def test_valid(self, address: str, score: float) -> None:
        [match] = detect_pii(f"login from {address}.")

        assert (IP_ADDRESS, address, score) == (match.kind, match.text, match.score)

    @pytest.mark.parametrize(
        "text",
        [
            "256.1.1.1",
            "01.02.03.04",
            "1.2.3",
            "1.2.3.4.5",
            "version 1.2.3.4",
            "v1.2.3.4",
            "at 12:30:45",
            "00:1A:2B:3C:4D:5E",
            "1::2::3",
            "std::vector",
        ],
    )
    def test_look_alikes(self, text: str) -> None:
        assert [] == found(text)


class TestDateOfBirth:
    """A date is a date of birth only next to a birth keyword; other dates are not found."""

    @pytest.mark.parametrize(
        ("text", "date"),
        [
            ("born on 5 March 1990", "5 March 1990"),
            ("DOB: 03/05/1990", "03/05/1990"),
            ("D.O.B. 1990-03-05", "1990-03-05"),
            ("Date of birth: March 5th, 1990", "March 5th, 1990"),
            ("her birthday is 5.3.90", "5.3.90"),
            ("1990-03-05 (date of birth)", "1990-03-05"),
            ("May 5, 1990 is her birthday", "May 5, 1990"),
            ("birth_date: 1990-03-05", "1990-03-05"),
        ],
    )
    def test_in_context(self, text: str, date: str) -> None:
        assert [(DATE_OF_BIRTH, date)] == found(text)

    @pytest.mark.parametrize(
        "text",
        [
            "the meeting is on 2021-03-04",
            "invoice dated 5 March 1990",
            "born on 1990-02-30",  # no such day
            "born on 13/13/1990",
            "shipped 2012-07-28 Born shoulder card",  # "born" after a date
            "reborn on 1990-03-05",
            "born. The meeting is on 2021-03-04",  # another sentence
            "born in a small town, far away from the sea, on 1990-03-05",  # too far
        ],
    )
    def test_look_alikes(self, text: str) -> None:
        assert [] == found(text)

    def test_only_the_nearest_date(self) -> None:
        text = "1976-02-18 (DOB), upgraded to version 5.8.24; born 1980-01-02, joined 2015-06-07"

        assert [(DATE_OF_BIRTH, "1976-02-18"), (DATE_OF_BIRTH, "1980-01-02")] == found(text)


class TestOverlaps:
    """Overlapping matches: the highest score wins, then the longest span; results in order."""

    def test_higher_score_wins(self) -> None:
        text = "mail ada@example.com"
        low = FixedSpan("handle", 5, 8, 0.5)
        high = FixedSpan("handle", 5, 8, 0.99)

        assert [(EMAIL, "ada@example.com")] == found(text, recognizers=[low])
        assert [("handle", "ada")] == found(text, recognizers=[high])

    def test_longer_wins_on_equal_score(self) -> None:
        text = "abcdefghij"
        short = FixedSpan("x", 2, 5, 0.5)
        long = FixedSpan("y", 1, 8, 0.5)

        assert [("y", "bcdefgh")] == found(text, recognizers=[short, long])

    def test_first_wins_on_a_tie(self) -> None:
        text = "abcdefghij"

        assert [("a", "bcd")] == found(
            text, recognizers=[FixedSpan("a", 1, 4, 0.5), FixedSpan("b", 2, 5, 0.5)]
        )

    def test_touching_spans_both_kept_in_order(self) -> None:
        text = "abcdefghij"
        recognizers = [FixedSpan("b", 5, 8, 0.1), FixedSpan("a", 2, 5, 0.9)]

        assert [("a", "cde"), ("b", "fgh")] == found(text, recognizers=recognizers)

    def test_builtin_beats_a_weaker_longer_custom_match(self) -> None:
        text = "ref: 4111 1111 1111 1111 end"
        weak = FixedSpan("reference", 0, len(text), 0.5)

        assert [(CARD, "4111 1111 1111 1111")] == found(text, recognizers=[weak])
        assert [("reference", text)] == found(
            text, recognizers=[FixedSpan("reference", 0, len(text), 0.96)]
        )


class TestRecognizers:
    """Host recognizers run after the built-ins, obey kinds, and are checked."""

    def test_custom_recognizer(self) -> None:
        text = "employee E-123456 wrote from ada@example.com"

        assert isinstance(EmployeeIds(), Recognizer)
        assert [("employee_id", "E-123456"), (EMAIL, "ada@example.com")] == found(
            text, recognizers=[EmployeeIds()]
        )

    def test_kinds_select_builtin_and_custom(self) -> None:
        text = "employee E-123456 wrote from ada@example.com, 8.8.8.8"

        assert [("employee_id", "E-123456")] == found(
            text, kinds=["employee_id"], recognizers=[EmployeeIds()]
        )
        assert [(IP_ADDRESS, "8.8.8.8")] == found(
            text, kinds=[IP_ADDRESS], recognizers=[EmployeeIds()]
        )

    def test_unknown_kind(self) -> None:
        with pytest.raises(AnonymizationError, match="employee_id"):
            detect_pii("x", kinds=["employee_id"])

    def test_kinds_as_one_string(self) -> None:
        with pytest.raises(AnonymizationError, match="not one string"):
            detect_pii("x", kinds="email")

    @pytest.mark.parametrize(("start", "end"), [(-1, 2), (3, 3), (2, 99)])
    def test_span_outside_text(self, start: int, end: int) -> None:
        with pytest.raises(AnonymizationError, match="outside the text") as info:
            detect_pii("secret text", recognizers=[FixedSpan("x", start, end, 0.5)])

        assert "secret" not in str(info.value)


class TestScanColumns:
    """scan_columns: shares of values per kind and a suggested category per column."""

    ROWS = (
        {"mail": "ada@example.com", "dob": "1990-03-05", "note": "hello", "ip": "8.8.8.8"},
        {"mail": "bob@example.org", "dob": "1985-12-01", "note": "call +14155552671", "ip": None},
        {"mail": "n/a", "dob": "1970-01-01", "note": "fine", "ip": "10.0.0.1"},
        {"mail": "eve@example.net", "dob": "not known", "note": "ok", "ip": "bad"},
    )

    def test_findings(self) -> None:
        findings = scan_columns(self.ROWS)

        assert ColumnFinding("mail", 4, {EMAIL: 0.75}, EMAIL) == findings["mail"]
        assert ColumnFinding("dob", 4, {DATE_OF_BIRTH: 0.75}, DATE_OF_BIRTH) == findings["dob"]
        assert ColumnFinding("note", 4, {PHONE: 0.25}, None) == findings["note"]
        assert ColumnFinding("ip", 3, {IP_ADDRESS: 2 / 3}, IP_ADDRESS) == findings["ip"]

    def test_threshold(self) -> None:
        findings = scan_columns(self.ROWS, threshold=0.2)

        assert PHONE == findings["note"].category
        assert EMAIL == findings["mail"].category
        assert scan_columns(self.ROWS, threshold=0.8)["mail"].category is None

    def test_sample(self) -> None:
        rows = iter([{"a": "x"}, {"a": "ada@example.com"}, {"a": "bob@example.com"}])

        assert ColumnFinding("a", 1, {}, None) == scan_columns(rows, sample=1)["a"]
        assert 2 == len(list(rows))  # the rows after the sample were not consumed

    def test_column_name_is_context_only(self) -> None:
        findings = scan_columns([{"ada@example.com": "nothing here", "v": 4111111111111111}])

        assert {} == findings["ada@example.com"].shares
        assert CARD == findings["v"].category

    def test_custom_recognizer(self) -> None:
        findings = scan_columns([{"emp": "E-123456"}], recognizers=[EmployeeIds()])

        assert "employee_id" == findings["emp"].category

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [({"sample": 0}, "sample"), ({"threshold": 0}, "threshold"), ({"threshold": 1.5}, "th")],
    )
    def test_bad_arguments(self, kwargs: dict[str, float], message: str) -> None:
        with pytest.raises(AnonymizationError, match=message):
            scan_columns(self.ROWS, **kwargs)  # type: ignore[arg-type]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("anonymize_detect_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TestLabelledCorpus:
    """Precision and recall per kind on the benchmark's Faker corpus stay above their floors."""

    PRECISION = 0.97
    RECALL = 0.95

    def test_floors(self, capsys: pytest.CaptureFixture[str]) -> None:
        bench = load_benchmark()
        corpus = bench.build_corpus(2000, bench.SEED)
        figures = bench.evaluate(corpus)
        with capsys.disabled():
            print("\n" + bench.table(figures))

        assert sorted(PII_KINDS) == sorted(figures)
        assert all(f.labels >= 150 for f in figures.values())
        assert sum(not s.labels for s in corpus) >= 400  # sentences with distractors only
        low = {
            kind: (round(f.precision, 3), round(f.recall, 3))
            for kind, f in figures.items()
            if f.precision < self.PRECISION or f.recall < self.RECALL
        }
        assert {} == low

    def test_script(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        bench = load_benchmark()

        assert 0 == bench.main(["--sentences", "60", "--rounds", "1"])
        out = capsys.readouterr().out
        assert "| payment_card |" in out
        assert "MB/s" in out

    def test_write_docs(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        bench = load_benchmark()
        docs = tmp_path / "performance.md"
        docs.write_text(f"# Perf\n{bench.START}\nold\n{bench.END}\ntail\n", encoding="utf-8")
        bare = tmp_path / "bare.md"
        bare.write_text("# no markers\n", encoding="utf-8")

        assert bench.write_docs("| new |", docs)
        assert f"# Perf\n{bench.START}\n\n| new |\n{bench.END}\ntail\n" == docs.read_text("utf-8")
        assert not bench.write_docs("| new |", bare)
        assert "# no markers\n" == bare.read_text(encoding="utf-8")
        assert "not found" in capsys.readouterr().out

    def test_corpus_is_reproducible(self) -> None:
        bench = load_benchmark()

        assert bench.build_corpus(50, 7) == bench.build_corpus(50, 7)
        assert bench.build_corpus(50, 7) != bench.build_corpus(50, 8)

    def test_labels_are_the_pii(self) -> None:
        bench = load_benchmark()
        corpus = bench.build_corpus(300, bench.SEED)
        labelled = [(s.text[a:b], kind) for s in corpus for a, b, kind in s.labels]

        assert all(text.strip() == text and text for text, _ in labelled)
        assert all("@" in text for text, kind in labelled if kind == EMAIL)
