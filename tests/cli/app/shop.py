"""A shop for the privacy command tests: the `app` package's tables in SQLite, a master key
file, a JSON key store and a JSON-lines audit trail whose key is in an environment variable.
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.models import Base, Parcel, Shopper
from securecustomer import Keyring, LocalKeyProvider
from securecustomer.audit import AuditTrail, JsonlAuditSink
from securecustomer.cli import main
from securecustomer.keys import FileKeyStore
from securecustomer.sqlalchemy import default_keyring

APP_DIR = str(Path(__file__).parent.parent)
TRAIL_KEY = secrets.token_bytes(32)
TRAIL_ENV = "CLI_TEST_AUDIT_KEY"
OLD = dt.datetime(2020, 1, 1)
SHOPPERS = (1, 2, 3)


@attrs.frozen
class Shop:
    directory: Path
    url: str
    key_file: Path
    store_file: Path
    trail_file: Path

    def keyring(self) -> Keyring:
        return Keyring(
            LocalKeyProvider.from_file(self.key_file), FileKeyStore(self.store_file)
        ).load()

    def trail(self) -> AuditTrail:
        return AuditTrail(JsonlAuditSink(self.trail_file), key=TRAIL_KEY)

    def key_args(self) -> list[str]:
        return ["--key-file", str(self.key_file), "--key-store-file", str(self.store_file)]

    def trail_args(self) -> list[str]:
        return ["--audit-jsonl", str(self.trail_file), "--audit-key-env", TRAIL_ENV]

    def actions(self) -> list[str]:
        return [record.event["action"] for record in self.trail().sink.records()]

    def count(self, table: str, where: str = "1 = 1") -> int:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                sql = sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}")  # noqa: S608
                return int(conn.execute(sql).scalar_one())
        finally:
            engine.dispose()

    def emails(self) -> dict[int, str]:
        engine = sa.create_engine(self.url)
        default_keyring.bind(self.keyring())
        try:
            with Session(engine) as session:
                return {s.id: s.email for s in session.scalars(sa.select(Shopper))}
        finally:
            default_keyring.unbind()
            engine.dispose()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shop:
    monkeypatch.setenv(TRAIL_ENV, TRAIL_KEY.hex())
    key_file = tmp_path / "master.key"
    LocalKeyProvider.create_key_file(key_file)
    shop = Shop(
        tmp_path,
        f"sqlite:///{tmp_path / 'shop.db'}",
        key_file,
        tmp_path / "keys.json",
        tmp_path / "audit.jsonl",
    )
    engine = sa.create_engine(shop.url)
    default_keyring.bind(shop.keyring())
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            for i in SHOPPERS:
                session.add(
                    Shopper(id=i, email=f"s{i}@example.com", passport=f"X{i}", phone="+41 79 1")
                )
            session.flush()
            for i in SHOPPERS:
                session.add(Parcel(shopper_id=i, address=f"{i} Old Road", sent_at=OLD))
                session.add(Parcel(shopper_id=i, address=f"{i} New Road"))
            session.commit()
    finally:
        default_keyring.unbind()
        engine.dispose()
    return shop


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(args)
    out, err = capsys.readouterr()
    return status, out, err
