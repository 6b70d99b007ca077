"""Retention rules applied in batches, with dry runs, legal holds and audit events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from models import (
    LEDGER_KEY,
    T0,
    Models,
    actions,
    engine_for,
    keyring_bound,
    make_models,
    memory_trail,
)
from sqlalchemy.orm import Session

from securecustomer import Keyring
from securecustomer.audit import AuditTrail
from securecustomer.exceptions import ConfigurationError, LegalHoldError
from securecustomer.privacy import (
    NO_LEGAL_HOLDS,
    LegalHolds,
    RetentionReport,
    RetentionRule,
    RuleOutcome,
    apply_retention,
)

NOW = T0 + dt.timedelta(days=100)
DAY = dt.timedelta(days=1)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    yield from keyring_bound()


@pytest.fixture
def trail() -> AuditTrail:
    return memory_trail()


@pytest.fixture
def models(engine: sa.Engine, keyring: Keyring) -> Models:
    """Customers 1-5 created 100 days ago (naive UTC), 6-7 a day ago; two orders each,
    placed 99 and 5 days ago."""
    models = make_models()
    models.create(engine)
    with Session(engine) as session:
        for i in range(1, 8):
            created = (NOW - (100 * DAY if i <= 5 else DAY)).replace(tzinfo=None)
            session.add(
                models.customer(id=i, email=f"c{i}@x.org", name=f"N{i}", created_at=created)
            )
        session.flush()
        for i in range(1, 8):
            for age in (99, 5):
                placed = (NOW - age * DAY).date()
                session.add(models.order(customer_id=i, address=f"A{i}", placed_on=placed))
        session.commit()
    return models


def order_rule(models: Models, **kwargs: Any) -> RetentionRule:
    return RetentionRule(
        models.order, age_column="placed_on", max_age=30 * DAY, subject="customer_id", **kwargs
    )


def customer_rule(models: Models) -> RetentionRule:
    return RetentionRule(
        models.customer,
        age_column="created_at",
        max_age=30 * DAY,
        action="anonymize",
        subject="id",
        anonymize={"name": lambda _: "anon", "country": None},
        anonymized_marker="anonymized",
        name="stale customers",
    )


def run(engine: sa.Engine, rules: list[RetentionRule], **kwargs: Any) -> RetentionReport:
    kwargs.setdefault("holds", NO_LEGAL_HOLDS)
    with Session(engine) as session:
        return apply_retention(session, rules, **kwargs)


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


class TestRetention:
    """Expired rows are deleted or anonymized a batch at a time; held rows stay."""

    def test_dry_run(self, engine: sa.Engine, models: Models) -> None:
        report = run(engine, [order_rule(models)], now=NOW, batch_size=3, dry_run=True)
        assert (
            RetentionReport(
                dry_run=True,
                ran_at=NOW,
                outcomes=(RuleOutcome("Order", 7, 7, 0, 0, 3, NOW - 30 * DAY),),
            )
            == report
        )
        assert 14 == count(engine, "SELECT COUNT(*) FROM orders")
        assert "| Order |" in report.to_markdown()

    def test_delete_in_batches_with_holds(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(2, matter="case")
        holds.place(3, matter="case")
        report = run(engine, [order_rule(models)], now=NOW, batch_size=2, holds=holds, trail=trail)
        (outcome,) = report.outcomes
        assert (7, 5, 2) == (outcome.expired, outcome.deleted, outcome.held)
        assert outcome.batches in (3, 4)  # 4 selections of 2; held rows may fill one
        with engine.connect() as conn:
            old = conn.execute(
                sa.select(models.order.customer_id).where(
                    models.order.placed_on < (NOW - 30 * DAY).date()
                )
            ).scalars()
            assert [2, 3] == sorted(old)
        assert 9 == count(engine, "SELECT COUNT(*) FROM orders")
        assert ["retention.delete"] * outcome.batches == actions(trail)
        events = [r.event for r in trail.sink.records()]
        assert [5] == [sum(e["extra"]["rows"] for e in events)]
        assert {None} == {e["subject"] for e in events}
        assert {"orders"} == {e["resource_type"] for e in events}
        assert trail.verify().ok

    def test_anonymize_with_marker(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        report = run(engine, [customer_rule(models)], now=NOW, batch_size=2, trail=trail)
        assert (5, 0, 5, 3) == (
            report.outcomes[0].expired,
            report.outcomes[0].deleted,
            report.outcomes[0].anonymized,
            report.outcomes[0].batches,
        )
        with Session(engine) as session:
            rows = session.scalars(sa.select(models.customer).order_by(models.customer.id)).all()
            assert ["anon"] * 5 + ["N6", "N7"] == [r.name for r in rows]
            assert [None] * 5 == [r.country for r in rows[:5]]
            assert [None] * 5 == [r.email_index for r in rows[:5]]
            assert "c1@x.org" == rows[0].email  # not listed: kept
            assert [True] * 5 + [False] * 2 == [r.anonymized for r in rows]
        again = run(engine, [customer_rule(models)], now=NOW, trail=trail)
        assert 0 == again.outcomes[0].expired
        assert ["retention.anonymize"] * 3 == actions(trail)

    def test_anonymize_sealed_values(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        rule = order_rule(models, action="anonymize", anonymize={"address": lambda _: "gone"})
        first = run(engine, [rule], now=NOW, trail=trail)
        assert 7 == first.outcomes[0].anonymized
        with Session(engine) as session:
            orders = session.scalars(sa.select(models.order).order_by(models.order.placed_on))
            addresses = [o.address for o in orders]
        assert ["gone"] * 7 == addresses[:7]
        assert {f"A{i}" for i in range(1, 8)} == set(addresses[7:])
        second = run(engine, [rule], now=NOW, trail=trail)
        assert (7, 0) == (second.outcomes[0].expired, second.outcomes[0].anonymized)
        assert ["retention.anonymize", "retention.anonymize"] == actions(trail)

    def test_failed_batch_rolled_back(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        def boom(value: object) -> object:
            raise RuntimeError("boom")

        rule = order_rule(models, action="anonymize", anonymize={"address": boom})
        with pytest.raises(RuntimeError, match="boom"):
            run(engine, [rule], now=NOW, trail=trail)
        with Session(engine) as session:
            addresses = {o.address for o in session.scalars(sa.select(models.order))}
        assert {f"A{i}" for i in range(1, 8)} == addresses
        assert [] == actions(trail)

    def test_refused_before_any_change(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        good = order_rule(models)
        bad = RetentionRule(models.customer, age_column="email", max_age=DAY)
        with pytest.raises(ConfigurationError, match=r"Customer\.email is not a plain date"):
            run(engine, [good, bad], now=NOW, trail=trail)
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            run(engine, [good], now=NOW.replace(tzinfo=None), trail=trail)
        with pytest.raises(ConfigurationError, match="no audit trail"):
            run(engine, [good], now=NOW)
        with pytest.raises(ConfigurationError, match="batch_size"):
            run(engine, [good], now=NOW, batch_size=0, trail=trail)
        assert 14 == count(engine, "SELECT COUNT(*) FROM orders")
        assert [] == actions(trail)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"age_column": "nope"}, "no column attribute 'nope'"),
            ({"action": "archive"}, "action must be"),
            ({"max_age": dt.timedelta(0)}, "positive"),
            ({"anonymize": {"name": None}}, 'needs action="anonymize"'),
            ({"action": "anonymize", "anonymize": {"email_index": None}}, "blind index"),
        ],
    )
    def test_rule_checks(self, kwargs: dict[str, object], message: str) -> None:
        models = make_models()
        settings: dict[str, object] = {"age_column": "created_at", "max_age": DAY, **kwargs}
        rule = RetentionRule(models.customer, **settings)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match=message):
            apply_retention(Session(), [rule], now=NOW, dry_run=True, holds=NO_LEGAL_HOLDS)


class TestRetentionHolds:
    """Legal holds are never skipped silently, nor raced past."""

    def test_holds_required(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        for dry_run in (True, False):
            with Session(engine) as session, pytest.raises(ConfigurationError, match="holds="):
                apply_retention(session, [order_rule(models)], now=NOW, dry_run=dry_run)
        assert 14 == count(engine, "SELECT COUNT(*) FROM orders")
        assert [] == actions(trail)

    def test_holds_that_do_not_verify_stop_it(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        holds.place(2, matter="case")
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE securecustomer_legal_holds SET released_at = placed_at"))
        with pytest.raises(LegalHoldError, match="does not verify"):
            run(engine, [order_rule(models)], now=NOW, holds=holds, trail=trail)
        assert 14 == count(engine, "SELECT COUNT(*) FROM orders")
        assert [] == actions(trail)

    def test_holds_need_a_subject(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        holds = LegalHolds(engine, key=LEDGER_KEY)
        holds.create()
        rule = RetentionRule(models.order, age_column="placed_on", max_age=30 * DAY)
        with pytest.raises(ConfigurationError, match="names no subject"):
            run(engine, [order_rule(models), rule], now=NOW, holds=holds, trail=trail)
        assert 14 == count(engine, "SELECT COUNT(*) FROM orders")
        assert [] == actions(trail)

    def test_hold_placed_during_the_batch(
        self, engine: sa.Engine, models: Models, trail: AuditTrail
    ) -> None:
        class LateHolds(LegalHolds):
            """Places a hold on subject 2 right after the first check has found none."""

            def held(self, subject_ids: Any) -> frozenset[str]:
                found = super().held(subject_ids)
                if not self.all():
                    self.place(2, matter="late case")
                return found

        holds = LateHolds(engine, key=LEDGER_KEY)
        holds.create()
        report = run(engine, [order_rule(models)], now=NOW, holds=holds, trail=trail)
        (outcome,) = report.outcomes
        assert (7, 6, 1) == (outcome.expired, outcome.deleted, outcome.held)
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT customer_id FROM orders")).scalars()
            assert [1, 2, 2, 3, 4, 5, 6, 7] == sorted(kept)


class TestCutoff:
    """A row exactly max_age old is kept; one a microsecond older is expired."""

    def test_boundary(self, engine: sa.Engine, models: Models, trail: AuditTrail) -> None:
        cutoff = (NOW - 30 * DAY).replace(tzinfo=None)
        with Session(engine) as session:
            session.add(models.customer(id=20, name="edge", created_at=cutoff))
            session.add(
                models.customer(id=21, name="past", created_at=cutoff - dt.timedelta(seconds=1))
            )
            session.commit()
        report = run(engine, [customer_rule(models)], now=NOW, trail=trail)
        assert 6 == report.outcomes[0].anonymized
        with Session(engine) as session:
            assert "edge" == session.get(models.customer, 20).name
            assert "anon" == session.get(models.customer, 21).name
