"""PII detection benchmark: precision and recall per kind on a labelled corpus, and throughput.

Run ``python -m benchmarks.anonymize_detect`` (or ``python benchmarks/anonymize_detect.py``)
from the repository root; ``--help`` lists the options. ``--write-docs`` rewrites the section
between ``<!-- detect-results:start -->`` and ``<!-- detect-results:end -->`` of
``docs/performance.md``. ``tests/anonymize/test_detect.py`` builds the same corpus and asserts
floors on the same figures.

Corpus: Faker (seeded, offline) generates sentences, each holding real PII (e-mail addresses;
phone numbers in en_US, en_GB and fr_FR formats and E.164; card numbers of Faker's Visa,
Mastercard, Amex, Discover, Diners and 15-digit JCB generators, plus 16-digit JCB (3528-3589;
Faker's "jcb16" also emits the unassigned 3500-3527) and UnionPay built here, plain or in groups
of four; IBANs of six countries, compact or in groups; SSNs; IPv4 and IPv6 addresses; dates
of birth after or before a birth keyword), a distractor, or both. Distractors are look-alikes:
order, customer and tracking numbers, ISBNs, dates and times in no birth context, 16-digit
numbers that fail Luhn, Luhn-valid numbers of no card network, IBANs with one character
changed, advertising SSNs, version and build strings, MAC addresses.
Every PII item carries its character offsets and kind.

Scoring: a detection is a true positive when it overlaps a labelled span of the same kind
(each label counts once); a detection of a kind with no such label is a false positive. The
share of true positives whose span equals the label exactly is reported too.
Throughput: `detect_pii` called once per sentence, over the whole corpus; the figure is the
median of the rounds, in MB (10^6 bytes of UTF-8) per second.

Adversarial inputs (`ADVERSARIAL`, also run by ``tests/fuzz/test_fuzz_pii.py`` under a
timeout): texts built to make each recognizer's patterns work hard (long digit runs, runs
of separators, runs of ``@`` and dots, domains that never reach a top-level domain, IBAN
prefixes that never complete, thousands of overlapping candidates). Each is timed at
100 kB, 200 kB and 800 kB (best of ``--rounds``); linear work shows as ratios near 2 and 8.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "performance.md"
START = "<!-- detect-results:start -->"
END = "<!-- detect-results:end -->"
SEED = 20261129
SENTENCES = 2000
ADVERSARIAL_SIZES = (100_000, 200_000, 800_000)

try:  # a checkout without an installed package: use src/
    import securecustomer  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(ROOT / "src"))

from securecustomer.anonymize._detect import PII_KINDS, detect_pii  # noqa: E402

Span = tuple[int, int, str]  # start, end, kind


@dataclass(frozen=True)
class Sentence:
    """One corpus line and the PII in it."""

    text: str
    labels: tuple[Span, ...]


@dataclass
class Figures:
    """Counts and ratios for one kind."""

    kind: str
    labels: int = 0
    true_positives: int = 0
    false_positives: int = 0
    exact: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.labels if self.labels else 1.0


# -- corpus -----------------------------------------------------------------------------


def _luhn_digit(body: str) -> str:
    total = 0
    for i, char in enumerate(reversed(body)):
        n = int(char)
        if i % 2 == 0:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return str((10 - total % 10) % 10)


def _grouped(digits: str, size: int = 4) -> str:
    return " ".join(digits[i : i + size] for i in range(0, len(digits), size))


def _change_one(rng: random.Random, text: str) -> str:
    """*text* with one digit (not the first four characters) replaced by another."""
    positions = [i for i, char in enumerate(text) if char.isdigit() and i >= 4]
    i = rng.choice(positions)
    new = rng.choice([d for d in "0123456789" if d != text[i]])
    return text[:i] + new + text[i + 1 :]


def build_corpus(n: int = SENTENCES, seed: int = SEED) -> list[Sentence]:
    """*n* labelled sentences, the same for the same *seed*."""
    from faker import Faker

    rng = random.Random(seed)
    fakers = {}
    for offset, locale in enumerate(
        ("en_US", "en_GB", "fr_FR", "de_DE", "nl_NL", "es_ES", "it_IT")
    ):
        fake = Faker(locale)
        fake.seed_instance(seed + offset)
        fakers[locale] = fake
    us = fakers["en_US"]

    def date_text(day: object) -> str:
        import datetime as dt

        assert isinstance(day, dt.date)
        style = rng.randrange(5)
        if style == 0:
            return day.isoformat()
        if style == 1:
            return day.strftime("%d/%m/%Y")
        if style == 2:
            return day.strftime("%m/%d/%Y")
        if style == 3:
            return f"{day.day} {day.strftime('%B')} {day.year}"
        return f"{day.strftime('%B')} {day.day}, {day.year}"

    def email() -> str:
        return rng.choice([us.email, us.free_email, us.company_email, us.safe_email])()

    def phone() -> str:
        kind = rng.randrange(4)
        if kind == 3:
            code = rng.choice(["1", "44", "33", "49", "31", "34", "39", "61", "81", "91"])
            return "+" + code + us.numerify("#" * (11 - len(code) + rng.randrange(2)))
        return fakers[("en_US", "en_GB", "fr_FR")[kind]].phone_number()

    def card() -> str:
        roll = rng.random()
        if roll < 0.2:
            # UnionPay, which Faker does not generate, and JCB: Faker's "jcb16" numbers
            # start anywhere in 3500-3599, but JCB's range is 3528-3589
            prefix = "62" if roll < 0.1 else str(rng.randint(3528, 3589))
            body = prefix + us.numerify("#" * (15 - len(prefix)))
            number = body + _luhn_digit(body)
        else:
            types = ["visa16", "visa13", "visa19", "mastercard", "amex", "discover", "diners"]
            number = us.credit_card_number(card_type=rng.choice([*types, "jcb15"]))
        return _grouped(number) if rng.random() < 0.3 and len(number) == 16 else number

    def iban() -> str:
        locale = rng.choice(["en_GB", "de_DE", "fr_FR", "nl_NL", "es_ES", "it_IT"])
        value = fakers[locale].iban()
        return _grouped(value) if rng.random() < 0.3 else value

    def ip() -> str:
        return rng.choice([us.ipv4_public, us.ipv4_private, us.ipv6, us.ipv4])()

    # (kind, lead-in phrases, generator)
    pii: list[tuple[str, list[str], Callable[[], str]]] = [
        ("email", ["Reply to", "Customer e-mail:", "Contact", "sent a message from"], email),
        ("phone", ["Call back on", "Phone:", "reach them at", "mobile"], phone),
        ("payment_card", ["Card number", "charged card", "paid with", "PAN:"], card),
        ("iban", ["IBAN", "refund to account", "transfer to", "account:"], iban),
        ("us_ssn", ["SSN", "social security number", "tax id on file", "holder id"], us.ssn),
        ("ip_address", ["login from", "client IP", "request from", "seen at address"], ip),
    ]
    dob_before = ["born on", "DOB:", "Date of birth:", "birthday is", "was born", "birthdate"]
    dob_after = ["(date of birth)", "(DOB)", "is their birthday"]

    def version() -> str:
        a, b, c = rng.randrange(20), rng.randrange(30), rng.randrange(200)
        return rng.choice([f"v{a}.{b}.{c}", f"version {a}.{b}.{c}", f"build 10.0.{19000 + c}.1"])

    def luhn_failing() -> str:
        number = us.credit_card_number(card_type="visa16")
        return number[:-1] + str((int(number[-1]) + rng.randrange(1, 10)) % 10)

    def no_network() -> str:
        body = rng.choice("0789") + us.numerify("#" * 14)
        return body + _luhn_digit(body)

    def bad_iban() -> str:
        return _change_one(rng, fakers[rng.choice(["en_GB", "de_DE", "fr_FR"])].iban())

    distractors: list[tuple[list[str], Callable[[], str]]] = [
        (["order", "Order number", "ticket"], lambda: f"ORD-{us.numerify('########')}"),
        (["customer no.", "invoice"], lambda: us.numerify("##########")),
        (["tracking number", "parcel"], lambda: us.numerify("1Z" + "#" * 16)),
        (["ISBN", "book"], us.isbn13),
        (
            ["meeting on", "invoice dated", "shipped", "renewal due"],
            lambda: date_text(us.date_object()),
        ),
        (["at", "until"], lambda: us.time()),
        (["reference", "batch"], luhn_failing),
        (["account ref", "voucher"], no_network),
        (["old IBAN", "rejected account"], bad_iban),
        (["sample SSN", "example"], lambda: rng.choice(["078-05-1120", "219-09-9999"])),
        (["running", "upgraded to"], version),
        (["device", "MAC"], us.mac_address),
        (["quantity", "amount"], lambda: f"{rng.randrange(1, 10_000)}.{rng.randrange(100):02d}"),
    ]

    corpus: list[Sentence] = []
    for _ in range(n):
        parts: list[tuple[str, str | None]] = []
        roll = rng.random()
        with_pii, with_distractor = roll < 0.75, roll >= 0.5
        if with_pii:
            if rng.random() < 1 / 7:
                day = date_text(us.date_of_birth(minimum_age=18, maximum_age=95))
                if rng.random() < 0.7:
                    parts += [(rng.choice(dob_before) + " ", None), (day, "date_of_birth")]
                else:
                    parts += [(day, "date_of_birth"), (" " + rng.choice(dob_after), None)]
            else:
                kind, leads, make = rng.choice(pii)
                parts += [(rng.choice(leads) + " ", None), (make(), kind)]
        if with_distractor:
            leads, make = rng.choice(distractors)
            parts.append(((", " if parts else "") + rng.choice(leads) + " ", None))
            parts.append((make(), None))
        parts.append((" " + us.sentence(nb_words=4), None))
        text, labels = "", []
        for piece, kind in parts:
            if kind is not None:
                labels.append((len(text), len(text) + len(piece), kind))
            text += piece
        corpus.append(Sentence(text, tuple(labels)))
    return corpus


# -- adversarial inputs -------------------------------------------------------------------


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


def _with(head: str, unit: str, tail: str = "") -> Callable[[int], str]:
    return lambda size: head + _repeat(unit)(size - len(head) - len(tail)) + tail


def _halves(first: str, second: str) -> Callable[[int], str]:
    return lambda size: _repeat(first)(size // 2) + " " + _repeat(second)(size - size // 2 - 1)


#: name -> builder of a text of the given size (characters)
ADVERSARIAL: dict[str, Callable[[int], str]] = {
    # digits and separators: card, phone, SSN, date and IP patterns start at every group
    "digit run": _repeat("1"),
    "digits and spaces": _repeat("1 "),
    "digits and dashes": _repeat("1-"),
    "digits and dots": _repeat("1."),
    "trunk groups, double spaces": _repeat("00  "),
    "international prefixes": _repeat("+1 "),
    "trunk in parentheses": _repeat("(0)"),
    "extensions": _repeat("1 ext "),
    "SSN near misses": _repeat("123-45-"),
    "many SSNs": _repeat("123-45-6789 "),
    "mixed separators": _repeat("1 .-"),
    # e-mail: local parts and domains that never complete
    "@ run": _with("a", "@"),
    "@ and dots": _repeat("@."),
    "local part, no @": _repeat("a."),
    "long local part then @": _with("", "a", "@"),
    "domain labels, no TLD": _with("x@", "a.", "1"),
    "63-char labels, no TLD": _with("x@", "a" * 63 + ".", "1"),
    "domain dashes": _with("x@", "a-"),
    "near-miss addresses": _repeat("a.a@"),
    "many addresses": _repeat("ada@example.com "),
    # IBAN: country prefixes with runs that never validate
    "DE + digit run": _with("DE", "1"),
    "DE12 repeated": _repeat("DE12"),
    "spaced IBAN groups": _with("DE89", " 3704"),
    # IP addresses and dates
    "IPv4 dot runs": _repeat("1.1."),
    "colon run": _repeat(":"),
    "IPv6 groups": _repeat("ab12:"),
    "private then public IPs": _halves("10.0.0.1 ", "8.8.8.8 "),
    "date fragments": _repeat("1/1/"),
    "month names": _repeat("May 1, "),
    "birth keywords": _repeat("born "),
    "birth dates": _repeat("born 1990-01-01 "),
    "phone keywords": _repeat("phone 0"),
    "whitespace": _repeat(" "),
}


def adversarial_rows(rounds: int = 3) -> list[tuple[str, list[float]]]:
    """(name, best seconds per size in ADVERSARIAL_SIZES) for each adversarial input."""
    rows = []
    for name, build in ADVERSARIAL.items():
        seconds = []
        for size in ADVERSARIAL_SIZES:
            text = build(size)
            best = float("inf")
            for _ in range(rounds):
                began = time.perf_counter()
                detect_pii(text)
                best = min(best, time.perf_counter() - began)
            seconds.append(best)
        rows.append((name, seconds))
    return rows


def adversarial_table(rows: list[tuple[str, list[float]]]) -> str:
    sizes = " | ".join(f"{size // 1000} kB (ms)" for size in ADVERSARIAL_SIZES)
    ratios = " | ".join(f"{size // ADVERSARIAL_SIZES[0]}x / 1x" for size in ADVERSARIAL_SIZES[1:])
    lines = [
        f"| adversarial input | {sizes} | {ratios} |",
        "|---" + "|---:" * (2 * len(ADVERSARIAL_SIZES) - 1) + "|",
    ]
    for name, seconds in rows:
        ms = " | ".join(f"{s * 1000:.1f}" for s in seconds)
        ratio = " | ".join(f"{s / seconds[0]:.2f}" for s in seconds[1:])
        lines.append(f"| {name} | {ms} | {ratio} |")
    return "\n".join(lines)


# -- measurement ------------------------------------------------------------------------


def evaluate(corpus: list[Sentence]) -> dict[str, Figures]:
    """Precision and recall per kind of `detect_pii` on *corpus*."""
    figures = {kind: Figures(kind) for kind in sorted(PII_KINDS)}
    for sentence in corpus:
        for _, _, kind in sentence.labels:
            figures[kind].labels += 1
        unmatched = list(sentence.labels)
        for match in detect_pii(sentence.text):
            hit = next(
                (
                    label
                    for label in unmatched
                    if label[2] == match.kind and match.start < label[1] and label[0] < match.end
                ),
                None,
            )
            if hit is None:
                figures[match.kind].false_positives += 1
                continue
            unmatched.remove(hit)
            figures[match.kind].true_positives += 1
            figures[match.kind].exact += (match.start, match.end) == hit[:2]
    return figures


def throughput(corpus: list[Sentence], rounds: int = 5) -> float:
    """MB of UTF-8 text per second through `detect_pii`, one call per sentence."""
    texts = [sentence.text for sentence in corpus]
    size = sum(len(text.encode()) for text in texts)
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        for text in texts:
            detect_pii(text)
        times.append(time.perf_counter() - began)
    return size / statistics.median(times) / 1e6


def table(figures: dict[str, Figures]) -> str:
    lines = [
        "| kind | labels | precision | recall | exact spans |",
        "|---|---:|---:|---:|---:|",
    ]
    for f in figures.values():
        exact = f.exact / f.true_positives if f.true_positives else 1.0
        lines.append(
            f"| {f.kind} | {f.labels} | {f.precision:.3f} | {f.recall:.3f} | {exact:.3f} |"
        )
    return "\n".join(lines)


def write_docs(section: str, path: Path = DOCS) -> bool:
    """Replace what lies between the detect-results markers of *path*; False without them."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        print(f"{path}: markers {START} ... {END} not found; left as it is")
        return False
    path.write_text(text[: start + len(START)] + "\n\n" + section + "\n" + text[end:], "utf-8")
    print(f"rewrote the detect-results section of {path}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=SENTENCES, help="corpus size")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for Faker and choices")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the corpus")
    parser.add_argument(
        "--write-docs", action="store_true", help="rewrite the table in docs/performance.md"
    )
    args = parser.parse_args(argv)

    corpus = build_corpus(args.sentences, args.seed)
    figures = evaluate(corpus)
    speed = throughput(corpus, args.rounds)
    adversarial = adversarial_rows(min(args.rounds, 3))
    size = sum(len(s.text.encode()) for s in corpus) / 1000
    section = "\n".join(
        [
            f"{len(corpus)} sentences ({size:.0f} kB), seed {args.seed}; "
            f"{platform.python_implementation()} {platform.python_version()} "
            f"on {platform.machine()}.",
            "",
            table(figures),
            "",
            f"Throughput: {speed:.2f} MB/s (`detect_pii` once per sentence, "
            f"median of {args.rounds} passes).",
            "",
            "Adversarial inputs: one `detect_pii` call on the whole text, best of "
            f"{min(args.rounds, 3)}; linear work gives ratios near "
            + " and ".join(str(size // ADVERSARIAL_SIZES[0]) for size in ADVERSARIAL_SIZES[1:])
            + ".",
            "",
            adversarial_table(adversarial),
        ]
    )
    print(section)
    if args.write_docs:
        write_docs(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
