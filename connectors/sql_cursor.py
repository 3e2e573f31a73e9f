"""The incremental position of one SQL entry: the highest ``updated_at`` seen, typed.

Drivers return the column as a datetime (Postgres, MySQL), a date, a number (epoch
seconds) or text (SQLite stores ISO strings). The cursor keeps the value and its type so
the next poll binds the look-back bound in the same form the database compares.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any


def encode_position(value: Any) -> dict[str, Any] | None:
    """A JSON-safe cursor position for ``value``; None when it cannot be a cursor."""
    if isinstance(value, datetime):
        return {"updated_at": value.isoformat(), "type": "datetime"}
    if isinstance(value, date):
        return {"updated_at": value.isoformat(), "type": "date"}
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        number = int(value) if value == int(value) else float(value)
        return {"updated_at": number, "type": "number"}
    if isinstance(value, str) and value.strip():
        return {"updated_at": value, "type": "text"}
    return None


def lookback_bound(position: Mapping[str, Any], seconds: int) -> Any | None:
    """The lowest ``updated_at`` the next poll reads; None means read everything."""
    kind, value = position.get("type"), position.get("updated_at")
    try:
        if kind == "datetime" and isinstance(value, str):
            return datetime.fromisoformat(value) - timedelta(seconds=seconds)
        if kind == "date" and isinstance(value, str):
            return date.fromisoformat(value) - timedelta(days=seconds // 86400)
        if kind == "number" and isinstance(value, int | float):
            return value - seconds
        if kind == "text" and isinstance(value, str):
            moment = datetime.fromisoformat(value) - timedelta(seconds=seconds)
            # Same separator as the stored text, so the database's string comparison holds.
            return moment.isoformat(sep=" " if value[10:11] == " " else "T")
    except ValueError:
        return None
    return None


__all__ = ["encode_position", "lookback_bound"]
