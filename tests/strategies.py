"""Hypothesis strategies shared by the test suite (one file, as attrs does)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from hypothesis import strategies as st

from securecustomer.crypto import Context

_zones = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"])

aware_datetimes = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(timezones=_zones.map(zoneinfo.ZoneInfo), allow_imaginary=False),
    st.datetimes(
        timezones=st.integers(-23 * 60, 23 * 60).map(
            lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
        )
    ),
)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

#: Every type the value format carries.
values: st.SearchStrategy[Any] = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.decimals(allow_nan=False),
    st.dates(),
    aware_datetimes,
    st.uuids(),
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    st.lists(json_values, max_size=4),
)

_names = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)

contexts = st.builds(
    Context,
    table=_names,
    column=_names,
    row=st.none() | _names | st.integers(),
)
