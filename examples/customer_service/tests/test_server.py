"""The service under uvicorn, over real HTTP on 127.0.0.1, with 200 requests at once.

Every request holds one of the application's pooled connections (its session) while its
audit event is written: the audit trail must not need a second one from the same pool.
Runs on SQLite, PostgreSQL and MariaDB, the application's pool limited to 5 connections.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import securecustomer
import sqlalchemy as sa

EXAMPLE = Path(__file__).resolve().parents[1]
REPO_TESTS = EXAMPLE.parents[1] / "tests"
sys.path.insert(0, str(REPO_TESTS))  # dbservers: the library's real PostgreSQL and MariaDB

from dbservers import (  # noqa: E402
    ServerUnavailableError,
    ensure_mariadb,
    ensure_postgres,
    private_database,
)

AGENT = {"X-User": "alice", "X-Roles": "support_agent"}
ADMIN = {"X-User": "bob", "X-Roles": "admin"}
MARKETING = {"X-User": "mallory", "X-Roles": "marketing"}
POOL_SIZE = 5
REQUESTS = 200
ANSWER_WITHIN = 30.0  # seconds per request: a hung server fails the test, it does not hang it


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    ensure = ensure_postgres if request.param == "postgresql" else ensure_mariadb
    try:
        server = ensure()
    except ServerUnavailableError as exc:
        if "CI" in os.environ:
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(f"{exc}\n  (skipped because CI is not set; with CI set this fails)")
    with private_database(server) as url:
        yield url


@pytest.fixture
def server_settings(database_url: str, tmp_path: Path) -> Any:
    from customer_service import Settings
    from customer_service.startup import first_run

    sqlite = database_url.startswith("sqlite")
    settings = Settings(
        database_url=database_url,
        key_store_url=f"sqlite:///{tmp_path / 'keys.db'}" if sqlite else database_url,
        key_file=tmp_path / "master.key",
        audit_key=secrets.token_bytes(32),
        pool_size=POOL_SIZE,
    )
    first_run(settings)
    return settings


@pytest.fixture
def base_url(server_settings: Any, tmp_path: Path) -> Iterator[str]:
    """The service under uvicorn on a socket of 127.0.0.1 bound here (no port race)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    port = listener.getsockname()[1]
    source = str(Path(securecustomer.__file__).parents[1])  # the library these tests import
    env = os.environ.copy() | {
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), source, os.environ.get("PYTHONPATH", "")]),
        "CUSTOMER_SERVICE_DATABASE_URL": server_settings.database_url,
        "CUSTOMER_SERVICE_KEY_STORE_URL": server_settings.key_store_url,
        "CUSTOMER_SERVICE_KEY_FILE": str(server_settings.key_file),
        "CUSTOMER_SERVICE_AUDIT_KEY": server_settings.audit_key.hex(),
        "CUSTOMER_SERVICE_POOL_SIZE": str(POOL_SIZE),
    }
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "uvicorn", "--factory"]
        command += ["customer_service.app:app_from_env", "--fd", str(listener.fileno())]
        command += ["--log-level", "warning", "--no-access-log"]
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            cwd=EXAMPLE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=[listener.fileno()],
        )
    listener.close()  # the server holds its own copy
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log.read_text(errors="replace"))  # shown by pytest when the test failed


def call(base_url: str, method: str, path: str, **options: Any) -> httpx.Response:
    with httpx.Client(base_url=base_url, timeout=ANSWER_WITHIN) as client:
        for _ in range(100):  # the server may still be importing: the socket queues us
            try:
                return client.request(method, path, **options)
            except httpx.RemoteProtocolError:  # pragma: no cover - closed while starting
                continue
    raise AssertionError("the server never answered")  # pragma: no cover


async def fire(base_url: str, requests: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    """Send every request at once; an exception (no answer in time) stands for its response."""
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=ANSWER_WITHIN, limits=limits) as client:
        calls = [client.request(method, path, **options) for method, path, options in requests]
        return await asyncio.gather(*calls, return_exceptions=True)


class TestConcurrentRequests:
    """Requests holding a pooled connection each still get their audit event written."""

    def test_200_at_once_with_a_pool_of_5(self, base_url: str, server_settings: Any) -> None:
        from securecustomer.audit import AuditTrail, SqlAuditSink

        created = call(
            base_url,
            "POST",
            "/customers",
            json={"name": "Ada", "email": "a@x.io"},
            headers=AGENT | {"X-Request-Id": "setup-1"},
        )
        assert 201 == created.status_code, created.text
        customer = created.json()["id"]
        noted = call(
            base_url,
            "POST",
            f"/customers/{customer}/notes",
            json={"text": "hello"},
            headers=ADMIN | {"X-Request-Id": "setup-2"},
        )
        assert 201 == noted.status_code, noted.text

        requests: list[tuple[str, str, dict[str, Any]]] = []
        expected: dict[str, tuple[int, str]] = {}  # request id: status, audit outcome
        for n in range(REQUESTS):
            rid = f"load-{n}"
            kind = n % 5
            if kind in (0, 1):  # reads: the session holds a connection, then the audit
                requests.append(("GET", f"/customers/{customer}", {"headers": AGENT}))
                expected[rid] = (200, "success")
            elif kind == 2:  # writes, committed before the audit
                body = {"json": {"name": f"C{n}", "email": f"c{n}@x.io"}, "headers": AGENT}
                requests.append(("POST", "/customers", body))
                expected[rid] = (201, "success")
            elif kind == 3:
                body = {"json": {"text": f"note {n}"}, "headers": ADMIN}
                requests.append(("POST", f"/customers/{customer}/notes", body))
                expected[rid] = (201, "success")
            else:  # denied: the event of a refused attempt is recorded too
                requests.append(("GET", f"/customers/{customer}", {"headers": MARKETING}))
                expected[rid] = (403, "denied")
            requests[-1][2]["headers"] = requests[-1][2]["headers"] | {"X-Request-Id": rid}

        answers = asyncio.run(fire(base_url, requests))

        got = {
            rid: answer.status_code if isinstance(answer, httpx.Response) else repr(answer)
            for rid, answer in zip(expected, answers, strict=True)
        }
        wrong = {rid: status for rid, status in got.items() if status != expected[rid][0]}
        assert {} == wrong, (
            f"{len(wrong)} of {REQUESTS} answered wrongly: {Counter(wrong.values())}"
        )

        engine = sa.create_engine(server_settings.database_url)
        sink = SqlAuditSink(engine)
        try:
            trail = AuditTrail(sink, key=server_settings.audit_key)
            events = [record.event for record in sink.records()]
            report = trail.verify()
        finally:
            engine.dispose()  # the sink's own pool with it
        outcomes = {e["request_id"]: e["outcome"] for e in events if e["request_id"] in expected}
        assert {rid: outcome for rid, (_, outcome) in expected.items()} == outcomes
        assert REQUESTS + 2 == len(events)  # one event per request, the two set-up ones too
        assert report.ok, report
        assert REQUESTS + 2 == report.checked

        verified = call(base_url, "GET", "/audit/verify", headers=ADMIN)
        assert {"ok": True, "checked": REQUESTS + 2} == {
            key: verified.json()[key] for key in ("ok", "checked")
        }
