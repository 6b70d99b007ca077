"""Real database servers for the SQL tests: reach them, start them if stopped, lend databases.

The CI machine has PostgreSQL (127.0.0.1:5432, trust auth) and MariaDB (127.0.0.1:3306, root with
no password) installed from Debian's packages and normally running. When one is down,
`ensure_postgres` / `ensure_mariadb` start it with that machine's own command (only as root and
only if its binaries are there), wait for it, and otherwise raise `ServerUnavailableError` naming
the server, its address, the command tried, what it printed and the end of the server's log.

    with private_database(ensure_postgres()) as url:   # a fresh `sc_test_<hex>` database
        engine = sqlalchemy.create_engine(url)          # ...dropped when the block ends
        async_engine = create_async_engine(async_url(url))

Set SECURECUSTOMER_TEST_POSTGRES_URL / SECURECUSTOMER_TEST_MARIADB_URL to use other servers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
MARIADB_URL = "mariadb+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mariadb": "asyncmy"}
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
MARIADB_LOG = Path("/var/log/mysql/error.log")
START_WAIT = 30.0


class ServerUnavailableError(RuntimeError):
    """A database server the tests need can be neither reached nor started."""


def ensure_postgres() -> str:
    """The URL of a running PostgreSQL server's `test` database, starting the server if needed."""
    etc = Path("/etc/postgresql")
    found = [p.name for p in etc.iterdir()] if etc.is_dir() else []
    versions = sorted((v for v in found if v.replace(".", "", 1).isdigit()), key=float)
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", *versions[-1:], "main", "start"]
    url = os.environ.get("SECURECUSTOMER_TEST_POSTGRES_URL", POSTGRES_URL)
    return ensure_server("PostgreSQL", url, command if versions else None)


def ensure_mariadb() -> str:
    """The URL of a running MariaDB server's `test` database, starting the server if needed."""
    command = ["start-stop-daemon", "--start", "--oknodo", "--background"]
    command += ["--exec", "/usr/sbin/mariadbd"]
    url = os.environ.get("SECURECUSTOMER_TEST_MARIADB_URL", MARIADB_URL)
    installed = Path("/usr/sbin/mariadbd").exists()
    return ensure_server("MariaDB", url, command if installed else None, log=MARIADB_LOG)


def ensure_server(
    name: str,
    url: str,
    start: Sequence[str] | None,
    wait: float = START_WAIT,
    log: Path | None = None,
) -> str:
    """Return `url` once `SELECT 1` works there; start the server with `start` if it doesn't.

    Raises `ServerUnavailableError` if it still doesn't after `wait` seconds, quoting what
    `start` printed and the last lines of the server's `log`.
    """
    error = try_connect(url)
    if error is None:
        return url
    host = sa.make_url(url).host or "localhost"
    if start is None:
        raise unavailable_error(name, url, error, None, "not installed on this machine")
    why_not = _why_not_start(host, start[0])
    if why_not:
        raise unavailable_error(name, url, error, start, why_not)
    try:
        done = subprocess.run(start, capture_output=True, text=True, timeout=wait, check=False)
        output = f"exit status {done.returncode}: {(done.stdout + done.stderr).strip()}"
    except subprocess.TimeoutExpired as exc:
        output = f"still running after {exc.timeout:g} s"
    deadline = time.monotonic() + wait
    while (error := try_connect(url)) is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    if error is not None:
        output += f"; waited {wait:g} s"
        if log is not None and log.is_file():
            lines = log.read_text(errors="replace").splitlines()[-5:]
            output += "".join(f"\n    {log}: {line}" for line in lines)
        raise unavailable_error(name, url, error, start, output)
    return url


def _why_not_start(host: str, program: str) -> str | None:
    if host not in LOCAL_HOSTS:
        return f"not run: {host} is not this machine"
    if os.geteuid() != 0:
        return "not run: only root may start it"
    if shutil.which(program) is None:
        return f"not run: {program} is not on PATH"
    return None


def try_connect(url: str) -> str | None:
    """None if `SELECT 1` works at `url` within a few seconds, else the driver's error."""
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.DBAPIError as exc:
        return " ".join(str(exc.orig).split())
    finally:
        engine.dispose()
    return None


def unavailable_error(
    name: str, url: str, error: str, command: Sequence[str] | None, outcome: str
) -> ServerUnavailableError:
    """The error that says which server is missing, where, and what was done about it."""
    parsed = sa.make_url(url)
    tried = " ".join(command) if command else "none"
    return ServerUnavailableError(
        f"{name} is not reachable at {parsed.host}:{parsed.port} "
        f"({parsed.render_as_string(hide_password=True)}): {error}\n"
        f"  start command: {tried}\n"
        f"  outcome: {outcome}"
    )


@contextmanager
def private_database(server_url: str) -> Iterator[str]:
    """Create a fresh `sc_test_<hex>` database on that server; yield its URL; drop it after."""
    url = sa.make_url(server_url)
    name = f"sc_test_{secrets.token_hex(4)}"
    force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
    admin = sa.create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        admin.dispose()


def reset_database(url: str) -> None:
    """Drop everything the tests made in that database, leaving it empty; close engines first."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{parsed.database}{suffix}").unlink(missing_ok=True)
        return
    statements = {
        "postgresql": [
            "SET lock_timeout = '10s'",
            "DROP SCHEMA public CASCADE",
            "CREATE SCHEMA public",
        ],
        "mariadb": [
            "SET SESSION lock_wait_timeout = 10",
            f"DROP DATABASE {parsed.database}",
            f"CREATE DATABASE {parsed.database}",
        ],
    }[backend]
    engine = sa.create_engine(parsed, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def async_url(url: str) -> str:
    """The same database through the asyncio driver: aiosqlite, asyncpg or asyncmy."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    return parsed.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}").render_as_string(
        hide_password=False
    )
