"""The inventory finds plaintext personal data under identifier names, in JSON and integer
columns, and special categories marked public; `assess` reports them too (issue 15, item
13). Sampling runs on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from models import engine_for

from securecustomer.privacy import DataInventory, assess, classify

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def found(inventory: DataInventory) -> set[tuple[str, str, str]]:
    return {(f.severity, f.code, f.where) for f in inventory.findings}


class TestNames:
    """Identifier names such as national_id and tax_id suggest government ids."""

    def test_identifier_names(self) -> None:
        metadata = sa.MetaData()
        sa.Table(
            "people",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("national_id", sa.String(20)),
            sa.Column("tax_id", sa.String(20)),
            sa.Column("driver_license", sa.String(20)),
        )

        findings = found(DataInventory.from_metadata(metadata, now=T0))

        for name in ("national_id", "tax_id", "driver_license"):
            assert ("medium", "unclassified-pii", f"people.{name}") in findings


class TestSpecialCategories:
    """Health, biometric and special category data is never public."""

    def metadata(self) -> sa.MetaData:
        metadata = sa.MetaData()
        sa.Table(
            "patients",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column(
                "diagnosis",
                sa.String(40),
                info=classify("health", sensitivity="public", retention="P1Y"),
            ),
            sa.Column("religion", sa.String(40), info=classify("special", sensitivity="internal")),
            sa.Column("tier", sa.String(10), info=classify("other", sensitivity="public")),
        )
        return metadata

    def test_understated_sensitivity(self) -> None:
        inventory = DataInventory.from_metadata(self.metadata(), now=T0)

        findings = found(inventory)
        assert ("high", "special-category-understated", "patients.diagnosis") in findings
        assert ("medium", "special-category-understated", "patients.religion") in findings
        assert not any(where == "patients.tier" for _, _, where in findings)

    def test_assess_reports_it(self) -> None:
        inventory = DataInventory.from_metadata(self.metadata(), now=T0)

        report = assess(inventory, now=T0)

        assert any(
            f.code == "special-category-understated" and f.where == "patients.diagnosis"
            for f in report.findings
        )


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    yield from engine_for(db_url)


class TestSampledTypes:
    """JSON and integer columns are sampled: JSON's string leaves, integers' digits."""

    def table(self) -> tuple[sa.MetaData, sa.Table]:
        metadata = sa.MetaData()
        table = sa.Table(
            "det_accounts",
            metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("profile", sa.JSON, nullable=True),
            sa.Column("settings", sa.JSON, nullable=True),
            sa.Column("mobile", sa.BigInteger, nullable=True),
            sa.Column("national_id", sa.BigInteger, nullable=True),
            sa.Column("ref", sa.BigInteger, nullable=True),
            sa.Column("amount_cents", sa.BigInteger, nullable=True),
        )
        return metadata, table

    def test_found_with_values(self, engine: sa.Engine) -> None:
        metadata, table = self.table()
        metadata.create_all(engine)
        rows = [
            {
                "id": n,
                "profile": {"contact": {"email": f"user{n}@example.org"}, "tags": ["vip"]},
                "settings": {"theme": "dark", "sizes": [1, 2]},
                "mobile": 4915112345670 + n,
                "national_id": 123456780 + n,
                "ref": 4111111111111111,
                "amount_cents": 1999 + n,
            }
            for n in range(1, 4)
        ]
        with engine.begin() as connection:
            connection.execute(table.insert(), rows)

        inventory = DataInventory.from_metadata(metadata, bind=engine, now=T0)

        findings = found(inventory)
        for name in ("profile", "mobile", "national_id", "ref"):
            assert ("high", "unclassified-pii", f"det_accounts.{name}") in findings, name
        assert not any(
            where in ("det_accounts.settings", "det_accounts.amount_cents", "det_accounts.id")
            for _, _, where in findings
        )
        text = inventory.to_json() + inventory.to_markdown()
        assert "user1@example.org" not in text
        assert "4915112345671" not in text
