"""k-anonymity and distinct l-diversity: measure them, and enforce k by generalising.

Rows are mappings (``dict``, ``csv.DictReader`` rows, ...). An *equivalence class* is the
set of rows sharing the same values of every quasi-identifier; a table is k-anonymous
when its smallest class has at least ``k`` rows.

:func:`enforce_k_anonymity` is the greedy "Datafly" algorithm: while too many rows sit in
classes smaller than ``k`` to suppress them within the budget, generalise by one level the
quasi-identifier with the most distinct values; then suppress the rows left in small
classes. It is deterministic: ties go to the quasi-identifier listed first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import attrs

from securecustomer.exceptions import AnonymizationError, ConfigurationError

__all__ = [
    "HierarchySpec",
    "KAnonymityResult",
    "LeveledHierarchy",
    "enforce_k_anonymity",
    "k_anonymity",
    "l_diversity",
]


class LeveledHierarchy(Protocol):
    """A hierarchy that knows its top level, such as ``anonymize.Hierarchy``."""

    @property
    def depth(self) -> int:
        """The coarsest level."""

    def generalize(self, value: Any, level: int, /) -> Any:
        """``value`` at ``level`` (0 is the value itself)."""


#: How one quasi-identifier generalises: a `LeveledHierarchy` (top: its ``depth``), a
#: ``callable(value, level) -> value`` (level 0 returns the value unchanged; top: the first
#: level that changes no value), or a list of ``callable(value) -> value``, one per level
#: above 0 (``hierarchy[0]`` gives level 1; top: the list's length).
HierarchySpec: TypeAlias = (
    LeveledHierarchy | Callable[[Any, int], Any] | Sequence[Callable[[Any], Any]]
)

# A callable hierarchy has no declared top: it is at its top when the next level changes no
# value. This cap stops one that keeps changing values forever (a counter, a random draw).
_MAX_CALLABLE_LEVEL = 64


@attrs.frozen
class KAnonymityResult:
    """What :func:`enforce_k_anonymity` produced.

    ``rows`` are the kept rows, in input order, with quasi-identifiers generalised;
    ``levels`` the generalisation level reached per quasi-identifier (0 = unchanged);
    ``suppressed`` how many input rows were left out; ``k`` the k-anonymity of ``rows``
    (0 when no row is left).
    """

    rows: tuple[dict[str, Any], ...]
    levels: Mapping[str, int]
    suppressed: int
    k: int


def _key(row: Mapping[str, Any], quasi_identifiers: Sequence[str], index: int) -> tuple[Any, ...]:
    try:
        key = tuple(row[qi] for qi in quasi_identifiers)
    except KeyError as exc:
        raise AnonymizationError(f"row {index} has no quasi-identifier {exc.args[0]!r}") from None
    if not all(isinstance(value, Hashable) for value in key):
        raise AnonymizationError(f"row {index}: quasi-identifier values must be hashable")
    return key


def _classes(
    rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str]
) -> dict[tuple[Any, ...], list[Mapping[str, Any]]]:
    if isinstance(quasi_identifiers, str):
        raise ConfigurationError("quasi_identifiers must be a sequence of field names, not a str")
    classes: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for index, row in enumerate(rows):
        classes[_key(row, quasi_identifiers, index)].append(row)
    return classes


def k_anonymity(rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str]) -> int:
    """Return the size of the smallest equivalence class (0 when there are no rows).

    Raises :class:`AnonymizationError` when a row lacks a quasi-identifier.
    """
    classes = _classes(rows, quasi_identifiers)
    return min((len(members) for members in classes.values()), default=0)


def l_diversity(
    rows: Iterable[Mapping[str, Any]], quasi_identifiers: Sequence[str], sensitive: str
) -> int:
    """Return the distinct l-diversity: the fewest distinct ``sensitive`` values in a class.

    0 when there are no rows. Raises :class:`AnonymizationError` when a row lacks a
    quasi-identifier or the sensitive field.
    """
    classes = _classes(rows, quasi_identifiers)
    fewest: int | None = None
    for members in classes.values():
        try:
            distinct = len({row[sensitive] for row in members})
        except KeyError:
            raise AnonymizationError(f"a row has no sensitive field {sensitive!r}") from None
        except TypeError:
            raise AnonymizationError(
                f"sensitive values of {sensitive!r} must be hashable"
            ) from None
        fewest = distinct if fewest is None else min(fewest, distinct)
    return fewest or 0


@attrs.frozen
class _Steps:
    """A hierarchy in one shape: ``at(value, level)``, its top, whether its top is declared."""

    at: Callable[[Any, int], Any]
    top: int
    declared: bool


def _steps(qi: str, hierarchy: HierarchySpec) -> _Steps:
    if isinstance(hierarchy, Sequence):
        levels = list(hierarchy)
        return _Steps(lambda value, level: levels[level - 1](value), len(levels), True)
    depth = getattr(hierarchy, "depth", None)
    generalize = getattr(hierarchy, "generalize", None)
    if isinstance(depth, int) and callable(generalize):
        return _Steps(generalize, depth, True)
    if callable(hierarchy):
        return _Steps(hierarchy, _MAX_CALLABLE_LEVEL, False)
    raise ConfigurationError(
        f"the hierarchy of {qi!r} is not a list, a callable or a LeveledHierarchy"
    )


def _column(steps: _Steps, values: Sequence[Any], level: int, qi: str) -> list[Any]:
    try:
        return [steps.at(value, level) for value in values]
    except AnonymizationError:
        raise
    except Exception as exc:
        raise AnonymizationError(
            f"the hierarchy of {qi!r} failed at level {level}: {type(exc).__name__}"
        ) from exc


def enforce_k_anonymity(
    rows: Iterable[Mapping[str, Any]],
    quasi_identifiers: Sequence[str],
    k: int,
    hierarchies: Mapping[str, HierarchySpec],
    *,
    max_suppression: float = 0.05,
) -> KAnonymityResult:
    """Generalise and suppress until the rows are ``k``-anonymous.

    ``hierarchies`` maps a quasi-identifier to how it generalises (see `HierarchySpec`):
    a `LeveledHierarchy` such as ``Hierarchy`` (its top is its ``depth``), a
    ``callable(value, level)`` (level 0 is the value itself; its top is the first level
    that changes no value, at most 64) or a list of ``callable(value)``, one per level
    (its top is the list's length). A quasi-identifier without a hierarchy is never
    generalised. At most ``floor(max_suppression * len(rows))`` rows are suppressed.

    Raises :class:`AnonymizationError` when every hierarchy is at its top and still too
    many rows would need suppressing, and :class:`ConfigurationError` (a `ValueError`) for
    a bad ``k``, budget or hierarchy.
    """
    if isinstance(quasi_identifiers, str):
        raise ConfigurationError("quasi_identifiers must be a sequence of field names, not a str")
    if k < 1:
        raise ConfigurationError(f"k must be at least 1, not {k}")
    if not 0.0 <= max_suppression <= 1.0:
        raise ConfigurationError(f"max_suppression must be within [0, 1], not {max_suppression}")
    unknown = sorted(set(hierarchies) - set(quasi_identifiers))
    if unknown:
        raise ConfigurationError(
            f"hierarchies for fields that are not quasi-identifiers: {unknown}"
        )
    source = list(rows)
    for index, row in enumerate(source):
        _key(row, quasi_identifiers, index)
    budget = int(max_suppression * len(source))
    original = {qi: [row[qi] for row in source] for qi in quasi_identifiers}
    columns = {qi: list(values) for qi, values in original.items()}
    levels = dict.fromkeys(quasi_identifiers, 0)
    steps = {qi: _steps(qi, hierarchies[qi]) for qi in quasi_identifiers if qi in hierarchies}
    exhausted = {qi for qi in quasi_identifiers if qi not in steps or steps[qi].top < 1}

    while True:
        keys = list(zip(*(columns[qi] for qi in quasi_identifiers), strict=True))
        if not quasi_identifiers:
            keys = [()] * len(source)
        sizes = Counter(keys)
        small = [i for i, key in enumerate(keys) if sizes[key] < k]
        if len(small) <= budget:
            break
        candidates = [qi for qi in quasi_identifiers if qi not in exhausted]
        if not candidates:
            raise AnonymizationError(
                f"cannot reach k={k}: every quasi-identifier is fully generalised and "
                f"{len(small)} rows would need suppressing (budget {budget})"
            )
        qi = max(candidates, key=lambda name: len(set(columns[name])))
        level = levels[qi] + 1
        column = _column(steps[qi], original[qi], level, qi)
        if column == columns[qi] and not steps[qi].declared:
            exhausted.add(qi)  # a callable at its top: the next level changes nothing
            continue
        levels[qi] = level
        columns[qi] = column
        if level >= steps[qi].top or len(set(column)) <= 1:
            exhausted.add(qi)

    dropped = set(small)
    kept = tuple(
        {**row, **{qi: columns[qi][i] for qi in quasi_identifiers}}
        for i, row in enumerate(source)
        if i not in dropped
    )
    return KAnonymityResult(
        rows=kept,
        levels=levels,
        suppressed=len(dropped),
        k=k_anonymity(kept, quasi_identifiers),
    )
