"""Rendering a database row into document text or a title.

A template is either a Python ``str.format`` string over column names (``"{name}: {body}"``,
format specs allowed: ``"{amount:.2f}"``), or a list of columns rendered as ``col: value``
lines (empty values skipped). Attribute and index lookups (``{a.b}``, ``{a[0]}``) are
refused: a template comes from configuration and must not reach into Python objects.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

_FORMATTER = string.Formatter()


def template_fields(template: str) -> list[str]:
    """The column names a format template uses; ValueError when it is not usable."""
    fields: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValueError(f"template {template!r}: every {{}} must name a column")
        if any(ch in name for ch in ".[]"):
            raise ValueError(f"template {template!r}: {{{name}}} may not use '.' or '[]'")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"template {template!r}: nested fields in format specs are refused")
        if conversion not in (None, "s", "r"):
            raise ValueError(f"template {template!r}: unknown conversion !{conversion}")
        if name not in fields:
            fields.append(name)
    return fields


def display(value: Any) -> str:
    """A cell as text: '' for NULL, ISO for times, JSON for structures, UTF-8 for bytes."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(raw)} bytes>"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def render(template: str | Sequence[str], row: Mapping[str, Any]) -> str:
    """Render ``row`` with a format template or a list of columns."""
    if isinstance(template, str):
        # Numbers and times stay typed so format specs ({amount:.2f}, {day:%d %B}) work.
        values = {
            name: value
            if isinstance(value, int | float | Decimal | datetime | date | time)
            else display(value)
            for name, value in row.items()
        }
        return template.format_map(values)
    lines = [f"{column}: {text}" for column in template if (text := display(row.get(column)))]
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """A cell as a JSON-safe metadata value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict | list):
        return json.loads(display(value))
    return display(value)


__all__ = ["display", "jsonable", "render", "template_fields"]
