"""Dates as the portal shows them: Paris time, French order."""

from __future__ import annotations

from datetime import datetime

from accounts.working_hours import PARIS


def french_date(value: datetime | None) -> str:
    """``2 décembre 2026 à 09:30`` style, short: ``02/12/2026 09:30`` (Paris time)."""
    if value is None:
        return ""
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")
