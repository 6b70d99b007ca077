"""The per-field Anonymizer over records, pandas frames, Arrow tables, and TOML plans."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from securecustomer.anonymize._anonymizer import DROP, Anonymizer, _optional
from securecustomer.anonymize._mask import mask_email
from securecustomer.anonymize._pseudonym import Pseudonymizer
from securecustomer.exceptions import AnonymizationError, ConfigurationError

RECORD = {"id": 7, "email": "jane.doe@example.com", "name": "Jane", "city": "Lyon", "note": "x"}


def _upper(value: Any) -> Any:
    return str(value).upper()


def _fail(value: Any) -> Any:
    raise ValueError(f"cannot handle {value}")


ANON = Anonymizer({"email": mask_email, "name": DROP, "city": None, "id": _upper})


class TestRecords:
    """Callables transform, None keeps, "drop" removes, unlisted fields are dropped."""

    def test_apply(self) -> None:
        assert {"id": "7", "email": "j***@example.com", "city": "Lyon"} == ANON.apply(RECORD)

    def test_keep_unlisted(self) -> None:
        anonymizer = Anonymizer({"name": DROP, "email": mask_email}, keep_unlisted=True)
        expected = {"id": 7, "email": "j***@example.com", "city": "Lyon", "note": "x"}
        assert expected == anonymizer.apply(RECORD)

    def test_input_is_not_modified_and_order_follows_input(self) -> None:
        record = dict(RECORD)
        assert ["id", "email", "city"] == list(ANON.apply(record))
        assert RECORD == record

    def test_missing_fields_stay_missing(self) -> None:
        assert {"city": "Paris"} == ANON.apply({"city": "Paris"})

    def test_none_is_never_transformed(self) -> None:
        assert {"id": None, "email": None} == Anonymizer({"id": _fail, "email": _fail}).apply(
            {"id": None, "email": None}
        )

    @pytest.mark.parametrize(
        "missing", [None, math.nan, np.float64("nan"), pd.NA, pd.NaT, np.datetime64("NaT")]
    )
    def test_missing_markers_are_never_transformed(self, missing: Any) -> None:
        assert {"a": missing} == Anonymizer({"a": _fail}).apply({"a": missing})

    def test_values_without_a_plain_inequality_are_transformed(self) -> None:
        class Odd:
            def __ne__(self, other: object) -> bool:
                raise RuntimeError("no")

        seen: list[Any] = []
        anonymizer = Anonymizer({"a": seen.append, "b": seen.append})
        array, odd = np.array([1.0, math.nan]), Odd()
        anonymizer.apply({"a": array, "b": odd})
        assert 2 == len(seen)
        assert seen[0] is array
        assert seen[1] is odd

    def test_error_names_record_and_field_not_value(self) -> None:
        out = Anonymizer({"id": _upper, "email": _fail}).apply_many([{"id": 1}, RECORD])
        assert {"id": "1"} == next(out)
        with pytest.raises(AnonymizationError, match="record 1: field 'email'") as info:
            next(out)
        assert "jane" not in str(info.value)
        assert isinstance(info.value.__cause__, ValueError)

    def test_bad_rule(self) -> None:
        with pytest.raises(ConfigurationError, match="the rule for 'email' must be"):
            Anonymizer({"email": "mask_email"})  # type: ignore[dict-item]

    def test_fields_and_output_fields(self) -> None:
        assert ("email", "name", "city", "id") == ANON.fields
        assert ["id", "email", "city"] == ANON.output_fields(RECORD)
        assert "keep_unlisted=False" in repr(ANON)


class TestApplyManyLaziness:
    """apply_many pulls one record at a time."""

    def test_lazy(self) -> None:
        pulled: list[int] = []

        def source() -> Any:
            for n in range(3):
                pulled.append(n)
                yield {"id": n}

        out = Anonymizer({"id": _upper}).apply_many(source())
        assert [] == pulled
        assert {"id": "0"} == next(out)
        assert [0] == pulled


class TestPandas:
    """apply_frame maps column by column, keeps the index, skips missing values."""

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "id": [7, 8, 9],
                "email": ["jane.doe@example.com", None, "bob@example.org"],
                "name": ["Jane", "Joe", "Bob"],
                "score": [1.5, math.nan, 3.0],
            },
            index=[10, 20, 30],
        )

    def test_apply_frame(self) -> None:
        out = ANON.apply_frame(self.frame())
        assert ["id", "email"] == list(out.columns)
        assert [10, 20, 30] == list(out.index)
        assert ["7", "8", "9"] == list(out["id"])
        assert "j***@example.com" == out["email"][10]
        assert out["email"][20] is None
        assert "b***@example.org" == out["email"][30]

    def test_keep_unlisted_and_nan(self) -> None:
        anonymizer = Anonymizer({"name": DROP, "score": _fail}, keep_unlisted=True)
        with pytest.raises(AnonymizationError, match="field 'score'"):
            anonymizer.apply_frame(self.frame())
        doubled = Anonymizer({"score": lambda v: v * 2, "id": None})
        out = doubled.apply_frame(self.frame())
        assert ["id", "score"] == list(out.columns)
        assert [3.0, 6.0] == [out["score"][10], out["score"][30]]
        assert math.isnan(out["score"][20])

    def test_same_as_records(self) -> None:
        frame = self.frame().drop(columns=["score"])
        records = frame.to_dict(orient="records")
        expected = [ANON.apply(record) for record in records]
        assert expected == ANON.apply_frame(frame).to_dict(orient="records")


class TestArrow:
    """apply_table works column-wise on Tables and RecordBatches, keeping nulls."""

    def table(self) -> pa.Table:
        return pa.table(
            {
                "id": pa.array([7, 8, None], pa.int64()),
                "email": ["jane.doe@example.com", None, "bob@example.org"],
                "name": ["Jane", "Joe", "Bob"],
                "city": pa.array(["Lyon", "Nice", None], pa.large_string()),
            }
        )

    def test_apply_table(self) -> None:
        out = ANON.apply_table(self.table())
        assert ["id", "email", "city"] == out.column_names
        assert {
            "id": ["7", "8", None],
            "email": ["j***@example.com", None, "b***@example.org"],
            "city": ["Lyon", "Nice", None],
        } == out.to_pydict()
        assert pa.large_string() == out.schema.field("city").type  # kept columns keep their type

    def test_record_batch(self) -> None:
        batch = self.table().to_batches()[0]
        assert ANON.apply_table(self.table()) == ANON.apply_table(batch)

    def test_mixed_types_are_an_anonymization_error(self) -> None:
        anonymizer = Anonymizer({"name": lambda v: 1 if v == "Joe" else v})
        with pytest.raises(AnonymizationError, match=r"field 'name'.*one Arrow type"):
            anonymizer.apply_table(self.table())

    def test_same_as_records(self) -> None:
        table = self.table()
        expected = [ANON.apply(record) for record in table.to_pylist()]
        assert expected == ANON.apply_table(table).to_pylist()


class TestOptionalImports:
    """A missing optional dependency is a clear ImportError naming the package."""

    def test_message(self) -> None:
        with pytest.raises(ImportError, match="Arrow support needs the 'no_such_pkg_x' package"):
            _optional("no_such_pkg_x", "Arrow")


PLAN = """\
key_env = "SC_TEST_ANON_KEY"

[fields]
email = "mask_email"
name = "drop"
city = "keep"
phone = { mask_phone = { keep = 3 } }
customer_id = { pseudonymize = { domain = "customer" } }
"""


class TestPlans:
    """Plans name transforms; keys come from the environment variable the plan names."""

    key = secrets.token_bytes(32)

    def env(self) -> dict[str, str]:
        return {"SC_TEST_ANON_KEY": self.key.hex()}

    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "plan.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def test_toml_plan(self, tmp_path: Path) -> None:
        anonymizer = Anonymizer.from_plan(self.write(tmp_path, PLAN), environ=self.env())
        record = {**RECORD, "phone": "+44 20 7946 0018", "customer_id": "c-1"}
        expected = {
            "email": "j***@example.com",
            "city": "Lyon",
            "phone": "+** ** **** *018",
            "customer_id": Pseudonymizer(self.key, domain="customer")("c-1"),
        }
        assert expected == anonymizer.apply(record)

    def test_generalisation_transforms_with_parameters(self) -> None:
        plan = {
            "fields": {
                "age": {"age_band": {"width": 5}},
                "postcode": {"truncate_postcode": {"keep": 2}},
                "income": {"generalize_number": {"bins": [1000, 5000]}},
            }
        }
        record = {"age": 37, "postcode": "75011", "income": 2500, "name": "x"}
        expected = {"age": "35-39", "postcode": "75", "income": "1000-4999"}
        assert expected == Anonymizer.from_plan(plan, environ={}).apply(record)

    def test_os_environ_is_the_default(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SC_TEST_ANON_KEY", self.key.hex())
        anonymizer = Anonymizer.from_plan(self.write(tmp_path, PLAN))
        expected = Pseudonymizer(self.key, domain="customer")("c-1")
        assert {"customer_id": expected} == anonymizer.apply({"customer_id": "c-1"})

    def test_dict_plan_with_per_field_key_and_keep_unlisted(self) -> None:
        plan = {
            "keep_unlisted": True,
            "fields": {"id": {"pseudonymize": {"domain": "d", "key_env": "OTHER"}}},
        }
        anonymizer = Anonymizer.from_plan(plan, environ={"OTHER": self.key.hex()})
        out = anonymizer.apply(RECORD)
        assert Pseudonymizer(self.key, domain="d")(7) == out["id"]
        assert {**RECORD, "id": out["id"]} == out

    def test_missing_key_variable(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, PLAN)
        with pytest.raises(ConfigurationError) as info:
            Anonymizer.from_plan(path, environ={})
        assert (
            f"{path}: field 'customer_id': the environment variable 'SC_TEST_ANON_KEY' is not set"
            == str(info.value)
        )

    @pytest.mark.parametrize(
        ("fields", "environ", "message"),
        [
            ({"a": "shout"}, {}, "field 'a': unknown transform 'shout' \\(known: age_band, "),
            ({"a": {"mask_phone": {"digits": 3}}}, {}, "bad parameters for 'mask_phone'"),
            ({"a": {"pseudonymize": {}}}, {"K": "00" * 32}, "bad parameters for 'pseudonymize'"),
            ({"a": {"pseudonymize": {"domain": "d", "key": "00" * 32}}}, {}, "never sits"),
            ({"a": {"mask_email": {"key_env": "K"}}}, {}, "only for keyed transforms"),
            ({"a": {"pseudonymize": {"domain": "d"}}}, {}, "needs key_env"),
            ({"a": {"pseudonymize": {"domain": "d"}}}, {"K": "zz"}, "'K' is not hex"),
            ({"a": {"pseudonymize": {"domain": "d"}}}, {"K": "00" * 8}, "shorter than 16"),
            ({"a": {"drop": {"now": True}}}, {}, "'drop' takes no parameters"),
            ({"a": {"mask": 3}}, {}, "parameters of 'mask' must be a table"),
            ({"a": ["mask"]}, {}, "a rule is a transform name"),
        ],
    )
    def test_bad_field_rules(
        self, fields: dict[str, Any], environ: dict[str, str], message: str
    ) -> None:
        plan: dict[str, Any] = {"fields": fields}
        if "K" in environ:
            plan["key_env"] = "K"
        with pytest.raises(ConfigurationError, match=message):
            Anonymizer.from_plan(plan, environ=environ)

    @pytest.mark.parametrize(
        ("plan", "message"),
        [
            ({"fields": {}}, "non-empty \\[fields\\] table"),
            ({"field": {"a": "drop"}}, "unknown top-level keys \\['field'\\]"),
            ({"fields": {"a": "drop"}, "keep_unlisted": "yes"}, "keep_unlisted must be"),
            ({"fields": {"a": "drop"}, "key_env": 3}, "key_env must be"),
        ],
    )
    def test_bad_plans(self, plan: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigurationError, match=message):
            Anonymizer.from_plan(plan, environ={})

    def test_toml_syntax_error_names_the_file(self, tmp_path: Path) -> None:
        path = self.write(tmp_path, "[fields\n")
        with pytest.raises(ConfigurationError, match=f"^{path}: cannot read the plan"):
            Anonymizer.from_plan(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="cannot read the plan"):
            Anonymizer.from_plan(tmp_path / "nope.toml")

    def test_key_is_not_in_repr(self) -> None:
        plan = {"key_env": "K", "fields": {"a": {"pseudonymize": {"domain": "d"}}}}
        anonymizer = Anonymizer.from_plan(plan, environ={"K": self.key.hex()})
        assert self.key.hex() not in repr(anonymizer)
