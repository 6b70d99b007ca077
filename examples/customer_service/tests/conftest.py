"""Fixtures: the app on a fresh SQLite database and key file in a temporary directory."""

from __future__ import annotations

import secrets
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    # Starlette 1.10 prefers the httpx2 package for its TestClient and warns when only httpx
    # is installed; either works for these tests.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

# The example is an application, not an installed package: import it from its directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    # Imported here, not at the top: the example's models register themselves with
    # securecustomer.privacy when imported, and the library's own tests (run first in the
    # same process) must not see them.
    from customer_service import Settings
    from customer_service.startup import first_run

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'app.db'}",
        key_store_url=f"sqlite:///{tmp_path / 'keys.db'}",
        key_file=tmp_path / "master.key",
        audit_key=secrets.token_bytes(32),
    )
    assert first_run(settings) is True
    return settings


@pytest.fixture
def client(settings: Any) -> Iterator[TestClient]:
    from customer_service import create_app

    with TestClient(create_app(settings)) as client:  # runs the lifespan
        yield client


@pytest.fixture
def audit_events(settings: Any) -> Any:
    """A function returning every stored audit event, oldest first."""
    from securecustomer.audit import SqlAuditSink

    def read() -> list[dict[str, Any]]:
        engine = sa.create_engine(settings.database_url)
        try:
            return [dict(record.event) for record in SqlAuditSink(engine).records()]
        finally:
            engine.dispose()

    return read
