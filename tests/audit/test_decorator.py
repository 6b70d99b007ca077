"""@audited: one event per call, sync or async, with outcome, actor and pseudonymized subject."""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from securecustomer.audit import (
    AuditEvent,
    AuditSink,
    AuditTrail,
    MemoryAuditSink,
    Record,
    actor,
    audited,
    default_trail,
)
from securecustomer.audit._event import canonical
from securecustomer.audit._trail import EventLike, Linker
from securecustomer.exceptions import AccessDenied, AuditError, ConfigurationError

KEY = bytes(range(32))


class FailingSink:
    """A sink whose storage is down: every append raises."""

    def append(self, events: Sequence[EventLike], link: Linker) -> list[Record]:
        raise ConnectionError("database unavailable")

    def records(self) -> Iterator[Record]:
        return iter(())


class Decision:
    """What the policy engine attaches to AccessDenied."""

    reason = "no rule allows agents to export"


def make_trail(**options: Any) -> tuple[AuditTrail, MemoryAuditSink]:
    sink = MemoryAuditSink()
    return AuditTrail(sink, key=KEY, **options), sink


def stored(sink: MemoryAuditSink) -> list[AuditEvent]:
    return [record.audit_event() for record in sink.records()]


class TestOutcomes:
    """success, denied (re-raised) and error (type only) for sync and async functions."""

    def test_sync_success(self) -> None:
        trail, sink = make_trail()

        @audited("read", resource="customer", resource_id="customer_id", trail=trail)
        def show(customer_id: int) -> dict[str, str]:
            return {"email": "ada@example.com"}

        with actor("user-7", request_id="req-1", ip="10.0.0.1"):
            assert {"email": "ada@example.com"} == show(42)
        (event,) = stored(sink)
        assert ("read", "user-7", "customer", "42", "success") == (
            event.action,
            event.actor,
            event.resource_type,
            event.resource_id,
            event.outcome,
        )
        assert ("req-1", {"ip": "10.0.0.1"}) == (event.request_id, dict(event.actor_attributes))
        assert {} == dict(event.extra)
        assert event.duration_ms is not None
        assert event.duration_ms >= 0
        assert trail.verify().ok

    def test_async_success(self) -> None:
        trail, sink = make_trail()

        @audited("read", resource="customer", resource_id="customer_id", trail=trail)
        async def show(customer_id: int) -> str:
            await asyncio.sleep(0)
            return "ok"

        async def main() -> str:
            with actor("user-7"):
                return await show(42)

        assert inspect.iscoroutinefunction(show)
        assert "ok" == asyncio.run(main())
        (event,) = stored(sink)
        assert ("user-7", "42", "success") == (event.actor, event.resource_id, event.outcome)

    def test_denied_is_recorded_and_reraised(self) -> None:
        trail, sink = make_trail()

        @audited("export", resource="customer", trail=trail)
        def export() -> None:
            raise AccessDenied("denied", decision=Decision())

        with pytest.raises(AccessDenied):
            export()
        (event,) = stored(sink)
        assert ("denied", "AccessDenied", Decision.reason) == (
            event.outcome,
            event.error_type,
            event.reason,
        )

    def test_async_denied(self) -> None:
        trail, sink = make_trail()

        @audited("export", trail=trail)
        async def export() -> None:
            raise AccessDenied("denied")

        with pytest.raises(AccessDenied):
            asyncio.run(export())
        assert [("denied", None)] == [(e.outcome, e.reason) for e in stored(sink)]

    def test_error_records_type_only(self) -> None:
        trail, sink = make_trail()

        @audited("read", trail=trail)
        def show() -> None:
            raise KeyError("customer ada@example.com not found")

        with pytest.raises(KeyError):
            show()
        (event,) = stored(sink)
        assert ("error", "KeyError", None) == (event.outcome, event.error_type, event.reason)
        assert "ada@example.com" not in str(sink.stored[0].to_dict())

    def test_async_error(self) -> None:
        trail, sink = make_trail()

        @audited("read", trail=trail)
        async def show() -> None:
            raise ValueError("secret detail")

        with pytest.raises(ValueError, match="secret detail"):
            asyncio.run(show())
        assert [("error", "ValueError")] == [(e.outcome, e.error_type) for e in stored(sink)]
        assert "secret detail" not in str(sink.stored[0].to_dict())


class TestWhatIsRecorded:
    """Arguments and return values only when named; the subject only as a pseudonym."""

    def test_nothing_recorded_by_default(self) -> None:
        trail, sink = make_trail()

        @audited("update", trail=trail)
        def update(customer_id: int, email: str) -> str:
            return "s3cret-return"

        update(42, email="ada@example.com")
        (event,) = stored(sink)
        assert {} == dict(event.extra)
        assert (None, None) == (event.resource_id, event.subject)
        text = str(sink.stored[0].to_dict())
        assert "ada@example.com" not in text
        assert "s3cret-return" not in text

    def test_record_names_and_return(self) -> None:
        trail, sink = make_trail()

        @audited("search", record=["query", "return"], trail=trail)
        def search(query: str, limit: int = 10) -> int:
            return 3

        search("smith")
        assert {"query": "smith", "return": 3} == dict(stored(sink)[0].extra)

    def test_return_not_recorded_on_failure(self) -> None:
        trail, sink = make_trail()

        @audited("search", record=["query", "return"], trail=trail)
        def search(query: str) -> int:
            raise RuntimeError("down")

        with pytest.raises(RuntimeError):
            search("smith")
        assert {"query": "smith"} == dict(stored(sink)[0].extra)

    def test_subject_is_pseudonymized(self) -> None:
        trail, sink = make_trail()

        @audited("read", subject="customer_id", trail=trail)
        def show(customer_id: int) -> None:
            pass

        show(4242)
        (event,) = stored(sink)
        assert trail.pseudonym(4242) == event.subject
        assert event.subject is not None
        assert event.subject.startswith("ps_")
        assert "4242" not in str(sink.stored[0].event)
        assert AuditTrail(MemoryAuditSink(), key=bytes(32)).pseudonym(4242) != event.subject

    def test_specs_as_names_and_callables(self) -> None:
        trail, sink = make_trail()

        @audited(
            "read",
            resource=lambda kind, **_: kind,
            resource_id=lambda row, **_: row["id"],
            subject=lambda row, **_: row["owner"],
            fields="columns",
            trail=trail,
        )
        def fetch(kind: str, row: dict[str, Any], columns: list[str]) -> None:
            pass

        fetch("invoice", {"id": 9, "owner": 42}, ["total", "due"])
        (event,) = stored(sink)
        assert ("invoice", "9", trail.pseudonym(42), ("total", "due")) == (
            event.resource_type,
            event.resource_id,
            event.subject,
            event.fields,
        )

    def test_fields_fixed_list_callable_and_single_name(self) -> None:
        trail, sink = make_trail()

        @audited("read", fields=["name", "email"], trail=trail)
        def fixed() -> None:
            pass

        @audited("read", fields=lambda wanted: wanted.split(","), trail=trail)
        def computed(wanted: str) -> None:
            pass

        @audited("read", fields="field", trail=trail)
        def single(field: str) -> None:
            pass

        fixed()
        computed("a,b")
        single("email")
        assert [("name", "email"), ("a", "b"), ("email",)] == [e.fields for e in stored(sink)]

    def test_defaults_are_applied(self) -> None:
        trail, sink = make_trail()

        @audited("read", resource_id="customer_id", trail=trail)
        def show(customer_id: int = 7) -> None:
            pass

        show()
        assert "7" == stored(sink)[0].resource_id

    def test_no_actor(self) -> None:
        trail, sink = make_trail()

        @audited("read", trail=trail)
        def show() -> None:
            pass

        show()
        (event,) = stored(sink)
        assert (None, None, {}) == (event.actor, event.request_id, dict(event.actor_attributes))

    def test_wraps(self) -> None:
        @audited("read", trail=make_trail()[0])
        def show_customer(customer_id: int) -> None:
            """Show one customer."""

        assert ("show_customer", "Show one customer.") == (
            show_customer.__name__,
            show_customer.__doc__,
        )


class TestSubjectIdsInResourceIds:
    """A resource id that names the data subject is stored as the subject's pseudonym, never
    in clear next to it (issue 14, finding 1): whoever reads the trail could otherwise link
    the pseudonym to the id without the key, and an erased subject's id would stay in it."""

    def test_same_parameter_as_subject(self) -> None:
        trail, sink = make_trail()

        @audited(
            "read",
            resource="customer",
            resource_id="customer_id",
            subject="customer_id",
            trail=trail,
        )
        def show(customer_id: int) -> None:
            pass

        show(4242)
        (event,) = stored(sink)
        assert (trail.pseudonym(4242), trail.pseudonym(4242)) == (
            event.resource_id,
            event.subject,
        )
        assert b"4242" not in sink.stored[0].line()

    def test_same_value_through_another_parameter_or_callable(self) -> None:
        trail, sink = make_trail()

        @audited("erase", resource_id="customer_id", subject=lambda ref, **_: ref, trail=trail)
        def erase(customer_id: str, ref: str) -> None:
            pass

        erase("c-77", "c-77")
        (event,) = stored(sink)
        assert (trail.pseudonym("c-77"), trail.pseudonym("c-77")) == (
            event.resource_id,
            event.subject,
        )
        assert b"c-77" not in sink.stored[0].line()

    def test_declared_subject_identifier(self) -> None:
        trail, sink = make_trail()

        @audited(
            "export",
            resource="subject",
            resource_id="customer_id",
            resource_id_is_subject=True,
            trail=trail,
        )
        def export(customer_id: int) -> None:
            pass

        export(4242)
        (event,) = stored(sink)
        assert (trail.pseudonym(4242), None) == (event.resource_id, event.subject)
        assert b"4242" not in sink.stored[0].line()

    def test_other_resource_ids_stay_readable(self) -> None:
        trail, sink = make_trail()

        @audited(
            "read", resource="order", resource_id="order_id", subject="customer_id", trail=trail
        )
        def show(order_id: int, customer_id: int) -> None:
            pass

        show(9, 4242)
        (event,) = stored(sink)
        assert ("9", trail.pseudonym(4242)) == (event.resource_id, event.subject)

    def test_declared_without_a_resource_id(self) -> None:
        with pytest.raises(ConfigurationError, match="resource_id_is_subject needs a resource_id"):

            @audited("read", resource_id_is_subject=True, trail=make_trail()[0])
            def show(customer_id: int) -> None:
                pass


class TestDecorationErrors:
    """Names that are not parameters are refused when the function is decorated."""

    @pytest.mark.parametrize(
        ("options", "what"),
        [
            ({"resource_id": "missing"}, "resource_id"),
            ({"subject": "missing"}, "subject"),
            ({"fields": "missing"}, "fields"),
            ({"record": ["missing"]}, "to record"),
        ],
    )
    def test_bad_names(self, options: dict[str, Any], what: str) -> None:
        decorator = audited("read", trail=make_trail()[0], **options)

        def show(customer_id: int) -> None:
            pass

        with pytest.raises(TypeError, match=r"@audited on .*show: no parameter 'missing'") as info:
            decorator(show)
        assert what in str(info.value)


class TestSinkFailure:
    """on_failure='raise' fails the call with AuditError; 'log' lets it through."""

    def test_raise(self) -> None:
        trail = AuditTrail(FailingSink(), key=KEY)
        assert isinstance(FailingSink(), AuditSink)
        calls: list[int] = []

        @audited("read", trail=trail)
        def show() -> str:
            calls.append(1)
            return "data"

        with pytest.raises(AuditError, match="FailingSink could not store 1 event") as info:
            show()
        assert isinstance(info.value.__cause__, ConnectionError)
        assert [1] == calls

    def test_raise_async(self) -> None:
        @audited("read", trail=AuditTrail(FailingSink(), key=KEY))
        async def show() -> str:
            return "data"

        with pytest.raises(AuditError):
            asyncio.run(show())

    def test_log(self) -> None:
        trail = AuditTrail(FailingSink(), key=KEY, on_failure="log")

        @audited("read", trail=trail)
        def show() -> str:
            return "data"

        with capture_logs() as logs:
            assert "data" == show()
        assert [
            {
                "event": "audit_sink_failed",
                "log_level": "error",
                "sink": "FailingSink",
                "lost": 1,
                "error_type": "ConnectionError",
            }
        ] == logs

    def test_unserializable_recorded_value_fails_closed(self) -> None:
        trail, sink = make_trail()

        @audited("read", record=["thing"], trail=trail)
        def show(thing: object) -> None:
            pass

        with pytest.raises(AuditError, match="MemoryAuditSink"):
            show(object())
        assert [] == sink.stored

    @pytest.mark.parametrize(
        ("options", "message"),
        [({"on_failure": "ignore"}, "on_failure"), ({"batch_size": 0}, "batch_size")],
    )
    def test_bad_options(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            AuditTrail(MemoryAuditSink(), key=KEY, **options)


class TestBatching:
    """batch_size buffers events until full, flush() or the end of a with block."""

    def test_buffer_and_flush(self) -> None:
        trail, sink = make_trail(batch_size=3)

        @audited("read", trail=trail)
        def show() -> None:
            pass

        show()
        show()
        assert [] == sink.stored
        show()
        assert [1, 2, 3] == [r.seq for r in sink.stored]
        show()
        trail.flush()
        assert 4 == len(sink.stored)
        trail.flush()
        assert 4 == len(sink.stored)

    def test_context_manager_flushes(self) -> None:
        sink = MemoryAuditSink()
        with AuditTrail(sink, key=KEY, batch_size=10) as trail:
            for _ in range(3):
                trail.append(AuditEvent(action="read"))
            assert [] == sink.stored
        assert 3 == len(sink.stored)
        assert trail.verify().ok

    def test_verify_and_checkpoint_flush(self) -> None:
        trail, sink = make_trail(batch_size=10)
        trail.append(AuditEvent(action="read"))
        checkpoint = trail.checkpoint()
        assert (1, sink.stored[0].hash) == (checkpoint.seq, checkpoint.hash)
        assert trail.verify([checkpoint]).ok

    def test_empty_trail_has_no_checkpoint(self) -> None:
        with pytest.raises(AuditError, match="empty"):
            make_trail()[0].checkpoint()


class TestDefaultTrail:
    """Without trail=, @audited writes to default_trail; unbound, calls fail before running."""

    def test_unbound(self) -> None:
        calls: list[int] = []

        @audited("read")
        def show() -> None:
            calls.append(1)

        default_trail.bind(None)
        with pytest.raises(ConfigurationError, match=r"default_trail\.bind"):
            show()
        assert [] == calls

    def test_unbound_async(self) -> None:
        @audited("read")
        async def show() -> None:
            pass

        default_trail.bind(None)
        with pytest.raises(ConfigurationError):
            asyncio.run(show())

    def test_bound(self) -> None:
        trail, sink = make_trail()

        @audited("read")
        def show() -> None:
            pass

        default_trail.bind(trail)
        try:
            show()
        finally:
            default_trail.bind(None)
        assert 1 == len(sink.stored)
        with pytest.raises(ConfigurationError):
            default_trail.get()


class TestEventForm:
    """The decorator builds event dicts directly (its hot path): they are exactly what
    AuditEvent.to_dict gives for the same event, byte for byte once encoded."""

    def test_same_as_audit_event(self) -> None:
        sink = MemoryAuditSink()
        trail = AuditTrail(sink, key=secrets.token_bytes(32))

        @audited(
            "read",
            resource="customer",
            resource_id="cid",
            subject="cid",
            fields=["name"],
            record=["note"],
            trail=trail,
        )
        def show(cid: int, note: str = "n") -> int:
            return cid

        with actor("user-7", request_id="req", ip="192.0.2.1", zone="b"):
            show(42, note="é")
            show(43)
        for record in sink.stored:
            rebuilt = AuditEvent.from_dict(record.event).to_dict()
            assert canonical(rebuilt) == record.canonical_event()
            assert record.line() == canonical(record.to_dict())
        assert trail.verify().ok


class TestSubjectCount:
    """subject_count: how many subjects a successful call touched (a list endpoint)."""

    def test_forms(self) -> None:
        trail, sink = make_trail()

        @audited("list", resource="customer", subject_count="return", trail=trail)
        def page(limit: int) -> list[int]:
            return list(range(limit))

        @audited("erase", subject_count="ids", trail=trail)
        def erase_many(ids: set[int]) -> None:
            pass

        @audited("list", subject_count=lambda result: result["rows"], trail=trail)
        def report() -> dict[str, Any]:
            return {"rows": 7}

        @audited("scan", subject_count="limit", trail=trail)
        def scan(limit: int) -> None:
            pass

        @audited("nightly", subject_count=1_000, trail=trail)
        def nightly() -> None:
            pass

        page(250)
        erase_many({1, 2, 3})
        report()
        scan(limit=40)
        nightly()
        assert [250, 3, 7, 40, 1_000] == [e.subject_count for e in stored(sink)]
        assert trail.verify().ok
        for record in sink.stored:  # the hot path's dict is what AuditEvent.to_dict gives
            assert canonical(AuditEvent.from_dict(record.event).to_dict()) == (
                record.canonical_event()
            )

    def test_unset_and_failed_calls_carry_none(self) -> None:
        trail, sink = make_trail()

        @audited("list", subject_count="return", trail=trail)
        def broken() -> list[int]:
            raise LookupError("index gone")

        @audited("read", trail=trail)
        def show() -> None:
            pass

        with pytest.raises(LookupError):
            broken()
        show()
        assert [None, None] == [e.subject_count for e in stored(sink)]
        assert all("subject_count" not in r.event for r in sink.stored)

    @pytest.mark.parametrize("result", ["abc", -1, 2.5, None, iter([1])])
    def test_a_count_that_is_not_one(self, result: object) -> None:
        trail, sink = make_trail()

        @audited("list", subject_count="return", trail=trail)
        def odd() -> object:
            return result

        with pytest.raises(TypeError, match=r"@audited on .*odd: subject_count gave a"):
            odd()
        assert [] == sink.stored

    def test_bad_settings(self) -> None:
        def show(customer_id: int) -> None:
            pass

        with pytest.raises(TypeError, match="no parameter 'missing' for subject_count"):
            audited("list", subject_count="missing", trail=make_trail()[0])(show)
        with pytest.raises(TypeError, match="0 or more"):
            audited("list", subject_count=-1, trail=make_trail()[0])(show)
