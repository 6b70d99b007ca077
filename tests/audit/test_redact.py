"""redact_pii: a copy with sensitive keys and detected PII masked, failing closed."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
import structlog

from securecustomer.audit import make_redact_pii, redact_pii

MASK = "[REDACTED]"


class Unprintable:
    """A value whose text cannot be produced."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class Account:
    """A value whose text holds an e-mail address."""

    def __str__(self) -> str:
        return "Account(owner=ada@example.com)"


def run(event_dict: dict[str, Any]) -> dict[str, Any]:
    return redact_pii(None, "info", event_dict)


class TestNoMutation:
    """The caller's event dict and everything nested in it stay as they were."""

    def test_deep_copy(self) -> None:
        original: dict[str, Any] = {
            "event": "login for ada@example.com",
            "password": "hunter2",
            "nested": {"token": "abc", "items": [{"email": "x@example.com"}, "078-05-1120"]},
            "pair": ("ok", "555-123-4567"),
        }
        snapshot = copy.deepcopy(original)
        out = run(original)
        assert snapshot == original
        assert out is not original
        assert out["nested"] is not original["nested"]
        assert out["nested"]["items"] is not original["nested"]["items"]
        assert out["nested"]["items"][0] is not original["nested"]["items"][0]

    def test_clean_values_are_equal_copies(self) -> None:
        original: dict[str, Any] = {
            "event": "done",
            "count": 3,
            "ratio": 0.5,
            "ok": True,
            "none": None,
            "tags": ["a", "b"],
            "meta": {"page": 2},
        }
        out = run(original)
        assert original == out
        assert out["tags"] is not original["tags"]
        assert out["meta"] is not original["meta"]


class TestSensitiveKeys:
    """Values under sensitive keys are masked at any depth, whatever their type."""

    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "PASSWORD",
            "user_password",
            "userPassword",
            "X-Api-Key",
            "api_key",
            "apikey",
            "Authorization",
            "access_token",
            "client_secret",
            "ssn",
            "user_ssn",
            "card",
            "card_number",
            "cardNumber",
            "iban",
            "email",
            "contact_email",
            "phone",
            "phone_number",
            "dob",
            "date_of_birth",
            "dateOfBirth",
        ],
    )
    def test_default_keys(self, key: str) -> None:
        assert MASK == run({key: "value"})[key]

    @pytest.mark.parametrize(
        "key",
        [
            "session",
            "lessnumber",
            "cardinal",
            "adobe",
            "user_id",
            "discard_reason",
            "event",
            "status",
        ],
    )
    def test_short_fragments_need_a_whole_word(self, key: str) -> None:
        assert "value" == run({key: "value"})[key]

    def test_any_depth_and_any_type(self) -> None:
        out = run(
            {
                "a": {"b": [{"c": {"password": {"old": 1, "new": 2}}}]},
                "user": {"card_number": 4111111111111111, "name": "Ada"},
            }
        )
        assert MASK == out["a"]["b"][0]["c"]["password"]
        assert {"card_number": MASK, "name": "Ada"} == out["user"]

    def test_custom_keys_and_mask(self) -> None:
        processor = make_redact_pii(keys=["customer_ref"], mask="***", detect=False)
        out = processor(
            None, "info", {"customer_ref": "C-1", "password": "hunter2", "note": "ada@example.com"}
        )
        assert {"customer_ref": "***", "password": "hunter2", "note": "ada@example.com"} == out

    def test_empty_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="sensitive key"):
            make_redact_pii(keys=["__"])


class TestDetection:
    """PII inside strings is masked; look-alikes are left alone."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("mail ada.l@example.co.uk!", f"mail {MASK}!"),
            ("call +44 20 7946 0958 now", f"call {MASK} now"),
            ("call (555) 123-4567", f"call {MASK}"),
            ("call 555.123.4567", f"call {MASK}"),
            ("card 4111 1111 1111 1111 ok", f"card {MASK} ok"),
            ("card 4111-1111-1111-1111", f"card {MASK}"),
            ("pan 5500005555555559", f"pan {MASK}"),
            ("iban DE89 3704 0044 0532 0130 00 AND", f"iban {MASK} AND"),
            ("iban GB82WEST12345698765432", f"iban {MASK}"),
            ("ssn 078-05-1120.", f"ssn {MASK}."),
        ],
    )
    def test_masks(self, text: str, expected: str) -> None:
        assert expected == run({"event": text})["event"]

    @pytest.mark.parametrize(
        "text",
        [
            "card 4111 1111 1111 1112",  # fails Luhn
            "order 4111111111111112",  # fails Luhn
            "iban DE89 3704 0044 0532 0130 02",  # fails mod-97 (and Luhn)
            "iban DE00370400440532013000",  # fails mod-97
            "ssn 000-12-3456",  # never issued
            "ssn 666-12-3456",
            "on 2024-05-01 at 2024-05-01T12:00:00+00:00",
            "from 192.168.10.20",
            "order 12345678",
            "user@localhost",
            "version 1.2.3",
        ],
    )
    def test_look_alikes_are_kept(self, text: str) -> None:
        assert text == run({"event": text})["event"]

    def test_integers_that_are_card_numbers(self) -> None:
        assert {"n": MASK, "m": 4111111111111112} == run(
            {"n": 4111111111111111, "m": 4111111111111112}
        )

    def test_other_objects_are_rendered_and_scanned(self) -> None:
        assert {"account": "Account(owner=[REDACTED])"} == run({"account": Account()})

    def test_detection_off(self) -> None:
        processor = make_redact_pii(detect=False)
        assert {"event": "ada@example.com"} == processor(None, "info", {"event": "ada@example.com"})


class TestFailClosed:
    """A value that cannot be redacted is replaced by the mask, never passed through."""

    def test_unprintable_value(self) -> None:
        out = run({"event": "ok", "thing": Unprintable(), "list": [1, Unprintable()]})
        assert {"event": "ok", "thing": MASK, "list": [1, MASK]} == out

    def test_unprintable_key_masks_its_mapping(self) -> None:
        out = run({"outer": {Unprintable(): "value", "other": 1}})
        assert MASK == out["outer"]

    def test_unprintable_top_level_key(self) -> None:
        bad = Unprintable()
        out = redact_pii(None, "info", {bad: "ada@example.com"})  # type: ignore[dict-item]
        assert {bad: MASK} == out

    def test_cycle(self) -> None:
        loop: dict[str, Any] = {"name": "x"}
        loop["self"] = loop
        out = run({"loop": loop})
        level, steps = out["loop"], 0
        assert "x" == level["name"]
        while isinstance(level, dict):
            level, steps = level["self"], steps + 1
        assert MASK == level
        assert steps < 40


class TestInAPipeline:
    """Used as a processor in a real structlog logger: the rendered line holds no PII."""

    def test_json_line(self) -> None:
        out = io.StringIO()
        logger = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[redact_pii, structlog.processors.JSONRenderer()],
        )
        logger.info("signup from ada@example.com", password="hunter2", plan="pro")
        line = json.loads(out.getvalue())
        assert {"event": f"signup from {MASK}", "password": MASK, "plan": "pro"} == line
        assert "hunter2" not in out.getvalue()


class TestWithAnonymize:
    """With securecustomer.anonymize present, its detect_pii findings are masked too
    (a date of birth in context, which the built-in detectors leave), but not IPs."""

    def test_date_of_birth_in_context(self) -> None:
        out = run({"event": "customer born 1990-05-01 logged in from 192.168.10.20"})
        assert "customer born [REDACTED] logged in from 192.168.10.20" == out["event"]
