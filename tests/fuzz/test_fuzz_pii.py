"""Fuzzing `detect_pii`: any text gives well-formed results, and adversarial text runs in
linear time.

Linear time is shown without timing anything: the whole-text patterns have a bounded
match width (so each start position costs a bounded amount of work), except the e-mail
domain, whose unbounded run stops at the next ``@`` (see `TestPatternShapes`); and the
adversarial inputs of ``benchmarks/anonymize_detect.py`` at 100 kB each finish in a
subprocess under a generous timeout, whose expiry would mean catastrophic backtracking
(at 100 kB, quadratic work in the regex engine takes minutes; linear work takes a tenth
of a second). The benchmark prints the measured times at 100, 200 and 800 kB.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import securecustomer.anonymize._detect as _detect
from securecustomer.anonymize import PII_KINDS, PiiMatch, detect_pii
from securecustomer.exceptions import AnonymizationError

EXAMPLES = int(os.environ.get("SECURECUSTOMER_FUZZ_EXAMPLES", "200"))
ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "anonymize_detect.py"
SIZE = 100_000
TIMEOUT = 30  # seconds for all adversarial inputs together; about 1 s is normal

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# pieces that the recognizers react to, glued together by the strategy below
PIECES = [
    "ada@example.com",
    "a.b@c.d",
    "@",
    ".",
    "-",
    " ",
    "  ",
    "+",
    "(0)",
    "+44 20 7946 0958",
    "(415) 555-2671",
    "020 7946 0958",
    "4111 1111 1111 1111",
    "4111111111111111",
    "DE89 3704 0044 0532 0130 00",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "078-05-1120",
    "123-45-6789",
    "SSN ",
    "8.8.8.8",
    "10.0.0.1",
    "2001:db8::1",
    "::",
    "1990-03-05",
    "05/03/1990",
    "March 5, 1990",
    "5th May 1990",
    "born ",
    "DOB: ",
    "phone ",
    " ext 12",
    "v",
    "version ",
    "\n",
    ", ",
    "é",
    "\u0661\u0662",  # Arabic-Indic digits: \d matches them
]
texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet="0123456789 -.+()@:/aAeEDxX\n", max_size=300),
    st.lists(
        st.one_of(st.sampled_from(PIECES), st.text(alphabet="0123456789", max_size=20)),
        max_size=30,
    ).map("".join),
)


def check_well_formed(text: str, matches: list[PiiMatch]) -> None:
    """What detect_pii documents: non-overlapping matches in text order, inside *text*."""
    end = 0
    for match in matches:
        assert end <= match.start < match.end <= len(text)
        assert text[match.start : match.end] == match.text
        assert 0 < match.score <= 1
        end = match.end


class TestArbitraryText:
    """detect_pii on any text never raises and returns well-formed matches."""

    @FUZZ
    @given(text=texts)
    def test_well_formed(self, text: str) -> None:
        matches = detect_pii(text)

        check_well_formed(text, matches)
        assert {m.kind for m in matches} <= PII_KINDS

    @FUZZ
    @given(text=texts, kinds=st.sets(st.sampled_from(sorted(PII_KINDS))))
    def test_kinds_limit_the_result(self, text: str, kinds: set[str]) -> None:
        matches = detect_pii(text, kinds=kinds)

        check_well_formed(text, matches)
        assert {m.kind for m in matches} <= kinds


@attrs.frozen
class Spans:
    """A host recognizer that returns the spans it was given, overlapping or not."""

    kind: str
    spans: tuple[tuple[int, int, float], ...]

    def find(self, text: str) -> Iterable[PiiMatch]:
        for start, end, score in self.spans:
            yield PiiMatch(self.kind, start, end, text[start:end], score)


def reference_resolve(found: list[PiiMatch]) -> list[PiiMatch]:
    """The documented rule, spelt out: by score, then length, then earliest (in the order
    found); a match is kept when it overlaps no match kept before it."""
    ranked = sorted(
        enumerate(found), key=lambda item: (-item[1].score, item[1].start - item[1].end, item[0])
    )
    kept: list[PiiMatch] = []
    for _, match in ranked:
        if all(match.end <= k.start or k.end <= match.start for k in kept):
            kept.append(match)
    return sorted(kept, key=lambda m: m.start)


spans = st.integers(0, 60).flatmap(
    lambda length: st.tuples(
        st.just("x" * length),
        st.lists(
            st.tuples(
                st.integers(0, length), st.integers(0, length), st.sampled_from([0.5, 0.9])
            ).filter(lambda s: s[0] < s[1]),
            max_size=40,
        ),
    )
)


class TestOverlapResolution:
    """Overlapping candidates resolve as documented, compared with a reference."""

    @FUZZ
    @given(case=spans)
    def test_same_as_reference(self, case: tuple[str, list[tuple[int, int, float]]]) -> None:
        text, found = case
        recognizer = Spans("custom", tuple(found))

        result = detect_pii(text, kinds=["custom"], recognizers=[recognizer])

        check_well_formed(text, result)
        assert reference_resolve(list(recognizer.find(text))) == result

    @FUZZ
    @given(length=st.integers(0, 20), start=st.integers(-5, 30), end=st.integers(-5, 30))
    def test_spans_outside_the_text_are_refused(self, length: int, start: int, end: int) -> None:
        text = "x" * length
        recognizer = Spans("custom", ((start, end, 0.5),))
        if 0 <= start < end <= length:
            assert 1 == len(detect_pii(text, recognizers=[recognizer], kinds=["custom"]))
        else:
            with pytest.raises(AnonymizationError, match="outside the text"):
                detect_pii(text, recognizers=[recognizer])


#: The patterns run over the whole text, and how many unbounded repeats each may have.
WHOLE_TEXT = {
    "_EMAIL_RE": 1,  # the domain labels
    "_PHONE_RE": 0,
    "_CARD_RE": 0,
    "_IBAN_RE": 0,
    "_SSN_RE": 0,
    "_IP_RE": 0,
    "_DATE_RE": 0,
    "_BIRTH_WORDS": 0,
}


def _unbounded(pattern: re.Pattern[str]) -> list[str]:
    """The unbounded repeats (``*``, ``+``, ``{n,}``) anywhere in *pattern*, as text."""
    parser = re._parser  # type: ignore[attr-defined]
    constants = re._constants  # type: ignore[attr-defined]
    repeats = {constants.MAX_REPEAT, constants.MIN_REPEAT}
    repeats |= {getattr(constants, "POSSESSIVE_REPEAT", constants.MAX_REPEAT)}
    found: list[str] = []

    def walk(items: object) -> None:
        for op, av in items:  # type: ignore[attr-defined]
            if op in repeats:
                low, high, body = av
                if high == constants.MAXREPEAT:
                    found.append(f"{op}{{{low},}}")
                walk(body)
            elif op is constants.SUBPATTERN:
                walk(av[-1])
            elif op is constants.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in {constants.ASSERT, constants.ASSERT_NOT}:
                walk(av[1])
            elif op is constants.GROUPREF_EXISTS:
                walk(av[1])
                if av[2] is not None:
                    walk(av[2])

    walk(parser.parse(pattern.pattern, pattern.flags))
    return found


class TestPatternShapes:
    """The patterns run over the whole text match a bounded number of characters from any
    start, so the regex engine's work is at most a constant times the text's length.

    The exception is the e-mail domain, ``(?:label\\.)+``: from a start, it reads at most
    64 local-part characters, an ``@``, and the run of domain characters after it, which
    ends at the next ``@``. Every ``@`` is reached from at most 64 starts, so the work is
    at most about 64 times the text's length. The patterns run on windows (the phone and
    SSN keywords, version prefixes, gaps between a date and its keyword) read at most 40
    characters before a match.
    """

    @pytest.mark.parametrize("name", sorted(WHOLE_TEXT))
    def test_bounded_width(self, name: str) -> None:
        pattern = getattr(_detect, name)

        assert WHOLE_TEXT[name] == len(_unbounded(pattern))

    def test_the_walk_finds_unbounded_repeats(self) -> None:
        assert 3 == len(_unbounded(re.compile(r"a+(?=b*)(c|d{2,})")))

    def test_every_whole_text_pattern_is_listed(self) -> None:
        """A new recognizer pattern gets an entry above, and an adversarial input."""
        patterns = {
            name
            for name, value in vars(_detect).items()
            if isinstance(value, re.Pattern) and name.endswith(("_RE", "_WORDS"))
        }
        assert set(WHOLE_TEXT) == patterns


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("anonymize_detect_adversarial", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


RUN_ALL = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
sys.modules["bench"] = bench
spec.loader.exec_module(bench)
from securecustomer.anonymize import detect_pii
for name, build in bench.ADVERSARIAL.items():
    print("started", name, flush=True)
    detect_pii(build(int(sys.argv[2])))
print("done", flush=True)
"""


class TestAdversarialInputs:
    """Pathological 100 kB texts for every recognizer finish, in a subprocess with a
    timeout whose expiry means super-linear work (catastrophic backtracking)."""

    def test_inputs_cover_every_recognizer(self) -> None:
        """Each recognizer's pattern matches in at least one input (they are not all inert)."""
        bench = load_benchmark()
        kinds: set[str] = set()
        for build in bench.ADVERSARIAL.values():
            text = build(2000)
            assert 2000 == len(text)
            for kind in PII_KINDS:
                pattern = {
                    "email": _detect._EMAIL_RE,
                    "phone": _detect._PHONE_RE,
                    "payment_card": _detect._CARD_RE,
                    "iban": _detect._IBAN_RE,
                    "us_ssn": _detect._SSN_RE,
                    "ip_address": _detect._IP_RE,
                    "date_of_birth": _detect._DATE_RE,
                }[kind]
                if pattern.search(text):
                    kinds.add(kind)
        assert PII_KINDS == kinds

    def test_100_kb_each_under_a_timeout(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        try:
            run = subprocess.run(
                [sys.executable, "-c", RUN_ALL, str(BENCHMARK), str(SIZE)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else (exc.stdout or b"").decode()
            last = out.strip().splitlines()[-1:] or ["(nothing)"]
            pytest.fail(f"detect_pii did not finish within {TIMEOUT} s; last: {last[0]}")
        assert 0 == run.returncode, run.stderr
        assert run.stdout.endswith("done\n")
