"""Small bar charts rendered on the server as inline SVG (no chart library, no script).

Each chart carries a ``<title>`` and an ``aria-label`` summarising it, and each bar a
``<title>`` with its exact value, so the numbers are there for screen readers too.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH = 360
HEIGHT = 90
PAD = 16


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float | None]],
    unit: str = "",
    *,
    css_class: str = "",
) -> Markup:
    """``bars``: (label, value) in order; None draws no bar (no data in that bucket)."""
    values = [v for _, v in bars if v is not None]
    top = max(values, default=0.0) or 1.0
    n = max(len(bars), 1)
    step = (WIDTH - 2 * PAD) / n
    width = max(step * 0.8, 1.0)
    peak = f"peak {_fmt(max(values))}{unit}" if values else "no data"
    summary = f"{title}: {len(values)} of {len(bars)} intervals with data, {peak}"
    parts = [
        f'<svg class="chart {escape(css_class)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(summary)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'class="axis"/>',
    ]
    for i, (label, value) in enumerate(bars):
        if value is None:
            continue
        h = (HEIGHT - 2 * PAD) * (value / top)
        x = PAD + i * step + (step - width) / 2
        y = HEIGHT - PAD - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{max(h, 0.5):.1f}">'
            f"<title>{escape(label)}: {_fmt(value)}{escape(unit)}</title></rect>"
        )
    if bars:
        parts.append(
            f'<text x="{PAD}" y="{HEIGHT - 2}" class="tick">{escape(bars[0][0])}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 2}" class="tick end">'
            f"{escape(bars[-1][0])}</text>"
        )
    parts.append(
        f'<text x="{PAD}" y="{PAD - 4}" class="tick">{escape(_fmt(top) if values else "")}'
        f"{escape(unit) if values else ''}</text></svg>"
    )
    # Every interpolated text above went through escape(); the rest is our own markup.
    return Markup("".join(parts))  # noqa: S704


__all__ = ["bar_chart"]
