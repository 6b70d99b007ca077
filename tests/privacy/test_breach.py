"""`breach_scope` over real audit trails (in memory and in a JSON lines file) and keyrings."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path

import attrs
import pytest
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer.audit import (
    AuditEvent,
    AuditTrail,
    JsonlAuditSink,
    MemoryAuditSink,
    Record,
)
from securecustomer.exceptions import ConfigurationError, KeyNotFoundError
from securecustomer.keys import Keyring, LocalKeyProvider, MemoryKeyStore
from securecustomer.privacy import (
    NOTIFICATION_WINDOW,
    BreachScope,
    breach_scope,
    register_subject,
)
from securecustomer.sqlalchemy import EncryptedString, encrypt_rows

T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
FOUND = T0 + dt.timedelta(days=2)


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


@pytest.fixture(params=["memory", "jsonl"])
def trail(request: pytest.FixtureRequest, tmp_path: Path) -> AuditTrail:
    sink = MemoryAuditSink() if request.param == "memory" else JsonlAuditSink(tmp_path / "a.jsonl")
    trail = AuditTrail(sink, key=secrets.token_bytes(32))
    for event in events(trail):
        trail.append(event)
    return trail


@pytest.fixture
def keyring() -> Keyring:
    return Keyring(LocalKeyProvider.generate(), MemoryKeyStore()).load()


def events(trail: AuditTrail) -> list[AuditEvent]:
    """An export job that read customers 1-4 overnight, and ordinary traffic around it."""
    ps = trail.pseudonym
    out = [
        AuditEvent(
            action="read",
            actor="svc-export",
            resource_type="customers",
            resource_id=str(i),
            subject=ps(i),
            fields=("email", "phone"),
            timestamp=at(i),
        )
        for i in range(1, 5)
    ]
    out += [
        AuditEvent(
            action="read",
            actor="svc-export",
            resource_type="customers",
            resource_id="1",
            subject=ps(1),
            fields=("email",),
            timestamp=at(5),
        ),
        AuditEvent(
            action="read",
            actor="svc-export",
            resource_type="orders",
            resource_id="o-9",
            subject=ps(9),
            fields=("address",),
            outcome="denied",
            timestamp=at(6),
        ),
        AuditEvent(
            action="update",
            actor="alice",
            resource_type="customers",
            resource_id="7",
            subject=ps(7),
            fields=("email",),
            timestamp=at(30),
        ),
        AuditEvent(
            action="read",
            actor="bob",
            resource_type="orders",
            resource_id="o-2",
            subject=ps(2),
            fields=("address",),
            timestamp=at(31),
        ),
        AuditEvent(
            action="key.compromise",
            actor="dpo",
            resource_type="data_key",
            resource_id="0x00000001",
            extra={"key_ids": [0xFEED, 0xBEEF]},
            timestamp=at(40),
        ),
    ]
    return out


def tamper(trail: AuditTrail) -> None:
    """Change the actor of the third record in the trail's storage."""
    sink = trail.sink
    if isinstance(sink, MemoryAuditSink):
        record = sink.stored[2]
        sink.stored[2] = attrs.evolve(record, event={**record.event, "actor": "mallory"})
        return
    assert isinstance(sink, JsonlAuditSink)
    lines = sink.path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"svc-export"', '"mallory"')
    sink.path.write_text("".join(lines))


class TestCounts:
    """Subjects, fields, resources and actors of the matching events."""

    def test_actor(self, trail: AuditTrail) -> None:
        scope = breach_scope(trail, actor="svc-export", discovered_at=FOUND)

        assert 5 == scope.events
        assert frozenset(trail.pseudonym(i) for i in range(1, 5)) == scope.subjects
        assert {"customers.email": 5, "customers.phone": 4} == scope.fields
        assert {"customers": 4} == scope.resources
        assert frozenset({"svc-export"}) == scope.actors
        assert (at(1), at(5)) == (scope.first_seen, scope.last_seen)
        assert (True, ()) == (scope.trail_verified, scope.trail_problems)
        assert {"actor": "svc-export", "outcomes": "success"} == scope.criteria

    def test_outcomes(self, trail: AuditTrail) -> None:
        scope = breach_scope(
            trail, actor="svc-export", outcomes=("success", "denied"), discovered_at=FOUND
        )

        assert 6 == scope.events
        assert {"customers": 4, "orders": 1} == scope.resources

    def test_time_window_and_actions_combine(self, trail: AuditTrail) -> None:
        scope = breach_scope(
            trail, since=at(2), until=at(31), actions=["read"], discovered_at=FOUND
        )

        assert (5, frozenset({"svc-export", "bob"})) == (scope.events, scope.actors)
        assert (at(2), at(31)) == (scope.first_seen, scope.last_seen)

    def test_no_match(self, trail: AuditTrail) -> None:
        scope = breach_scope(trail, actor="nobody", discovered_at=FOUND)

        assert (0, frozenset(), None, None) == (
            scope.events,
            scope.subjects,
            scope.first_seen,
            scope.last_seen,
        )


class TestKeyCriterion:
    """A key id finds the events on its column, its subject, or naming it."""

    def test_column_scope(self, trail: AuditTrail, keyring: Keyring) -> None:
        key = keyring.keyset("orders.address").primary
        assert key is not None

        scope = breach_scope(trail, key_id=key.key_id, keyring=keyring, discovered_at=FOUND)

        assert ({"orders.address": 1}, {"orders": 1}) == (scope.fields, scope.resources)
        assert "orders.address" == scope.criteria["key_scope"]

    def test_resource_types_map_tables(self, trail: AuditTrail, keyring: Keyring) -> None:
        key = keyring.keyset("customer_table.email").primary
        assert key is not None

        scope = breach_scope(
            trail,
            key_id=key.key_id,
            keyring=keyring,
            resource_types={"customer_table": "customers"},
            actor="alice",
            discovered_at=FOUND,
        )

        assert (1, frozenset({trail.pseudonym(7)})) == (scope.events, scope.subjects)

    def test_subject_scope(self, trail: AuditTrail, keyring: Keyring) -> None:
        key = keyring.keyset("subject:2").primary
        assert key is not None

        scope = breach_scope(trail, key_id=key.key_id, keyring=keyring, discovered_at=FOUND)

        assert 2 == scope.events
        assert frozenset({trail.pseudonym(2)}) == scope.subjects
        assert "subject:2" not in scope.to_json()
        assert f"subject:{trail.pseudonym(2)}" == scope.criteria["key_scope"]

    def test_events_listing_the_key(self, trail: AuditTrail, keyring: Keyring) -> None:
        key = keyring.keyset("tenant:7").primary
        assert key is not None
        trail.append(
            AuditEvent(
                action="key.rotate",
                actor="ops",
                extra={"key_ids": [key.key_id]},
                timestamp=at(41),
            )
        )

        scope = breach_scope(trail, key_id=key.key_id, keyring=keyring, discovered_at=FOUND)

        assert (1, frozenset({"ops"})) == (scope.events, scope.actors)
        assert "tenant:7" == scope.criteria["key_scope"]

    def test_subject_scope_needs_the_trail(self, trail: AuditTrail, keyring: Keyring) -> None:
        key = keyring.keyset("subject:2").primary
        assert key is not None

        with pytest.raises(ConfigurationError, match="trail"):
            breach_scope(list(trail.sink.records()), key_id=key.key_id, keyring=keyring)

    def test_unknown_key(self, trail: AuditTrail, keyring: Keyring) -> None:
        with pytest.raises(KeyNotFoundError):
            breach_scope(trail, key_id=0x0BADC0DE, keyring=keyring)

    def test_key_needs_keyring(self, trail: AuditTrail) -> None:
        with pytest.raises(ConfigurationError, match="keyring"):
            breach_scope(trail, key_id=1)


class TestVerification:
    """The trail is verified first; a damaged trail is read anyway, and flagged."""

    def test_tampered_trail_is_reported(self, trail: AuditTrail) -> None:
        tamper(trail)

        scope = breach_scope(trail, actor="svc-export", discovered_at=FOUND)

        assert False is scope.trail_verified
        assert 1 == len(scope.trail_problems)
        assert scope.trail_problems[0].startswith("record 3:")
        assert 4 == scope.events
        assert "DID NOT VERIFY" in scope.to_markdown(now=FOUND)
        assert scope.to_dict()["trail_verified"] is False

    def test_records_from_elsewhere_are_not_verified(self, trail: AuditTrail) -> None:
        scope = breach_scope(
            list(trail.sink.records()), actor="svc-export", trail=trail, discovered_at=FOUND
        )

        assert (None, 5) == (scope.trail_verified, scope.events)
        assert "not verified" in scope.to_markdown(now=FOUND)

    def test_unreadable_records_are_skipped_and_reported(self, trail: AuditTrail) -> None:
        good = {**events(trail)[0].to_dict(), "actor": None}
        records = [
            Record(1, "00", "00", {**good, "timestamp": "yesterday"}),
            Record(2, "00", "00", {**good, "timestamp": "2026-03-01T10:00:00"}),
            Record(3, "00", "00", good),
        ]

        scope = breach_scope(records, since=T0, discovered_at=FOUND)

        assert (1, frozenset()) == (scope.events, scope.actors)
        assert ("2 records could not be read and were skipped",) == scope.trail_problems

    def test_events_as_a_source(self, trail: AuditTrail) -> None:
        scope = breach_scope(events(trail), actor="alice", discovered_at=FOUND)

        assert (1, {"customers.email": 1}) == (scope.events, scope.fields)


class TestDeadline:
    """Notify the supervisory authority within 72 hours of discovery."""

    def test_notify_by(self, trail: AuditTrail) -> None:
        scope = breach_scope(trail, actor="bob", discovered_at=FOUND)

        assert FOUND + dt.timedelta(hours=72) == scope.notify_by
        assert dt.timedelta(hours=72) == NOTIFICATION_WINDOW
        assert 24.0 == scope.hours_left(FOUND + dt.timedelta(hours=48))

    def test_discovered_now_by_default(self, trail: AuditTrail) -> None:
        scope = breach_scope(trail, actor="bob", clock=lambda: FOUND)

        assert (FOUND, FOUND + NOTIFICATION_WINDOW) == (scope.discovered_at, scope.notify_by)

    def test_markdown_shows_time_left_and_overdue(self, trail: AuditTrail) -> None:
        scope = breach_scope(trail, actor="svc-export", discovered_at=FOUND)

        assert "(60 hours left)" in scope.to_markdown(now=FOUND + dt.timedelta(hours=12))
        assert "OVERDUE by 3 hours" in scope.to_markdown(now=FOUND + dt.timedelta(hours=75))
        text = scope.to_markdown(now=FOUND)
        assert "| customers.phone | 4 |" in text
        assert "| customers | 4 |" in text
        assert "**Data subjects concerned:** 4" in text


class TestCandidates:
    """Candidate ids are matched to pseudonyms; raw ids stay out of reports unless asked."""

    def test_identified(self, trail: AuditTrail) -> None:
        scope = breach_scope(
            trail, actor="svc-export", candidates=[1, 3, 7, 99], discovered_at=FOUND
        )

        assert {trail.pseudonym(1): "1", trail.pseudonym(3): "3"} == scope.identified
        assert "identified" not in scope.to_dict()
        assert {trail.pseudonym(1): "1", trail.pseudonym(3): "3"} == json.loads(
            scope.to_json(include_identified=True)
        )["identified"]
        assert "- 3 (" in scope.to_markdown(now=FOUND, include_identified=True)
        assert "Identified" not in scope.to_markdown(now=FOUND)

    def test_candidates_need_the_trail(self, trail: AuditTrail) -> None:
        with pytest.raises(ConfigurationError, match="trail"):
            breach_scope(list(trail.sink.records()), actor="bob", candidates=[2])


class TestInput:
    """Bad criteria are refused with the parameter named."""

    def test_needs_a_criterion(self, trail: AuditTrail) -> None:
        with pytest.raises(ConfigurationError, match="at least one criterion"):
            breach_scope(trail)

    @pytest.mark.parametrize("name", ["since", "until", "discovered_at"])
    def test_naive_datetimes(self, trail: AuditTrail, name: str) -> None:
        naive = dt.datetime(2026, 3, 1, 9, 0)  # naive: the point of the test

        with pytest.raises(ConfigurationError, match=name):
            breach_scope(trail, actor="bob", **{name: naive})  # type: ignore[arg-type]


class TestJson:
    """The JSON form is stable: sorted keys and lists, ISO 8601 times."""

    def test_stable(self, trail: AuditTrail) -> None:
        first = breach_scope(trail, actor="svc-export", discovered_at=FOUND)
        second = breach_scope(trail, actor="svc-export", discovered_at=FOUND)

        assert first.to_json() == second.to_json()
        data = json.loads(first.to_json(indent=None))
        assert sorted(data) == list(data)
        assert (4, "2026-03-06T09:00:00+00:00") == (data["subject_count"], data["notify_by"])
        assert sorted(data["subjects"]) == data["subjects"]
        assert isinstance(first, BreachScope)


class TestMarkdownInjection:
    """Names read from the trail cannot add lines or cells to the notification report."""

    def test_names_are_escaped(self) -> None:
        event = AuditEvent(
            action="read",
            actor="eve\n# All clear: no breach",
            resource_type="cust|omers",
            resource_id="1",
            fields=("email\n| forged | 0 |",),
            timestamp=at(1),
        )

        text = breach_scope([event], since=T0, discovered_at=FOUND).to_markdown(now=FOUND)

        lines = text.splitlines()
        assert "# All clear: no breach" not in lines
        assert "| forged | 0 |" not in lines
        assert "| cust\\|omers | 1 |" in lines


class TestCutTail:
    """A trail cut after a checkpoint does not verify when the checkpoint is given."""

    def test_cut_tail_is_reported(self) -> None:
        sink = MemoryAuditSink()
        trail = AuditTrail(sink, key=secrets.token_bytes(32))
        for event in events(trail):
            trail.append(event)
        checkpoint = trail.checkpoint()
        del sink.stored[-3:]  # the intruder removes the last events

        assert breach_scope(trail, actor="bob").trail_verified is True  # no anchor: unseen
        scope = breach_scope(trail, actor="bob", checkpoints=[checkpoint])

        assert scope.trail_verified is False
        assert "DID NOT VERIFY" in scope.to_markdown(now=FOUND)


class _Base(DeclarativeBase):
    pass


class _Client(_Base):
    __tablename__ = "br_clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    note: Mapped[str] = mapped_column(EncryptedString())


encrypt_rows(_Client, subject="id", subject_prefix="client:")


class TestRegisteredSubjectPrefix:
    """A key of a subject scope under a model's own prefix is a subject scope too."""

    def test_scoped_by_pseudonym_only(self, trail: AuditTrail, keyring: Keyring) -> None:
        keyring.cipher("client:2")
        (status,) = [s for s in keyring.status() if s.scope == "client:2"]
        assert status.key_id is not None

        scope = breach_scope(trail, key_id=status.key_id, keyring=keyring)

        assert f"client:{trail.pseudonym(2)}" == scope.criteria["key_scope"]
        assert {trail.pseudonym(2)} == scope.subjects
        assert "client:2" not in scope.to_json() + scope.to_markdown(now=FOUND)


class TestBareStrings:
    """A bare string for actions or outcomes is refused, not read as a set of letters."""

    @pytest.mark.parametrize("name", ["actions", "outcomes"])
    def test_refused(self, trail: AuditTrail, name: str) -> None:
        with pytest.raises(ConfigurationError, match=name):
            breach_scope(trail, actor="svc-export", **{name: "read"})


def service_events(trail: AuditTrail) -> list[AuditEvent]:
    """What the example service's @audited functions record: a read of a customer without
    ``fields``, a search naming no subject, plus a read that names its fields, a list event
    naming its subjects in ``extra["subjects"]`` and the library's ``subject.export``."""
    ps = trail.pseudonym
    return [
        AuditEvent(  # read_customer: the whole record, no fields recorded
            action="read",
            actor="eve",
            resource_type="customer",
            resource_id=ps(1),
            subject=ps(1),
            timestamp=at(1),
        ),
        AuditEvent(  # fields recorded: the e-mail was read
            action="read",
            actor="eve",
            resource_type="customer",
            resource_id=ps(2),
            subject=ps(2),
            fields=("email",),
            timestamp=at(2),
        ),
        AuditEvent(  # fields recorded, not the e-mail: not counted
            action="read",
            actor="eve",
            resource_type="customer",
            resource_id=ps(3),
            subject=ps(3),
            fields=("name",),
            timestamp=at(3),
        ),
        AuditEvent(  # find_by_email: a search naming no subject
            action="search", actor="eve", resource_type="customer", timestamp=at(4)
        ),
        AuditEvent(  # a list naming the subjects it returned (and one raw id: never shown)
            action="customer.list",
            actor="eve",
            resource_type="customer",
            extra={"subjects": [ps(4), ps(5), "raw-id-77"]},
            timestamp=at(5),
        ),
        AuditEvent(  # export_subject: every registered column of the subject, decrypted
            action="subject.export",
            actor="eve",
            resource_type="subject",
            subject=ps(6),
            fields=("Shopper.email", "Shopper.name"),
            timestamp=at(6),
        ),
        AuditEvent(  # another resource type: not counted
            action="read", actor="eve", resource_type="order", subject=ps(8), timestamp=at(7)
        ),
    ]


class TestInferredScope:
    """A column key's scope counts every event that could have decrypted the column; those
    counted by inference are marked (issue 15, item 4)."""

    def scope(self, keyring: Keyring, *, actions: list[str] | None = None) -> BreachScope:
        trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
        for event in service_events(trail):
            trail.append(event)
        key = keyring.keyset("customers.email").primary
        assert key is not None
        self.trail = trail
        return breach_scope(
            trail,
            key_id=key.key_id,
            keyring=keyring,
            resource_types={"customers": "customer"},
            actions=actions,
            discovered_at=FOUND,
        )

    def test_reads_without_fields_lists_and_exports_are_counted(self, keyring: Keyring) -> None:
        scope = self.scope(keyring)

        ps = self.trail.pseudonym
        assert 5 == scope.events
        assert frozenset(ps(i) for i in (1, 2, 4, 5, 6)) == scope.subjects
        assert frozenset(ps(i) for i in (1, 4, 5, 6)) == scope.inferred_subjects
        assert 4 == scope.inferred_events
        assert {"no fields recorded": 1, "list or search": 2, "subject export": 1} == dict(
            scope.inferred
        )
        assert 2 == scope.unnamed_events  # the search, and the raw id of the list
        assert {"customer.email": 1, "Shopper.email": 1, "Shopper.name": 1} == scope.fields
        assert {"customer.email": 4} == scope.inferred_fields

    def test_reported_in_every_form(self, keyring: Keyring) -> None:
        scope = self.scope(keyring)

        data = json.loads(scope.to_json())
        assert (5, 1, 4) == (
            data["subject_count"],
            data["exact_subject_count"],
            data["inferred_subject_count"],
        )
        assert sorted(scope.inferred_subjects) == data["inferred_subjects"]
        assert (4, 2) == (data["inferred_events"], data["unnamed_events"])
        text = scope.to_markdown(now=FOUND)
        assert "**Data subjects concerned:** 5 (1 exact, 4 by inference)" in text
        assert "**Events:** 5 (1 exact, 4 by inference)" in text
        assert "| list or search | 2 |" in text
        assert "2 events touched subjects they do not name" in text
        outputs = scope.to_json() + text + scope.to_json(include_identified=True)
        assert "raw-id-77" not in outputs

    def test_identified_subjects_are_marked(self, keyring: Keyring) -> None:
        trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
        for event in service_events(trail):
            trail.append(event)
        key = keyring.keyset("customers.email").primary
        assert key is not None

        scope = breach_scope(
            trail,
            key_id=key.key_id,
            keyring=keyring,
            resource_types={"customers": "customer"},
            candidates=[1, 2],
            discovered_at=FOUND,
        )

        text = scope.to_markdown(now=FOUND, include_identified=True)
        assert f"- 1 ({trail.pseudonym(1)}, by inference)" in text
        assert f"- 2 ({trail.pseudonym(2)})" in text

    def test_actions_still_restrict(self, keyring: Keyring) -> None:
        scope = self.scope(keyring, actions=["read"])

        assert (2, 1) == (scope.events, scope.inferred_events)

    def test_registered_export_is_exact_or_not_counted(self, keyring: Keyring) -> None:
        class Base(DeclarativeBase):
            pass

        class Shopper(Base):
            __tablename__ = "br_shoppers"
            id: Mapped[int] = mapped_column(primary_key=True)
            email: Mapped[str] = mapped_column(EncryptedString())
            name: Mapped[str] = mapped_column(EncryptedString())

        register_subject(Shopper, subject="id", name="BrShopper")
        trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
        for n, fields in enumerate([("BrShopper.email", "BrShopper.name"), ("BrShopper.name",)]):
            trail.append(
                AuditEvent(
                    action="subject.export",
                    resource_type="subject",
                    subject=trail.pseudonym(n),
                    fields=fields,
                    timestamp=at(n),
                )
            )
        key = keyring.keyset("br_shoppers.email").primary
        assert key is not None

        scope = breach_scope(trail, key_id=key.key_id, keyring=keyring, discovered_at=FOUND)

        assert (1, 0) == (scope.events, scope.inferred_events)
        assert frozenset({trail.pseudonym(0)}) == scope.subjects
        assert {"BrShopper.email": 1, "BrShopper.name": 1} == scope.fields

    def test_subject_key_matches_lists_naming_the_subject(self, keyring: Keyring) -> None:
        trail = AuditTrail(MemoryAuditSink(), key=secrets.token_bytes(32))
        for event in service_events(trail):
            trail.append(event)
        key = keyring.keyset("subject:5").primary
        assert key is not None

        scope = breach_scope(trail, key_id=key.key_id, keyring=keyring, discovered_at=FOUND)

        assert (1, frozenset({trail.pseudonym(5)})) == (scope.events, scope.subjects)
