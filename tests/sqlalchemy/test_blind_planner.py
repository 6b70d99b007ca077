"""The blind-index planner: recommended sizes, their numbers, and the indexes it refuses."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from securecustomer.exceptions import ConfigurationError
from securecustomer.sqlalchemy import BlindIndex, IndexPlan, plan_blind_index


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


class TestRecommendedSize:
    """The shortest size whose expected false positives per query stay within the budget."""

    def test_a_million_unique_values(self) -> None:
        plan = plan_blind_index(1_000_000)

        assert 3 == plan.size
        assert 1_000_000 == plan.expected_rows
        assert 1_000_000 == plan.distinct_values
        assert math.isclose((1_000_000 - 1) / 2**24, plan.false_positives)
        assert math.isclose((1_000_000 - 1) / 2**24, plan.colliding_values)

    def test_a_thousand_rows_need_two_bytes(self) -> None:
        # 1 byte: 999 / 256 = 3.9 false positives per query; 2 bytes: 0.015.
        assert 2 == plan_blind_index(1000).size

    def test_a_larger_budget_allows_a_shorter_index(self) -> None:
        # 2 bytes give (10**6 - 1) / 65536 = 15.3 false positives per query.
        assert 3 == plan_blind_index(1_000_000, max_false_positives=15).size
        assert 2 == plan_blind_index(1_000_000, max_false_positives=16).size

    def test_a_smaller_budget_needs_a_longer_index(self) -> None:
        assert 4 == plan_blind_index(1_000_000, max_false_positives=0.001).size

    def test_a_small_domain_many_rows(self) -> None:
        # 5000 values over 10**6 rows: (10**6 - 200) / 2**24 false positives with 3 bytes.
        plan = plan_blind_index(1_000_000, distinct_values=5000)

        assert 3 == plan.size
        assert 5000 == plan.distinct_values
        assert math.isclose((1_000_000 - 200) / 2**24, plan.false_positives)
        assert math.isclose(4999 / 2**24, plan.colliding_values)

    def test_a_domain_larger_than_the_table_counts_the_rows(self) -> None:
        plan = plan_blind_index(2000, distinct_values=40_000)

        assert 2000 == plan.distinct_values
        assert plan_blind_index(2000).size == plan.size

    def test_one_row(self) -> None:
        plan = plan_blind_index(1)

        assert (1, 0.0) == (plan.size, plan.false_positives)

    def test_an_enormous_table_is_capped_at_32_bytes(self) -> None:
        assert 32 == plan_blind_index(10**100, max_false_positives=1e-200).size

    def test_the_reason_gives_the_numbers_of_one_byte_less(self) -> None:
        reason = plan_blind_index(1_000_000).reason

        assert reason.startswith("3 bytes (24 bits): about 0.0596 false-positive rows per query")
        assert "1,000,000 rows" in reason
        assert "2 bytes would give about 15.3 false positives per query" in reason

    def test_the_plan_is_frozen(self) -> None:
        plan = plan_blind_index(1000)

        with pytest.raises(AttributeError):
            plan.size = 32  # type: ignore[misc]

    def test_a_blind_index_takes_its_size_from_a_plan(self) -> None:
        index = BlindIndex("email", size=plan_blind_index(1_000_000))

        assert 3 == index.size

    @given(
        rows=st.integers(1, 10**12),
        distinct=st.none() | st.integers(1000, 10**12),
        budget=st.floats(1e-6, 1e6),
    )
    def test_the_size_is_the_shortest_within_the_budget(
        self, rows: int, distinct: int | None, budget: float
    ) -> None:
        plan = plan_blind_index(rows, distinct_values=distinct, max_false_positives=budget)
        n = rows if distinct is None else min(distinct, rows)

        def fp(size: int) -> float:
            return (rows - rows / n) / 2.0 ** (8 * size)

        assert plan.false_positives <= budget
        assert plan.size == 1 or fp(plan.size - 1) > budget
        assert isinstance(plan, IndexPlan)


class TestRefusals:
    """Indexes that would reveal their values, and numbers that make no sense, are refused."""

    def test_booleans(self) -> None:
        with pytest.raises(ConfigurationError, match="boolean"):
            plan_blind_index(1_000_000, value_type=bool)

    def test_enums(self) -> None:
        with pytest.raises(ConfigurationError, match="enum \\(Colour\\)"):
            plan_blind_index(1_000_000, value_type=Colour)

    def test_a_tiny_domain(self) -> None:
        with pytest.raises(ConfigurationError, match="domain of 250 values"):
            plan_blind_index(1_000_000, distinct_values=250)  # countries

    def test_the_threshold_is_inclusive(self) -> None:
        assert 3 == plan_blind_index(1_000_000, distinct_values=1000).size
        with pytest.raises(ConfigurationError):
            plan_blind_index(1_000_000, distinct_values=999)

    def test_the_threshold_can_be_lowered_explicitly(self) -> None:
        assert 2 == plan_blind_index(10_000, distinct_values=120, min_distinct_values=100).size

    def test_other_value_types_are_planned(self) -> None:
        assert 3 == plan_blind_index(1_000_000, value_type=str).size

    @pytest.mark.parametrize("rows", [0, -1, 1.5, True, "1000", None])
    def test_bad_expected_rows(self, rows: object) -> None:
        with pytest.raises(ConfigurationError, match="expected_rows"):
            plan_blind_index(rows)  # type: ignore[arg-type]

    @pytest.mark.parametrize("distinct", [0, -5, 1500.0, False])
    def test_bad_distinct_values(self, distinct: object) -> None:
        with pytest.raises(ConfigurationError, match="distinct_values"):
            plan_blind_index(1000, distinct_values=distinct)  # type: ignore[arg-type]

    @pytest.mark.parametrize("budget", [0, -1, math.inf, math.nan, True, "1"])
    def test_bad_false_positive_budget(self, budget: object) -> None:
        with pytest.raises(ConfigurationError, match="max_false_positives"):
            plan_blind_index(1000, max_false_positives=budget)  # type: ignore[arg-type]

    @pytest.mark.parametrize("minimum", [1, 0, 10.0])
    def test_bad_threshold(self, minimum: object) -> None:
        with pytest.raises(ConfigurationError, match="min_distinct_values"):
            plan_blind_index(1000, min_distinct_values=minimum)  # type: ignore[arg-type]
