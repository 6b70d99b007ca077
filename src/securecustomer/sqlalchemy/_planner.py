"""The blind-index planner: the shortest token that keeps false positives within budget."""

from __future__ import annotations

import enum
import math

import attrs

from securecustomer.exceptions import ConfigurationError

__all__ = ["IndexPlan", "plan_blind_index"]

_MAX_SIZE = 32  # bytes of HMAC-SHA256


@attrs.frozen
class IndexPlan:
    """A blind-index size recommended by `plan_blind_index`; pass it as ``size=``.

    Attributes:
        size: the truncation, in bytes (1 to 32).
        expected_rows: the population the plan was made for.
        distinct_values: the number of different values assumed in that population.
        false_positives: expected rows per query whose token matches but whose value
            does not (removed by decrypt-and-compare): ``(rows - rows/distinct) / 2**bits``.
        colliding_values: expected number of other distinct values sharing one token,
            ``(distinct - 1) / 2**bits``: above 1, a token no longer names one value.
        reason: the same numbers in a sentence, with those of one byte less.
    """

    size: int
    expected_rows: int
    distinct_values: int
    false_positives: float
    colliding_values: float
    reason: str


def _false_positives(rows: int, distinct: int, size: int) -> float:
    return (rows - rows / distinct) / 2.0 ** (8 * size)


def plan_blind_index(
    expected_rows: int,
    *,
    distinct_values: int | None = None,
    max_false_positives: float = 1.0,
    value_type: type | None = None,
    min_distinct_values: int = 1000,
) -> IndexPlan:
    """Recommend the truncation of a blind index, or refuse an index that would leak.

    With ``R`` rows holding ``n`` distinct values, a token of ``b`` bits is shared by a
    query's value and each other value with probability ``2**-b``, so a query returns
    about ``(R - R/n) / 2**b`` false-positive rows, and each token stands for about
    ``(n - 1) / 2**b`` other values besides the one searched. Shorter tokens hide more
    (more values per token) and cost more false positives. The plan is the **shortest**
    size whose expected false positives stay within *max_false_positives*.

    Plan for the population the table will reach: the size cannot change without
    rebuilding the index column.

    Parameters:
        expected_rows: rows the table is expected to hold.
        distinct_values: how many different values the column can take (its domain), if
            it is small or known; None means a large domain (e-mail addresses, phone
            numbers, names), where nearly every row holds its own value.
        max_false_positives: the expected false-positive rows per query you accept.
        value_type: the type of the values, if known: ``bool`` and `enum.Enum`
            subclasses are refused whatever the other numbers are.
        min_distinct_values: domains smaller than this are refused (default 1000).

    Raises:
        ConfigurationError: on bad numbers, and when the index would leak: a boolean or
            enum column, or a domain of fewer than *min_distinct_values* values. On such
            domains the index column reveals the values to anyone who can read it and
            knows their frequencies (countries, years of birth, ratings), and truncation
            cannot help: tokens short enough to merge values return a large share of the
            table for every query.

    Example:
        ```python
        plan = plan_blind_index(1_000_000)
        assert plan.size == 3                  # about 0.06 false positives per query
        email_index = mapped_column(BlindIndex("email", normalizer=normalize_email, size=plan))
        ```
    """
    if value_type is bool:
        raise ConfigurationError(
            "a blind index on a boolean column reveals the value of every row: "
            "do not index it (filter after decrypting instead)"
        )
    if isinstance(value_type, type) and issubclass(value_type, enum.Enum):
        raise ConfigurationError(
            f"a blind index on an enum ({value_type.__qualname__}) reveals the value of every "
            "row to anyone who knows their frequencies: do not index it"
        )
    if type(expected_rows) is not int or expected_rows < 1:
        raise ConfigurationError("expected_rows must be a positive int")
    if type(min_distinct_values) is not int or min_distinct_values < 2:
        raise ConfigurationError("min_distinct_values must be an int of at least 2")
    if not (
        isinstance(max_false_positives, (int, float))
        and not isinstance(max_false_positives, bool)
        and 0 < max_false_positives < math.inf
    ):
        raise ConfigurationError("max_false_positives must be a positive, finite number")
    if distinct_values is not None:
        if type(distinct_values) is not int or distinct_values < 1:
            raise ConfigurationError("distinct_values must be a positive int or None")
        if distinct_values < min_distinct_values:
            raise ConfigurationError(
                f"a blind index on a domain of {distinct_values} values leaks them: below "
                f"{min_distinct_values} values, token frequencies identify the values and "
                "truncation cannot hide them without returning much of the table per query"
            )
    rows = expected_rows
    distinct = rows if distinct_values is None else min(distinct_values, rows)
    size = next(
        s
        for s in range(1, _MAX_SIZE + 1)
        if _false_positives(rows, distinct, s) <= max_false_positives or s == _MAX_SIZE
    )
    fp = _false_positives(rows, distinct, size)
    colliding = (distinct - 1) / 2.0 ** (8 * size)
    reason = (
        f"{size} bytes ({8 * size} bits): about {fp:.3g} false-positive rows per query for "
        f"{rows:,} rows with {distinct:,} distinct values, each token shared by about "
        f"{colliding:.3g} other values"
    )
    if size > 1:
        reason += (
            f"; {size - 1} bytes would give about "
            f"{_false_positives(rows, distinct, size - 1):.3g} false positives per query, "
            f"more than {max_false_positives:g}"
        )
    return IndexPlan(size, rows, distinct, fp, colliding, reason)
