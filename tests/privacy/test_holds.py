"""Legal holds in a SQL table, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from models import LEDGER_KEY, T0, engine_for

from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy import LegalHold, LegalHolds, legal_hold_table


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


class Clock:
    """A clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1, microseconds=250)
        return self.now


@pytest.fixture
def holds(engine: sa.Engine) -> LegalHolds:
    holds = LegalHolds(engine, key=LEDGER_KEY, clock=Clock())
    holds.create()
    holds.create()  # a second create is harmless
    return holds


class TestLegalHolds:
    """Holds are placed, found, released and kept."""

    def test_place_and_release(self, holds: LegalHolds) -> None:
        hold = holds.place(42, matter="case 2026-17", placed_by="dpo@example.com")
        assert 16 == len(hold.id)
        assert hold.active
        assert (hold,) == holds.active("42")
        released = holds.release(hold.id)
        assert not released.active
        assert T0 + dt.timedelta(seconds=2, microseconds=500) == released.released_at
        assert () == holds.active(42)
        assert (released,) == holds.all()
        assert released == holds.release(hold.id)  # releasing twice changes nothing

    def test_subject_ids_match_exactly(self, holds: LegalHolds) -> None:
        """A case-insensitive collation (MariaDB's default) never lends a hold to another
        subject."""
        other = holds.place("ALICE", matter="case")
        with pytest.raises(ConfigurationError, match="white space"):
            holds.place("bob ", matter="case")  # refused, not stored under a second spelling
        assert () == holds.active("alice")
        assert frozenset() == holds.held(["alice", "bob"])
        assert (other,) == holds.active("ALICE")
        assert frozenset({"ALICE"}) == holds.held(["ALICE", "alice"])

    def test_held_many(self, holds: LegalHolds) -> None:
        holds.place(1, matter="a")
        holds.place(1, matter="b")
        released = holds.place(2, matter="c")
        holds.release(released.id)
        holds.place(700, matter="d")
        assert frozenset({"1", "700"}) == holds.held(range(1001))
        assert frozenset() == holds.held([])

    def test_times_round_trip_as_utc(self, holds: LegalHolds) -> None:
        hold = holds.place("ada", matter="m")
        (stored,) = holds.all()
        assert hold == stored
        assert dt.UTC == stored.placed_at.tzinfo

    def test_unknown_release(self, holds: LegalHolds) -> None:
        with pytest.raises(KeyError, match="no legal hold"):
            holds.release("0000")

    @pytest.mark.parametrize("subject", [None, True, "", "x" * 256])
    def test_bad_subject(self, holds: LegalHolds, subject: object) -> None:
        with pytest.raises(ConfigurationError, match="subject id"):
            holds.place(subject, matter="m")

    def test_needs_matter_and_aware_clock(self, engine: sa.Engine) -> None:
        holds = LegalHolds(
            engine, key=LEDGER_KEY, table="naive_holds", clock=lambda: dt.datetime(2026, 1, 1)
        )
        holds.create()
        with pytest.raises(ConfigurationError, match="matter"):
            holds.place(1, matter=" ")
        with pytest.raises(ConfigurationError, match="timezone-aware"):
            holds.place(1, matter="m")
        assert () == holds.all()

    def test_repr_hides_subject(self) -> None:
        hold = LegalHold("ab", "secret-subject", "m", None, T0)
        assert "secret-subject" not in repr(hold)
        assert "secret-subject" == hold.to_dict()["subject_id"]

    def test_table_for_metadata(self) -> None:
        metadata = sa.MetaData()
        table = legal_hold_table(metadata, "holds")
        assert [
            "id",
            "subject_id",
            "matter",
            "placed_by",
            "placed_at",
            "released_at",
            "releases",
            "seq",
            "prev",
            "hash",
        ] == [c.name for c in table.columns]
        assert table is metadata.tables["holds"]
