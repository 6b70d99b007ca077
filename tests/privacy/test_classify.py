"""Column classification: the info dict, its validation, reading it back, suggestions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from securecustomer.exceptions import ConfigurationError
from securecustomer.privacy import CATEGORIES, Classification, Sensitivity, classification_of
from securecustomer.privacy import classify as classify_
from securecustomer.privacy._classify import INFO_KEY, sample_shares, suggest_category


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "classify_people"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(info=classify_("contact", retention="P2Y"))
    note: Mapped[str | None]


def classify(category: str, **keys: Any) -> Classification:
    """The classification `classify` puts into an info dict."""
    found = classify_(category, **keys)[INFO_KEY]
    assert isinstance(found, Classification)
    return found


class TestClassify:
    """classify() builds a validated Classification under the info key."""

    def test_full(self) -> None:
        expected = Classification(
            "contact",
            Sensitivity.RESTRICTED,
            ("service", "marketing"),
            dt.timedelta(days=730),
            "billing address",
        )
        actual = classify(
            "contact",
            sensitivity="restricted",
            purposes=["service", "marketing", "service"],
            retention="P2Y",
            description="billing address",
        )
        assert expected == actual

    @pytest.mark.parametrize(
        ("category", "expected"),
        [
            ("health", Sensitivity.RESTRICTED),
            ("credentials", Sensitivity.RESTRICTED),
            ("financial", Sensitivity.RESTRICTED),
            ("government_id", Sensitivity.RESTRICTED),
            ("contact", Sensitivity.CONFIDENTIAL),
            ("identifier", Sensitivity.CONFIDENTIAL),
        ],
    )
    def test_default_sensitivity(self, category: str, expected: Sensitivity) -> None:
        assert expected == classify(category).sensitivity

    def test_sensitivity_enum_or_name(self) -> None:
        assert Sensitivity.PUBLIC == classify("other", sensitivity=Sensitivity.PUBLIC).sensitivity
        assert Sensitivity.INTERNAL == classify("other", sensitivity="Internal").sensitivity

    def test_every_category_is_accepted(self) -> None:
        assert CATEGORIES == {classify(category).category for category in CATEGORIES}

    @pytest.mark.parametrize(
        ("text", "days"),
        [("P30D", 30), ("P4W", 28), ("P6M", 180), ("P2Y", 730), ("P1Y6M", 545), ("p1y2w3d", 382)],
    )
    def test_iso_durations(self, text: str, days: int) -> None:
        assert dt.timedelta(days=days) == classify("contact", retention=text).retention

    def test_timedelta_retention(self) -> None:
        assert (
            dt.timedelta(hours=36)
            == classify("contact", retention=dt.timedelta(hours=36)).retention
        )

    def test_no_retention(self) -> None:
        assert None is classify("contact").retention


class TestClassifyErrors:
    """Bad input raises ConfigurationError naming the value and what is allowed."""

    def test_unknown_category_suggests(self) -> None:
        with pytest.raises(ConfigurationError, match=r"'contcat' \(did you mean 'contact'\?\)"):
            classify_("contcat")

    def test_unknown_category_lists_known(self) -> None:
        with pytest.raises(ConfigurationError, match="known: behavioral, biometric, contact"):
            classify_("nonsense")

    def test_unknown_sensitivity(self) -> None:
        with pytest.raises(ConfigurationError, match=r"'secret'.*public, restricted"):
            classify_("contact", sensitivity="secret")

    @pytest.mark.parametrize(
        "retention",
        ["P0D", "30 days", "PT5H", "P-1D", "P", "", "P1D2Y", dt.timedelta(0), dt.timedelta(-1), 30],
    )
    def test_bad_retention(self, retention: Any) -> None:
        with pytest.raises(ConfigurationError, match="retention"):
            classify_("contact", retention=retention)

    def test_purposes_as_one_string(self) -> None:
        with pytest.raises(ConfigurationError, match="not one string: 'marketing'"):
            classify_("contact", purposes="marketing")

    @pytest.mark.parametrize("purpose", ["", "  ", 7])
    def test_bad_purpose(self, purpose: Any) -> None:
        with pytest.raises(ConfigurationError, match="purpose must be a non-empty string"):
            classify_("contact", purposes=[purpose])

    def test_bad_description(self) -> None:
        with pytest.raises(ConfigurationError, match="description"):
            classify_("contact", description=5)  # type: ignore[arg-type]


class TestSensitivityOrder:
    """Sensitivities compare in increasing order of harm."""

    def test_sorted(self) -> None:
        levels = [Sensitivity.RESTRICTED, Sensitivity.PUBLIC, Sensitivity.CONFIDENTIAL]
        expected = [Sensitivity.PUBLIC, Sensitivity.CONFIDENTIAL, Sensitivity.RESTRICTED]
        assert expected == sorted(levels)

    def test_operators(self) -> None:
        assert Sensitivity.INTERNAL < Sensitivity.CONFIDENTIAL
        assert Sensitivity.INTERNAL <= Sensitivity.INTERNAL
        assert Sensitivity.RESTRICTED > Sensitivity.PUBLIC
        assert Sensitivity.RESTRICTED >= Sensitivity.RESTRICTED
        assert not Sensitivity.RESTRICTED < Sensitivity.PUBLIC

    @pytest.mark.parametrize("op", ["__lt__", "__le__", "__gt__", "__ge__"])
    def test_other_types_do_not_compare(self, op: str) -> None:
        assert NotImplemented is getattr(Sensitivity.PUBLIC, op)("restricted")
        with pytest.raises(TypeError):
            _ = Sensitivity.PUBLIC < "restricted"


class TestClassificationOf:
    """classification_of reads a Column, a mapped attribute or an info dict."""

    def test_sources(self) -> None:
        expected = classify("contact", retention="P2Y")
        column = Person.__table__.c.email
        assert expected == classification_of(Person.email)
        assert expected == classification_of(column)
        assert expected == classification_of(column.info)

    def test_unclassified(self) -> None:
        assert None is classification_of(Person.note)
        assert None is classification_of({})
        assert None is classification_of({INFO_KEY: "contact"})

    def test_after_the_fact(self) -> None:
        column = sa.Column("phone", sa.String)
        column.info.update(classify_("contact"))
        assert "contact" == classification_of(column).category  # type: ignore[union-attr]

    def test_mapped_column(self) -> None:
        assert "health" == classification_of(mapped_column(info=classify_("health"))).category  # type: ignore[union-attr]

    def test_other_objects(self) -> None:
        with pytest.raises(ConfigurationError, match="not int"):
            classification_of(7)


class TestSuggestCategory:
    """Column names suggest a category; names that are not about people do not."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("email", "contact"),
            ("billingEmail", "contact"),
            ("phone_number", "contact"),
            ("date_of_birth", "demographic"),
            ("ssn", "government_id"),
            ("iban", "financial"),
            ("card_number", "financial"),
            ("last_ip", "identifier"),
            ("name", "identifier"),
            ("first_name", "identifier"),
            ("street_address", "location"),
            ("password_hash", "credentials"),
            ("product_name", None),
            ("id", None),
            ("customer_id", None),
            ("created_at", None),
            # identifier names (issue 15, item 13)
            ("national_id", "government_id"),
            ("nationalId", "government_id"),
            ("nationalid", "government_id"),
            ("tax_id", "government_id"),
            ("taxId", "government_id"),
            ("tax_number", "government_id"),
            ("tin", "government_id"),
            ("nin", "government_id"),
            ("nino", "government_id"),
            ("passport_no", "government_id"),
            ("driver_license", "government_id"),
            ("social_security_number", "government_id"),
            ("id_card_number", "government_id"),
            ("personal_number", "government_id"),
            ("billing_iban", "financial"),
            ("tax_rate", None),
            ("order_id", None),
        ],
    )
    def test_names(self, name: str, expected: str | None) -> None:
        assert expected == suggest_category(name)


class TestSampleShares:
    """Sampling reads non-null values and returns kinds and shares only."""

    def test_shares(self, tmp_path: Path) -> None:
        metadata = sa.MetaData()
        table = sa.Table("notes", metadata, sa.Column("text", sa.String))
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        metadata.create_all(engine)
        rows = ["write to ann@example.org", "call later", None, "bob@example.com"]
        with engine.begin() as connection:
            connection.execute(table.insert(), [{"text": r} for r in rows])
        expected = {"notes.text": (3, {"email": 2 / 3})}
        assert expected == sample_shares(engine, [table.c.text], 10)
        with engine.connect() as connection:
            assert {"notes.text": (1, {"email": 1.0})} == sample_shares(
                connection, [table.c.text], 1
            )
        engine.dispose()

    def test_missing_table(self, tmp_path: Path) -> None:
        table = sa.Table("absent", sa.MetaData(), sa.Column("text", sa.String))
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
        with pytest.raises(ConfigurationError, match=r"absent\.text \(OperationalError\)"):
            sample_shares(engine, [table.c.text], 10)
        engine.dispose()
