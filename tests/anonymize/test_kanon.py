"""k-anonymity, distinct l-diversity and greedy enforcement."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import pycanon.anonymity
import pytest

from securecustomer.anonymize._generalize import Hierarchy
from securecustomer.anonymize._kanon import (
    HierarchySpec,
    KAnonymityResult,
    enforce_k_anonymity,
    k_anonymity,
    l_diversity,
)
from securecustomer.exceptions import AnonymizationError, ConfigurationError

QI = ["age", "zip", "sex"]

ROWS: list[dict[str, Any]] = [
    {"age": 34, "zip": "10115", "sex": "F", "disease": "flu"},
    {"age": 34, "zip": "10115", "sex": "F", "disease": "cold"},
    {"age": 34, "zip": "10115", "sex": "F", "disease": "flu"},
    {"age": 51, "zip": "10117", "sex": "M", "disease": "asthma"},
    {"age": 51, "zip": "10117", "sex": "M", "disease": "asthma"},
]


def _decade(value: Any, level: int) -> Any:
    """Level 0: the age; 1: its decade; 2: its 20-year band; 3: '*'."""
    if level == 0:
        return value
    if level == 1:
        return f"{value // 10 * 10}-{value // 10 * 10 + 9}"
    if level == 2:
        return f"{value // 20 * 20}-{value // 20 * 20 + 19}"
    return "*"


ZIP_LEVELS: list[Callable[[Any], Any]] = [
    lambda z: z[:4] + "*",
    lambda z: z[:3] + "**",
    lambda z: "*****",
]
SEX_LEVELS: list[Callable[[Any], Any]] = [lambda s: "*"]
HIERARCHIES: dict[str, HierarchySpec] = {"age": _decade, "zip": ZIP_LEVELS, "sex": SEX_LEVELS}


def _population(seed: int, size: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "age": rng.randint(18, 90),
            "zip": f"{rng.randint(10100, 10199)}",
            "sex": rng.choice("FM"),
            "disease": rng.choice(["flu", "cold", "asthma", "diabetes", "none"]),
        }
        for _ in range(size)
    ]


class TestMeasures:
    """k is the smallest class; l the fewest distinct sensitive values in a class."""

    def test_k_on_a_small_table(self) -> None:
        assert 2 == k_anonymity(ROWS, QI)
        assert 5 == k_anonymity(ROWS, ["zip"][:0])
        assert 1 == k_anonymity([*ROWS, {"age": 1, "zip": "0", "sex": "X"}], QI)

    def test_l_on_a_small_table(self) -> None:
        assert 1 == l_diversity(ROWS, QI, "disease")
        assert 3 == l_diversity(ROWS, [], "disease")

    def test_no_rows(self) -> None:
        assert 0 == k_anonymity([], QI)
        assert 0 == l_diversity([], QI, "disease")

    def test_accepts_an_iterator(self) -> None:
        assert 2 == k_anonymity(iter(ROWS), QI)

    def test_missing_quasi_identifier_names_the_row(self) -> None:
        rows = [*ROWS, {"age": 3, "sex": "F"}]
        with pytest.raises(AnonymizationError, match="row 5 has no quasi-identifier 'zip'"):
            k_anonymity(rows, QI)

    def test_missing_sensitive_field(self) -> None:
        with pytest.raises(AnonymizationError, match="no sensitive field 'diagnosis'"):
            l_diversity(ROWS, QI, "diagnosis")

    def test_unhashable_value(self) -> None:
        with pytest.raises(AnonymizationError, match=r"row 0: .* hashable"):
            k_anonymity([{"age": [34]}], ["age"])

    def test_unhashable_sensitive_value(self) -> None:
        with pytest.raises(AnonymizationError, match="sensitive values of 'd' must be hashable"):
            l_diversity([{"a": 1, "d": {"x": 1}}], ["a"], "d")

    def test_a_str_is_not_a_list_of_fields(self) -> None:
        with pytest.raises(ConfigurationError, match="not a str"):
            k_anonymity(ROWS, "age")
        with pytest.raises(ConfigurationError, match="not a str"):
            enforce_k_anonymity(ROWS, "age", 2, {})


class TestAgainstPycanon:
    """On the same generated tables, our k and l equal pycanon's."""

    @pytest.mark.parametrize("seed", range(8))
    @pytest.mark.parametrize("qi", [["sex"], ["sex", "zip"], ["age", "sex"], QI])
    def test_same_k_and_l(self, seed: int, qi: list[str]) -> None:
        rows: Sequence[dict[str, Any]] = _population(seed, 300)
        if seed % 2:  # coarser data, so k and l are above 1 and the comparison means more
            hierarchies = {name: HIERARCHIES[name] for name in qi}
            rows = enforce_k_anonymity(rows, qi, 3 + seed, hierarchies, max_suppression=0).rows
        frame = pd.DataFrame(list(rows))
        expected_k = pycanon.anonymity.k_anonymity(frame, qi)
        expected_l = pycanon.anonymity.l_diversity(frame, qi, ["disease"])
        assert expected_k == k_anonymity(rows, qi)
        assert expected_l == l_diversity(rows, qi, "disease")

    def test_the_comparison_sees_values_above_one(self) -> None:
        rows = _population(1, 300)
        coarse = enforce_k_anonymity(rows, QI, 4, HIERARCHIES, max_suppression=0).rows
        frame = pd.DataFrame(list(coarse))
        assert pycanon.anonymity.k_anonymity(frame, QI) >= 4
        assert pycanon.anonymity.l_diversity(frame, QI, ["disease"]) > 1


class TestEnforce:
    """Generalise the most varied quasi-identifier first, then suppress within budget."""

    def test_already_k_anonymous_is_unchanged(self) -> None:
        result = enforce_k_anonymity(ROWS, QI, 2, HIERARCHIES)
        assert (
            KAnonymityResult(
                rows=tuple(ROWS), levels={"age": 0, "zip": 0, "sex": 0}, suppressed=0, k=2
            )
            == result
        )

    def test_generalises_to_reach_k(self) -> None:
        result = enforce_k_anonymity(ROWS, QI, 5, HIERARCHIES, max_suppression=0)
        assert 5 == result.k
        assert 0 == result.suppressed
        assert 5 == k_anonymity(result.rows, QI)
        # disease is not a quasi-identifier: it is carried over untouched, in order.
        assert [row["disease"] for row in ROWS] == [row["disease"] for row in result.rows]

    def test_greedy_order_is_most_distinct_first(self) -> None:
        rows = [
            {"age": age, "zip": "10115", "sex": sex}
            for age, sex in [(21, "F"), (22, "F"), (23, "M"), (24, "M")]
        ]
        result = enforce_k_anonymity(rows, QI, 2, HIERARCHIES, max_suppression=0)
        assert {"age": 1, "zip": 0, "sex": 0} == dict(result.levels)
        assert ["20-29"] * 4 == [row["age"] for row in result.rows]

    def test_suppresses_outliers_within_budget(self) -> None:
        rows = [{"age": 30, "zip": "10115", "sex": "F"} for _ in range(19)]
        rows.append({"age": 80, "zip": "99999", "sex": "M"})
        result = enforce_k_anonymity(rows, QI, 5, HIERARCHIES, max_suppression=0.05)
        assert 1 == result.suppressed
        assert {"age": 0, "zip": 0, "sex": 0} == dict(result.levels)
        assert 19 == result.k == len(result.rows)

    def test_without_budget_it_generalises_instead(self) -> None:
        rows = [{"age": 30, "zip": "10115", "sex": "F"} for _ in range(19)]
        rows.append({"age": 31, "zip": "10115", "sex": "F"})
        result = enforce_k_anonymity(rows, QI, 5, HIERARCHIES, max_suppression=0)
        assert 0 == result.suppressed
        assert 1 == result.levels["age"]
        assert 20 == result.k

    def test_list_hierarchy_stops_at_its_length(self) -> None:
        rows = [{"zip": z} for z in ["10115", "20115", "30115"]]
        with pytest.raises(AnonymizationError, match="cannot reach k=2") as info:
            enforce_k_anonymity(rows, ["zip"], 2, {"zip": ZIP_LEVELS[:2]}, max_suppression=0)
        assert "3 rows would need suppressing (budget 0)" in str(info.value)

    def test_callable_hierarchy_stops_when_nothing_changes(self) -> None:
        calls: list[int] = []

        def stuck(value: Any, level: int) -> Any:
            calls.append(level)
            return value

        with pytest.raises(AnonymizationError, match="cannot reach k=2"):
            enforce_k_anonymity([{"a": 1}, {"a": 2}], ["a"], 2, {"a": stuck})
        assert {1} == set(calls)

    def test_leveled_hierarchy_stops_at_its_depth(self) -> None:
        cities = Hierarchy(
            {
                "Paris": ["Ile-de-France", "France"],
                "Lyon": ["Rhone", "France"],
                "Berlin": ["Berlin", "Germany"],
                "Munich": ["Bavaria", "Germany"],
            }
        )
        rows = [{"city": c} for c in ["Paris", "Lyon", "Lyon", "Berlin", "Munich"]]
        result = enforce_k_anonymity(rows, ["city"], 2, {"city": cities}, max_suppression=0)
        assert {"city": 2} == dict(result.levels)
        expected = ["France", "France", "France", "Germany", "Germany"]
        assert expected == [row["city"] for row in result.rows]
        with pytest.raises(AnonymizationError, match="cannot reach k=3"):
            enforce_k_anonymity(rows, ["city"], 3, {"city": cities}, max_suppression=0)

    def test_unknown_hierarchy_shape(self) -> None:
        with pytest.raises(ConfigurationError, match="the hierarchy of 'age' is not a list"):
            enforce_k_anonymity(ROWS, QI, 2, {"age": 3})  # type: ignore[dict-item]

    def test_quasi_identifier_without_hierarchy_is_never_generalised(self) -> None:
        rows = [{"age": 21, "id": 1}, {"age": 22, "id": 1}]
        result = enforce_k_anonymity(rows, ["age", "id"], 2, {"age": _decade})
        assert {"age": 1, "id": 0} == dict(result.levels)
        with pytest.raises(AnonymizationError, match="cannot reach"):
            enforce_k_anonymity(rows, ["age", "id"], 2, {"id": lambda v, n: v})

    def test_deterministic(self) -> None:
        rows = _population(3, 500)
        first = enforce_k_anonymity(rows, QI, 10, HIERARCHIES)
        assert first == enforce_k_anonymity(list(rows), QI, 10, HIERARCHIES)
        assert first.k >= 10
        assert first.suppressed <= 25
        assert len(rows) == len(first.rows) + first.suppressed

    def test_hierarchy_error_names_field_and_level(self) -> None:
        def broken(value: Any, level: int) -> Any:
            raise KeyError(value)

        with pytest.raises(AnonymizationError, match="'age' failed at level 1: KeyError"):
            enforce_k_anonymity(ROWS, QI, 5, {"age": broken})

    def test_hierarchy_anonymization_error_passes_through(self) -> None:
        def refuses(value: Any, level: int) -> Any:
            raise AnonymizationError("no band for this age")

        with pytest.raises(AnonymizationError, match=r"^no band for this age$"):
            enforce_k_anonymity(ROWS, QI, 5, {"age": refuses})

    def test_no_quasi_identifiers_is_one_class(self) -> None:
        result = enforce_k_anonymity(ROWS, [], 5, {})
        assert (tuple(ROWS), {}, 0, 5) == (result.rows, result.levels, result.suppressed, result.k)
        with pytest.raises(AnonymizationError, match="cannot reach k=6"):
            enforce_k_anonymity(ROWS, [], 6, {})

    def test_everything_suppressed_gives_k_zero(self) -> None:
        rows = [{"a": 1}, {"a": 2}]
        result = enforce_k_anonymity(rows, ["a"], 2, {}, max_suppression=1.0)
        assert KAnonymityResult(rows=(), levels={"a": 0}, suppressed=2, k=0) == result

    @pytest.mark.parametrize(
        ("k", "budget", "hierarchies", "message"),
        [
            (0, 0.05, {}, "k must be at least 1"),
            (2, 1.5, {}, "max_suppression"),
            (2, -0.1, {}, "max_suppression"),
            (2, 0.05, {"disease": SEX_LEVELS}, "not quasi-identifiers: \\['disease'\\]"),
        ],
    )
    def test_bad_arguments(
        self, k: int, budget: float, hierarchies: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            enforce_k_anonymity(ROWS, QI, k, hierarchies, max_suppression=budget)
