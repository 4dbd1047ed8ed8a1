"""Server-side SVG charts: a Q sparkline and the learning curve's line chart.

No script and no chart library: the page stays static, offline and safe under a strict
Content-Security-Policy. Every text that goes into the SVG is escaped; colours come from
the stylesheet through class names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def sparkline(values: Sequence[float], width: int = 120, height: int = 24) -> Markup:
    """Q in [-1, 1] after each outcome, oldest to newest, with the zero line."""
    if not values:
        return Markup('<span class="muted">no outcome yet</span>')

    def y(q: float) -> float:
        return (1 - (max(-1.0, min(1.0, q)) + 1) / 2) * (height - 4) + 2

    step = (width - 4) / max(1, len(values) - 1)
    coords = [(2 + i * step, y(q)) for i, q in enumerate(values)]
    path = " ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in coords)
    last_x, last_y = coords[-1]
    title = escape(f"Q after each outcome: {', '.join(f'{q:+.2f}' for q in values)}")
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" data-points="{len(values)}"><title>{title}</title>'
        f'<line class="zero" x1="0" x2="{width}" y1="{_fmt(y(0))}" y2="{_fmt(y(0))}"/>'
        f'<polyline class="line" points="{path}"/>'
        f'<circle class="last" cx="{_fmt(last_x)}" cy="{_fmt(last_y)}" r="2"/></svg>'
    )


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class of the line and its points (colour in the stylesheet)
    points: list[tuple[float, float | None]]  # (x, y in [0, 1]); None breaks the line
    dashed: bool = False


@dataclass(frozen=True)
class Frame:
    """The plot area inside the SVG and the data range it maps."""

    width: int
    height: int
    x_min: float
    x_max: float
    left: int = 48
    right: int = 16
    top: int = 12
    bottom: int = 36

    def x(self, value: float) -> float:
        span = (self.x_max - self.x_min) or 1.0
        return self.left + (value - self.x_min) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        return self.top + (1 - value) * (self.height - self.top - self.bottom)


def _axes(f: Frame, x_label: str, y_label: str) -> list[str]:
    out = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = _fmt(f.y(tick))
        out.append(f'<line class="grid" x1="{f.left}" x2="{f.width - f.right}" y1="{yy}" y2="{yy}"/>')
        out.append(f'<text class="tick" x="{f.left - 6}" y="{yy}" text-anchor="end" dy="4">{tick:.0%}</text>')
    for i in range(6):
        value = f.x_min + (f.x_max - f.x_min) * i / 5
        xx = _fmt(f.x(value))
        out.append(
            f'<text class="tick" x="{xx}" y="{f.height - f.bottom + 16}" text-anchor="middle">'
            f"{value:.0f}</text>"
        )
    out.append(
        f'<text class="label" x="{(f.width + f.left) / 2:.0f}" y="{f.height - 4}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    out.append(
        f'<text class="label" x="12" y="{(f.height - f.bottom) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(f.height - f.bottom) / 2:.0f})">{escape(y_label)}</text>'
    )
    return out


def _segments(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive points with a value (a None ends a run)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [r for r in runs if r]


def _series(f: Frame, s: Series) -> list[str]:
    out = []
    dash = " dashed" if s.dashed else ""
    for run in _segments(s.points):
        path = " ".join(f"{_fmt(f.x(x))},{_fmt(f.y(y))}" for x, y in run)
        out.append(f'<polyline class="series {escape(s.css)}{dash}" points="{path}"/>')
    for x, y in s.points:
        if y is None:
            continue
        title = escape(f"{s.name}, task {x:.0f}: {y:.0%}")
        out.append(
            f'<circle class="pt {escape(s.css)}" cx="{_fmt(f.x(x))}" cy="{_fmt(f.y(y))}" r="2.5" '
            f'data-series="{escape(s.css)}" data-task="{x:.0f}" data-value="{y:.4f}">'
            f"<title>{title}</title></circle>"
        )
    return out


def line_chart(
    series: Sequence[Series],
    x_range: tuple[float, float],
    *,
    x_label: str,
    y_label: str,
    width: int = 820,
    height: int = 320,
) -> Markup:
    """Lines of rates in [0, 1] over a shared x axis, a marker on every plotted point."""
    frame = Frame(width, height, x_range[0], x_range[1])
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(y_label)} by {escape(x_label)}">',
        *_axes(frame, x_label, y_label),
    ]
    for s in series:
        parts += _series(frame, s)
    parts.append("</svg>")
    return Markup("".join(parts))
