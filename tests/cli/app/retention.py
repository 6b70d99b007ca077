"""Retention rules of the test application."""

from __future__ import annotations

import datetime as dt

from app.models import Parcel
from securecustomer.privacy import RetentionRule

RULES = [
    RetentionRule(
        Parcel,
        age_column="sent_at",
        max_age=dt.timedelta(days=365),
        subject="shopper_id",
        name="old-parcels",
    )
]
NOT_RULES = 42
