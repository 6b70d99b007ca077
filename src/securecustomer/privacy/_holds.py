"""Legal holds: a subject's records that must not be erased or deleted while a matter runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import attrs
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Engine

__all__ = ["LegalHold", "LegalHolds", "legal_hold_table"]


@attrs.frozen
class LegalHold:
    """One hold on one subject's records."""

    id: str
    subject_id: str
    matter: str
    placed_by: str | None
    placed_at: dt.datetime
    released_at: dt.datetime | None = None

    @property
    def active(self) -> bool:
        raise NotImplementedError


def legal_hold_table(metadata: MetaData, name: str = "securecustomer_legal_holds") -> Table:
    """The table `LegalHolds` keeps its holds in (for Alembic or ``metadata.create_all``)."""
    raise NotImplementedError


class LegalHolds:
    """Legal holds in a SQL table of the application's database.

    Example:
        ```python
        holds = LegalHolds(engine)
        holds.create()
        hold = holds.place(42, matter="case 2026-17", placed_by="dpo@example.com")
        holds.release(hold.id)
        ```
    """

    def __init__(
        self,
        engine: Engine,
        *,
        table: str = "securecustomer_legal_holds",
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        raise NotImplementedError

    def create(self) -> None:
        """Create the table if it does not exist."""
        raise NotImplementedError

    def place(self, subject_id: object, *, matter: str, placed_by: str | None = None) -> LegalHold:
        raise NotImplementedError

    def release(self, hold_id: str) -> LegalHold:
        """Release a hold (kept, with its release time); `KeyError` for an unknown id."""
        raise NotImplementedError

    def active(self, subject_id: object) -> tuple[LegalHold, ...]:
        raise NotImplementedError

    def held(self, subject_ids: Iterable[object]) -> frozenset[str]:
        """Which of *subject_ids* (as strings) have an active hold: one query per 500 ids."""
        raise NotImplementedError

    def all(self) -> tuple[LegalHold, ...]:
        raise NotImplementedError
