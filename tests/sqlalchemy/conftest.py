"""Engines on real SQLite, PostgreSQL and MariaDB databases, each test starting from an empty one.

- `db_url` (session, parametrized `sqlite` / `postgresql` / `mariadb`): the URL of a private
  database made for this test session; also as `sqlite_url`, `postgresql_url`, `mariadb_url`.
- `engine` (function): a sync `Engine` on `db_url`; afterwards it is disposed and the database
  emptied (every table, view, type and sequence dropped), so tests create their own tables.
- `async_engine` (function): the same through aiosqlite, asyncpg or aiomysql; async tests carry
  `@pytest.mark.anyio` (anyio's pytest plugin runs them on asyncio).

A server that is down is started (see `dbservers`); one that can't be reached fails its tests
when CI is set, and skips them with the reason otherwise.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import sqlalchemy as sa
from dbservers import (
    ServerUnavailableError,
    async_url,
    ensure_mariadb,
    ensure_postgres,
    private_database,
    reset_database,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BACKENDS = ["sqlite", "postgresql", "mariadb"]


def _server(ensure: Callable[[], str]) -> str:
    try:
        return ensure()
    except ServerUnavailableError as exc:
        if "CI" in os.environ:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"{exc}\n  (skipped because CI is not set; with CI set this fails)")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite+pysqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    with private_database(_server(ensure_postgres)) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    with private_database(_server(ensure_mariadb)) as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()
        reset_database(db_url)


@pytest.fixture
async def async_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(async_url(db_url))
    try:
        yield engine
    finally:
        await engine.dispose()
        reset_database(db_url)
