"""Every ORM and Core statement on encrypted columns, on SQLite, PostgreSQL and MariaDB.

Writes work whatever the ORM does around them (synchronizing the session, RETURNING,
merge); what SQL cannot answer on ciphertext is refused before anything reaches the
database. `CASES` is the table "What SQL can do with an encrypted column" of
docs/sqlalchemy.md: `TestOperatorTable` runs every row of it on every backend, and checks
that the page shows exactly these rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from securecustomer import Keyring
from securecustomer.exceptions import UnsupportedQueryError
from securecustomer.sqlalchemy import EncryptedString, default_keyring
from securecustomer.testing import memory_keyring

DOCS = Path(__file__).parents[2] / "docs" / "sqlalchemy.md"


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    keyring = memory_keyring()
    default_keyring.bind(keyring)
    yield keyring
    default_keyring.unbind()


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "people"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str | None] = mapped_column(EncryptedString())
    ssn: Mapped[str | None] = mapped_column(EncryptedString(deterministic=True))


PEOPLE = Person.__table__


@contextlib.contextmanager
def sql_sent(engine: sa.Engine) -> Iterator[list[str]]:
    """The statements the database received (executed) inside the block."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "after_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "after_cursor_execute", record)


def stored(engine: sa.Engine, person_id: int) -> tuple[bytes, str | None]:
    """The raw token of people.name and what it decrypts to."""
    with engine.connect() as conn:
        raw = conn.execute(
            sa.text("SELECT name FROM people WHERE id = :i"), {"i": person_id}
        ).scalar_one()
        value = conn.execute(sa.select(PEOPLE.c.name).where(PEOPLE.c.id == person_id)).scalar_one()
    return bytes(raw), value


def add_person(engine: sa.Engine, **values: Any) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Person(**values))
        session.commit()


STRATEGIES = ["auto", "evaluate", "fetch", False]


class TestOrmUpdate:
    """ORM-enabled UPDATE of a randomized column works with every synchronize_session
    strategy: the database holds the new value, and so does the object in the session."""

    @pytest.mark.parametrize("strategy", STRATEGIES)
    @pytest.mark.parametrize("where", ["id", "deterministic", "none"])
    def test_values(self, engine: sa.Engine, keyring: Keyring, strategy: Any, where: str) -> None:
        add_person(engine, id=1, name="old", ssn="s-1")
        statement = sa.update(Person).values(name="new")
        if where == "id":
            statement = statement.where(Person.id == 1)
        elif where == "deterministic":
            statement = statement.where(Person.ssn == "s-1")
        with Session(engine) as session:
            person = session.get(Person, 1)
            assert person is not None
            assert "old" == person.name
            session.execute(statement, execution_options={"synchronize_session": strategy})
            if strategy is not False:  # False leaves the session alone, by definition
                assert "new" == person.name
            session.commit()
            assert "new" == person.name  # expired by the commit, reloaded
        raw, value = stored(engine, 1)
        assert "new" == value
        assert b"new" not in raw

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_where_on_randomized_refused_before_sql(
        self, engine: sa.Engine, keyring: Keyring, strategy: Any
    ) -> None:
        add_person(engine, id=1, name="old")
        with (
            Session(engine) as session,
            sql_sent(engine) as sent,
            pytest.raises(UnsupportedQueryError, match="blind index"),
        ):
            session.execute(
                sa.update(Person).where(Person.name == "old").values(name="new"),
                execution_options={"synchronize_session": strategy},
            )
        assert [] == sent
        assert "old" == stored(engine, 1)[1]

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_transforming_set_refused_before_sql(
        self, engine: sa.Engine, keyring: Keyring, strategy: Any
    ) -> None:
        add_person(engine, id=1, name="old")
        with (
            Session(engine) as session,
            sql_sent(engine) as sent,
            pytest.raises(UnsupportedQueryError, match="blind index"),
        ):
            session.execute(
                sa.update(Person).where(Person.id == 1).values(name=sa.func.upper(Person.name)),
                execution_options={"synchronize_session": strategy},
            )
        assert [] == sent
        assert "old" == stored(engine, 1)[1]

    def test_bulk_update_by_primary_key(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="old")
        with Session(engine) as session:
            person = session.get(Person, 1)
            session.execute(sa.update(Person), [{"id": 1, "name": "new"}])
            session.commit()
            assert person is not None
            assert "new" == person.name
        assert "new" == stored(engine, 1)[1]

    def test_delete_synchronizes(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="old", ssn="s-1")
        with Session(engine) as session:
            session.get(Person, 1)
            session.execute(sa.delete(Person).where(Person.ssn == "s-1"))
            session.commit()
            assert session.get(Person, 1) is None


class TestReturning:
    """RETURNING an encrypted column gives the decrypted value."""

    def test_orm_insert(self, engine: sa.Engine, keyring: Keyring) -> None:
        if not engine.dialect.insert_returning:
            pytest.skip(f"{engine.dialect.name} has no INSERT ... RETURNING")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            name = session.execute(
                sa.insert(Person).values(id=1, name="new").returning(Person.name)
            ).scalar_one()
            session.commit()
        assert "new" == name
        assert "new" == stored(engine, 1)[1]

    def test_orm_bulk_insert(self, engine: sa.Engine, keyring: Keyring) -> None:
        if not engine.dialect.insert_returning:
            pytest.skip(f"{engine.dialect.name} has no INSERT ... RETURNING")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            people = session.scalars(
                sa.insert(Person).returning(Person, sort_by_parameter_order=True),
                [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "ssn": "s-2"}],
            ).all()
            assert [("a", None), ("b", "s-2")] == [(p.name, p.ssn) for p in people]
            session.commit()
        assert "b" == stored(engine, 2)[1]

    def test_core_insert(self, engine: sa.Engine, keyring: Keyring) -> None:
        if not engine.dialect.insert_returning:
            pytest.skip(f"{engine.dialect.name} has no INSERT ... RETURNING")
        Base.metadata.create_all(engine)
        with engine.begin() as conn:
            row = conn.execute(
                sa.insert(PEOPLE).values(id=1, name="new").returning(PEOPLE.c.name)
            ).one()
        assert ("new",) == tuple(row)

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_orm_update(self, engine: sa.Engine, keyring: Keyring, strategy: Any) -> None:
        if not engine.dialect.update_returning:
            pytest.skip(f"{engine.dialect.name} has no UPDATE ... RETURNING")
        add_person(engine, id=1, name="old")
        with Session(engine) as session:
            person = session.get(Person, 1)
            assert person is not None
            names = session.scalars(
                sa.update(Person)
                .where(Person.id == 1)
                .values(name="new")
                .returning(Person.name)
                .execution_options(synchronize_session=strategy)
            ).all()
            assert ["new"] == names
            if strategy is not False:
                assert "new" == person.name
            session.commit()
            assert "new" == person.name
        assert "new" == stored(engine, 1)[1]

    def test_core_update(self, engine: sa.Engine, keyring: Keyring) -> None:
        if not engine.dialect.update_returning:
            pytest.skip(f"{engine.dialect.name} has no UPDATE ... RETURNING")
        add_person(engine, id=1, name="old")
        with engine.begin() as conn:
            names = (
                conn.execute(
                    sa.update(PEOPLE)
                    .where(PEOPLE.c.id == 1)
                    .values(name="new")
                    .returning(PEOPLE.c.name)
                )
                .scalars()
                .all()
            )
        assert ["new"] == names


class TestMerge:
    """session.merge copies encrypted values in, whether the row is loaded or not."""

    def test_not_loaded(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="old")
        with Session(engine) as session:
            merged = session.merge(Person(id=1, name="new"))
            session.commit()
            assert "new" == merged.name
        assert "new" == stored(engine, 1)[1]

    def test_loaded(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="old")
        with Session(engine) as session:
            person = session.get(Person, 1)
            merged = session.merge(Person(id=1, name="new"))
            assert merged is person
            session.commit()
            assert "new" == merged.name
        assert "new" == stored(engine, 1)[1]

    def test_detached(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="old")
        with Session(engine) as session:
            person = session.get(Person, 1)
        assert person is not None
        person.name = "new"
        with Session(engine) as session:
            merged = session.merge(person)
            session.commit()
            assert "new" == merged.name
        assert "new" == stored(engine, 1)[1]

    def test_new_row(self, engine: sa.Engine, keyring: Keyring) -> None:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.merge(Person(id=2, name="new", ssn="s-2"))
            session.commit()
        assert "new" == stored(engine, 2)[1]


class TestOrmQueries:
    """ORM queries are checked like Core ones, in sync and async sessions."""

    def test_order_by_refused_before_sql(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="a")
        for statement in (
            sa.select(Person).order_by(Person.name),
            sa.select(Person).group_by(Person.name, Person.id).order_by(Person.ssn),
            sa.select(Person.ssn).where(sa.func.lower(Person.name) == "a"),
        ):
            with (
                Session(engine) as session,
                sql_sent(engine) as sent,
                pytest.raises(UnsupportedQueryError, match="decrypted values in Python"),
            ):
                session.scalars(statement).all()
            assert [] == sent

    def test_legacy_query(self, engine: sa.Engine, keyring: Keyring) -> None:
        add_person(engine, id=1, name="a")
        with Session(engine) as session, pytest.raises(UnsupportedQueryError, match="ORDER BY"):
            session.query(Person).order_by(Person.name).all()

    def test_refused_every_time(self, engine: sa.Engine, keyring: Keyring) -> None:
        """A refused statement is not remembered as checked: the compiled cache serves it
        again, and it is refused again."""
        add_person(engine, id=1, name="a")
        with Session(engine) as session:
            for _ in range(3):
                with pytest.raises(UnsupportedQueryError, match="ORDER BY"):
                    session.scalars(sa.select(Person).order_by(Person.name)).all()
            assert [1] == session.scalars(sa.select(Person.id).order_by(Person.id)).all()

    def test_entity_distinct_and_grouping_by_row(self, engine: sa.Engine, keyring: Keyring) -> None:
        """Deduplicating whole rows (their primary key is selected) stays allowed."""
        add_person(engine, id=1, name="a")
        add_person(engine, id=2, name="a")
        with Session(engine) as session:
            people = session.scalars(sa.select(Person).distinct()).all()
            assert [1, 2] == sorted(p.id for p in people)
            grouped = session.execute(
                sa.select(Person.id, Person.name, sa.func.count()).group_by(Person.id, Person.name)
            ).all()
            assert [(1, "a", 1), (2, "a", 1)] == sorted(tuple(row) for row in grouped)

    @pytest.mark.anyio
    async def test_async(self, async_engine: AsyncEngine, keyring: Keyring) -> None:
        async with async_engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with AsyncSession(async_engine) as session:
            session.add(Person(id=1, name="old"))
            await session.commit()
            person = await session.get(Person, 1)
            assert person is not None
            await session.execute(
                sa.update(Person).where(Person.id == 1).values(name="new"),
                execution_options={"synchronize_session": "evaluate"},
            )
            assert "new" == person.name
            await session.commit()
            with pytest.raises(UnsupportedQueryError, match="ORDER BY"):
                await session.scalars(sa.select(Person).order_by(Person.name))
        async with AsyncSession(async_engine) as session:
            assert "new" == (await session.get(Person, 1)).name  # type: ignore[union-attr]


# -- the operator table ---------------------------------------------------------------

Build = Callable[[sa.Table, Any], Any]
Rows = list[tuple[Any, ...]] | None  # None: runs, rows not compared (raw tokens)


class Case(NamedTuple):
    """One row of the table: a construct, what each kind of column does with it."""

    construct: str  # as the docs show it; ``c`` is the encrypted column
    randomized: str  # "allowed" or "refused"
    deterministic: str
    builds: tuple[tuple[Build, Rows], ...]  # statements and their rows on DATA
    note: str = ""


ID = sa.column("id")
NONE: Rows = None
#: (id, value) in both columns.
DATA = [(1, "b"), (2, "a"), (3, "b"), (4, None)]


def ids(*found: int) -> list[tuple[Any, ...]]:
    return [(i,) for i in found]


CASES = [
    Case(
        "`select(c)`, `insert`, `update`, `RETURNING`",
        "allowed",
        "allowed",
        ((lambda t, c: sa.select(c), [("a",), ("b",), ("b",), (None,)]),),
        "values are encrypted on the way in and decrypted on the way out",
    ),
    Case(
        "`c.is_(None)`, `c == None`",
        "allowed",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(c.is_(None)), ids(4)),
            (lambda t, c: sa.select(t.c.id).where(c == None), ids(4)),  # noqa: E711
        ),
        "NULL is stored as NULL",
    ),
    Case(
        "`c.is_not(None)`, `c != None`",
        "allowed",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(c.is_not(None)), ids(1, 2, 3)),
            (lambda t, c: sa.select(t.c.id).where(c != None), ids(1, 2, 3)),  # noqa: E711
        ),
        "",
    ),
    Case(
        "`func.count(c)`",
        "allowed",
        "allowed",
        ((lambda t, c: sa.select(sa.func.count(c)), [(3,)]),),
        "counts the values that are not NULL",
    ),
    Case(
        "`type_coerce(c, LargeBinary)`",
        "allowed",
        "allowed",
        ((lambda t, c: sa.select(sa.type_coerce(c, sa.LargeBinary)), NONE),),
        "the stored tokens, not decrypted: the deliberate way around every refusal",
    ),
    Case(
        "`c == v`, `c != v`, `v == c`",
        "refused",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(c == "b"), ids(1, 3)),
            (lambda t, c: sa.select(t.c.id).where(c != "b"), ids(2)),
            (lambda t, c: sa.select(t.c.id).where("b" == c), ids(1, 3)),
        ),
        "randomized: search through a blind index",
    ),
    Case(
        "`c.in_([...])`, `c.not_in([...])`",
        "refused",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(c.in_(["a", "z"])), ids(2)),
            (lambda t, c: sa.select(t.c.id).where(c.not_in(["a"])), ids(1, 3)),
        ),
        "",
    ),
    Case(
        "`tuple_(c, x) == (v, y)`, `tuple_(c, x).in_([...])`",
        "refused",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(sa.tuple_(c, t.c.id) == ("b", 3)), ids(3)),
            (
                lambda t, c: sa.select(t.c.id).where(
                    sa.tuple_(c, t.c.id).in_([("b", 1), ("a", 1)])
                ),
                ids(1),
            ),
        ),
        "",
    ),
    Case(
        "`c.is_distinct_from(v)`, `c.is_not_distinct_from(v)`",
        "refused",
        "allowed",
        (
            (lambda t, c: sa.select(t.c.id).where(c.is_distinct_from("b")), ids(2, 4)),
            (lambda t, c: sa.select(t.c.id).where(c.is_not_distinct_from("b")), ids(1, 3)),
        ),
        "",
    ),
    Case(
        "`group_by(c)`",
        "refused",
        "allowed",
        (
            (
                lambda t, c: sa.select(c, sa.func.count()).group_by(c),
                [("a", 1), ("b", 2), (None, 1)],
            ),
        ),
        "deterministic: equal values have equal tokens",
    ),
    Case(
        "`select(c).distinct()`, `func.count(c.distinct())`, `distinct(c)`",
        "refused",
        "allowed",
        (
            (lambda t, c: sa.select(c).distinct(), [("a",), ("b",), (None,)]),
            (lambda t, c: sa.select(sa.func.count(c.distinct())), [(2,)]),
            (lambda t, c: sa.select(sa.func.count(sa.distinct(c))), [(2,)]),
        ),
        "",
    ),
    Case(
        "`select(Model).distinct()`, `group_by(t.c.id, c)`: with the whole primary key",
        "allowed",
        "allowed",
        (
            (
                lambda t, c: sa.select(t.c.id, c).distinct(),
                [(1, "b"), (2, "a"), (3, "b"), (4, None)],
            ),
            (
                lambda t, c: sa.select(t.c.id, c, sa.func.count()).group_by(t.c.id, c),
                [(1, "b", 1), (2, "a", 1), (3, "b", 1), (4, None, 1)],
            ),
        ),
        "each token stands for its own row: deduplicates joined rows",
    ),
    Case(
        "`c == other.c` (a join on the encrypted column)",
        "refused",
        "allowed",
        (
            (
                lambda t, c: sa.select(t.c.id, (a := t.alias()).c.id).join(a, c == a.c[c.key]),
                [(1, 1), (1, 3), (2, 2), (3, 1), (3, 3)],
            ),
        ),
        "deterministic: a self-join (another column holds other tokens for a value)",
    ),
    Case(
        "`c < v`, `c <= v`, `c > v`, `c >= v`, `c.between(v, w)`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(t.c.id).where(c < "b"), NONE),
            (lambda t, c: sa.select(t.c.id).where(c <= "b"), NONE),
            (lambda t, c: sa.select(t.c.id).where(c > "b"), NONE),
            (lambda t, c: sa.select(t.c.id).where(c >= "b"), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.between("a", "b")), NONE),
        ),
        "tokens are not ordered like values",
    ),
    Case(
        "`c.like(p)`, `c.ilike(p)`, `c.startswith(v)`, `c.endswith(v)`, `c.contains(v)`, "
        "`c.regexp_match(p)`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(t.c.id).where(c.like("b%")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.ilike("b%")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.startswith("b")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.endswith("b")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.contains("b")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.regexp_match("b")), NONE),
        ),
        "",
    ),
    Case(
        "`c + v`, `c.concat(v)`, `c.collate(name)`, `c.op(...)`, other operators",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(c + "x"), NONE),
            (lambda t, c: sa.select(c.concat("x")), NONE),
            (lambda t, c: sa.select(c.collate("binary")), NONE),
            (lambda t, c: sa.select(t.c.id).where(c.op("=")("b")), NONE),
        ),
        "",
    ),
    Case(
        "`order_by(c)`, `c.asc()`, `c.desc()`, `asc(c)`, `desc(c)`, `c.nulls_first()`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(t.c.id).order_by(c), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(c.asc()), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(c.desc()), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(sa.asc(c)), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(sa.desc(c)), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(c.nulls_first()), NONE),
            (lambda t, c: sa.select(c.label("x")).order_by("x"), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(sa.nulls_last(c)), NONE),
            (
                lambda t, c: sa.select(t.c.id).where(
                    t.c.id.in_(sa.select(t.c.id).order_by(c).limit(2).scalar_subquery())
                ),
                NONE,
            ),
            (lambda t, c: sa.union(sa.select(c), sa.select(c)).order_by(c), NONE),
        ),
        "sort the decrypted values in Python",
    ),
    Case(
        "`over(order_by=c)`",
        "refused",
        "refused",
        ((lambda t, c: sa.select(sa.func.row_number().over(order_by=c)), NONE),),
        "",
    ),
    Case(
        "`over(partition_by=c)`",
        "refused",
        "allowed",
        (
            (
                lambda t, c: sa.select(t.c.id, sa.func.count().over(partition_by=c)),
                [(1, 2), (2, 1), (3, 2), (4, 1)],
            ),
        ),
        "",
    ),
    Case(
        "`func.min(c)`, `func.max(c)`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(sa.func.min(c)), NONE),
            (lambda t, c: sa.select(sa.func.max(c)), NONE),
        ),
        "",
    ),
    Case(
        "`func.lower(c)`, `func.upper(c)`, `func.length(c)`, `func.substr(c, ...)`, "
        "`func.coalesce(c, ...)`, any SQL function but `count`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(t.c.id).where(sa.func.lower(c) == "b"), NONE),
            (lambda t, c: sa.select(sa.func.upper(c)), NONE),
            (lambda t, c: sa.select(sa.func.length(c)), NONE),
            (lambda t, c: sa.select(sa.func.substr(c, 1, 2)), NONE),
            (lambda t, c: sa.select(sa.func.coalesce(c, "x")), NONE),
            (lambda t, c: sa.select(t.c.id).order_by(sa.func.lower(c)), NONE),
        ),
        "a function of a token is not a function of the value",
    ),
    Case(
        "`cast(c, ...)`, `extract(field, c)`",
        "refused",
        "refused",
        (
            (lambda t, c: sa.select(sa.cast(c, sa.String)), NONE),
            (lambda t, c: sa.select(sa.extract("year", c)), NONE),
        ),
        "",
    ),
    Case(
        "`literal_binds` (values rendered into the SQL text)",
        "refused",
        "refused",
        (
            (
                lambda t, c: sa.text(
                    str(
                        sa.insert(t)
                        .values({"id": 9, c.key: "x"})
                        .compile(compile_kwargs={"literal_binds": True})
                    )
                ),
                NONE,
            ),
        ),
        "values are only ever sent as bound parameters",
    ),
]


def operator_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "people_ops",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("r", EncryptedString()),
        sa.Column("d", EncryptedString(deterministic=True)),
    )


def docs_table(cases: list[Case]) -> str:
    """The table of docs/sqlalchemy.md, rendered from *cases*."""
    lines = [
        "| construct (`c` an encrypted column) | randomized (default) | `deterministic=True` "
        "| notes |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {case.construct} | {case.randomized} | {case.deterministic} | {case.note} |"
        for case in cases
    ]
    return "\n".join(lines) + "\n"


def _refusal_of(exc: BaseException) -> UnsupportedQueryError | None:
    """The UnsupportedQueryError *exc* is, or was raised from (a CompileError's cause)."""
    if isinstance(exc, UnsupportedQueryError):
        return exc
    if isinstance(exc, sa.exc.CompileError) and isinstance(exc.__cause__, UnsupportedQueryError):
        return exc.__cause__
    return None


class TestOperatorTable:
    """Every construct of the docs' table does what the table says, on every backend."""

    @pytest.mark.parametrize("mode", ["randomized", "deterministic"])
    def test_on_database(self, engine: sa.Engine, keyring: Keyring, mode: str) -> None:
        table = operator_table(sa.MetaData())
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{"id": i, "r": v, "d": v} for i, v in DATA])
        column = table.c.r if mode == "randomized" else table.c.d
        hint = "blind index" if mode == "randomized" else "deterministically"
        failures: list[str] = []
        for case in CASES:
            verdict = getattr(case, mode)
            for index, (build, expected) in enumerate(case.builds):
                where = f"{case.construct} [{index}] on {mode}"
                with sql_sent(engine) as sent:
                    try:
                        with engine.connect() as conn:
                            rows = conn.execute(build(table, column)).all()
                    except Exception as exc:  # collected, reported below
                        refusal = _refusal_of(exc)
                        if refusal is None or verdict != "refused":
                            failures.append(f"{where}: {type(exc).__name__}: {exc}")
                        elif hint not in str(refusal) and "literal" not in str(refusal):
                            failures.append(f"{where}: the error gives no way out: {refusal}")
                        if sent:
                            failures.append(f"{where}: refused after SQL was sent: {sent}")
                        continue
                if verdict == "refused":
                    failures.append(f"{where}: not refused, returned {rows!r}")
                elif expected is not None and sorted(expected, key=repr) != sorted(
                    (tuple(row) for row in rows), key=repr
                ):
                    failures.append(f"{where}: expected {expected!r}, got {rows!r}")
        assert not failures, "\n".join(failures)

    def test_docs_show_the_table(self) -> None:
        assert docs_table(CASES) in DOCS.read_text(encoding="utf-8")

    def test_refusals_name_the_column(self, keyring: Keyring) -> None:
        table = operator_table(sa.MetaData())
        with pytest.raises(UnsupportedQueryError, match=r"people_ops\.r .*blind index"):
            sa.select(table.c.id).where(table.c.r == "x")
        with pytest.raises(UnsupportedQueryError, match=r"people_ops\.d .*deterministically"):
            sa.select(table.c.id).where(table.c.d > "x")
