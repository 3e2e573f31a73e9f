"""Rows of cells (CSV, spreadsheets) as text that still reads well out of context.

When the first row looks like a header (every cell a non-empty, non-numeric string), each
later row is written as ``header: value`` pairs, so a chunk far from the header keeps the
meaning of its columns; otherwise cells are joined with `` | ``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return " ".join(str(value).split())


def _looks_like_header(cells: Sequence[str]) -> bool:
    def numeric(text: str) -> bool:
        try:
            float(text.replace(",", ""))
        except ValueError:
            return False
        return True

    return len(cells) > 1 and all(c and not numeric(c) for c in cells)


def rows_to_text(rows: Iterable[Sequence[object]]) -> str:
    lines: list[str] = []
    header: list[str] | None = None
    first = True
    for row in rows:
        cells = [cell_text(v) for v in row]
        while cells and not cells[-1]:
            cells.pop()
        if not any(cells):
            continue
        if first:
            first = False
            if _looks_like_header(cells):
                header = cells
                lines.append(" | ".join(cells))
                continue
        if header is not None:
            pairs = [
                f"{header[i] if i < len(header) else f'column {i + 1}'}: {c}"
                for i, c in enumerate(cells)
                if c
            ]
            lines.append(" | ".join(pairs))
        else:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


__all__ = ["cell_text", "rows_to_text"]
