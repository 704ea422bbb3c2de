"""Small inline-SVG charts for the report: a time-series line chart and a grouped bar chart.

Charts are plain strings of SVG markup with CSS classes instead of colours, so the page's
stylesheet themes them (light and dark). Times are seconds since the epoch (UTC), values floats
with NaN for "no value". Every text that reaches the markup is escaped here.

>>> import numpy as np
>>> svg = line_chart([Line("psi", np.array([0.0, 86400.0]), np.array([0.1, 0.2]))], label="psi")
>>> svg.startswith("<svg") and "<path" in svg
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape

import numpy as np

WIDTH = 880
LINE_HEIGHT = 230
BAR_HEIGHT = 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 14, 16, 26
MAX_POINTS = 480  # more points than this per line are downsampled (min/max per bucket)


@dataclass(frozen=True)
class Line:
    """One series: ``y`` NaN where there is no value; a gap in time also breaks the line."""

    label: str
    x: np.ndarray
    y: np.ndarray
    css: str = "s0"


@dataclass(frozen=True)
class Band:
    """A shaded band between ``lower`` and ``upper`` (an anomaly check's expected range)."""

    x: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class Rule:
    """A threshold over time; constant thresholds draw as a horizontal line."""

    label: str
    x: np.ndarray
    y: np.ndarray
    css: str  # "warn" or "fail"


@dataclass(frozen=True)
class Marker:
    """A point in time marked at the top of the plot, e.g. where an alert opened."""

    x: float
    css: str
    title: str


@dataclass(frozen=True)
class Span:
    """A shaded stretch of time with a caption, e.g. windows whose labels have not arrived."""

    x0: float
    x1: float
    label: str


@dataclass(frozen=True)
class _Frame:
    """Where the plot area is and how data maps onto it."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int
    height: int
    left: int = MARGIN_LEFT
    top: int = MARGIN_TOP
    right: int = MARGIN_RIGHT
    bottom: int = MARGIN_BOTTOM

    def px(self, x):
        span = (self.x1 - self.x0) or 1.0
        return self.left + (np.asarray(x, dtype=float) - self.x0) / span * self.plot_width

    def py(self, y):
        span = (self.y1 - self.y0) or 1.0
        return self.top + (1 - (np.asarray(y, dtype=float) - self.y0) / span) * self.plot_height

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def baseline(self) -> float:
        return self.top + self.plot_height


def line_chart(
    lines: Sequence[Line],
    *,
    band: Band | None = None,
    rules: Sequence[Rule] = (),
    markers: Sequence[Marker] = (),
    spans: Sequence[Span] = (),
    x_domain: tuple[float, float] | None = None,
    label: str = "",
    width: int = WIDTH,
    height: int = LINE_HEIGHT,
) -> str:
    """A time-series chart: lines over an optional band, threshold rules, markers and spans."""
    if x_domain is None:
        xs = np.concatenate([line.x for line in lines] or [np.array([0.0, 1.0])])
        x_domain = (float(xs.min()), float(xs.max()))
    y_values = [line.y for line in lines] + [rule.y for rule in rules]
    if band is not None:
        y_values += [band.lower, band.upper]
    y0, y1 = _padded_extent(y_values)
    frame = _Frame(*x_domain, y0, y1, width, height)
    parts = [
        *_y_axis(frame),
        *_x_axis(frame),
        *(_span(frame, span) for span in spans),
        _band(frame, band) if band is not None else "",
        *(_polyline(frame, rule.x, rule.y, f"rule {rule.css}", rule.label) for rule in rules),
        # The first line is the one that matters most: drawn last, on top of the others.
        *(_polyline(frame, line.x, line.y, f"line {line.css}", line.label) for line in lines[::-1]),
        *(_marker(frame, marker) for marker in markers),
    ]
    return _svg(width, height, label, parts)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    y_max: float | None = None,
    percent: bool = False,
    css: Sequence[str] = ("b0", "b1", "b2", "b3", "b4"),
    label: str = "",
    width: int = WIDTH,
    height: int = BAR_HEIGHT,
) -> str:
    """Grouped bars: for each category one bar per series (e.g. reference vs current share),
    series ``i`` styled by the class ``css[i]``.

    Bars carry ``data-s`` (series index) and ``data-i`` (category index), and category labels
    ``data-i``, so a page script can update heights and labels of the same chart in place.
    """
    values = np.array([[np.nan if v is None else v for v in vals] for _, vals in series], float)
    top = y_max if y_max is not None else (np.nanmax(values) if np.isfinite(values).any() else 1)
    # Long category names (bins such as "[138.23, 176.17)") are turned to fit under their bars.
    rotate = max((len(c) for c in categories), default=0) * 6.5 > width / max(len(categories), 1)
    frame = _Frame(0, len(categories), 0, (top or 1) * 1.05, width, height,
                   bottom=70 if rotate else MARGIN_BOTTOM)  # fmt: skip
    slot = frame.plot_width / max(len(categories), 1)
    parts = list(_y_axis(frame, percent=percent))
    for i, category in enumerate(categories):
        parts += _bar_group(frame, i, slot, category, series, values[:, i], css, percent)
        parts.append(_category_label(frame, i, slot, category, rotate))
    scale = {"y0": frame.baseline, "ph": frame.plot_height, "ymax": frame.y1}
    return _svg(width, height, label, parts, data=scale)


def _bar_group(frame, i, slot, category, series, values, css, percent) -> list[str]:
    """The bars of category ``i``: one per series, side by side in 80% of the slot."""
    width = slot * 0.8 / max(len(series), 1)
    left = float(frame.px(i)) + slot * 0.1
    bars = []
    for s, ((name, _), value) in enumerate(zip(series, values)):
        y = float(frame.py(0 if np.isnan(value) else value))
        tip = f"{category} · {name}: {_format(value, percent)}"
        bars.append(
            f'<rect class="bar {css[s]}" data-s="{s}" data-i="{i}" x="{left + s * width:.1f}" '
            f'y="{y:.1f}" width="{max(width - 1, 1):.1f}" height="{frame.baseline - y:.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    return bars


# --- pieces -------------------------------------------------------------------------------------


def _svg(width: int, height: int, label: str, parts: Sequence[str], data=None) -> str:
    """The chart element; ``data`` becomes data-* attributes (the scale, for the page script)."""
    attrs = "".join(f' data-{k}="{v:.6g}"' for k, v in (data or {}).items())
    return (
        f'<svg class="svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet"{attrs}>'
        + "".join(parts)
        + "</svg>"
    )


def _polyline(frame: _Frame, x, y, css: str, title: str) -> str:
    """A path through the finite points; NaN values and gaps in time break it."""
    d = _path_data(frame, np.asarray(x, float), np.asarray(y, float))
    if not d:
        return ""
    return f'<path class="{css}" d="{d}"><title>{escape(title)}</title></path>'


def _path_data(frame: _Frame, x: np.ndarray, y: np.ndarray) -> str:
    commands = []
    for run in _runs(x, y):
        run = _thin(run, y, len(x))
        px, py = frame.px(x[run]), frame.py(y[run])
        if len(run) == 1:  # a lone point: a short dash so it is visible
            px, py = np.array([px[0] - 1.5, px[0] + 1.5]), np.repeat(py, 2)
        commands.append("M" + _points(px, py))
    return "".join(commands)


def _points(px: np.ndarray, py: np.ndarray) -> str:
    """SVG path coordinates, to a tenth of a pixel (enough on screen, and keeps files small)."""
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py))


def _runs(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Index runs of consecutive finite points, split where time jumps by more than 1.5 usual
    steps (a window that was never computed, e.g. a failed run)."""
    ok = np.isfinite(y)
    step = float(np.median(np.diff(x))) if len(x) > 2 else 0.0
    jump = np.zeros(len(x), bool)
    if step > 0:
        jump[1:] = np.diff(x) > 1.5 * step
    runs, current = [], []
    for i in range(len(x)):
        if not ok[i] or (jump[i] and current):
            if current:
                runs.append(np.array(current))
            current = []
        if ok[i]:
            current.append(i)
    if current:
        runs.append(np.array(current))
    return runs


def _band(frame: _Frame, band: Band) -> str:
    """Closed areas between lower and upper, one per run of known band values."""
    lower, upper = np.asarray(band.lower, float), np.asarray(band.upper, float)
    both = np.where(np.isfinite(lower), upper, np.nan)
    areas = []
    for run in _runs(np.asarray(band.x, float), both):
        run = _thin(run, upper, len(band.x))
        px = frame.px(band.x[run])
        top = _points(px, frame.py(upper[run]))
        bottom = _points(px[::-1], frame.py(lower[run])[::-1])
        areas.append(f"M{top} L{bottom}Z")
    if not areas:
        return ""
    return f'<path class="band" d="{"".join(areas)}"><title>expected range</title></path>'


def _marker(frame: _Frame, marker: Marker) -> str:
    x = float(frame.px(marker.x))
    top = frame.top
    return (
        f'<g class="marker {marker.css}"><title>{escape(marker.title)}</title>'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{frame.baseline:.1f}"/>'
        f'<path d="M{x - 5:.1f},{top - 8:.1f}h10l-5,8z"/></g>'
    )


def _span(frame: _Frame, span: Span) -> str:
    x0, x1 = float(frame.px(span.x0)), float(frame.px(span.x1))
    return (
        f'<rect class="span" x="{x0:.1f}" y="{frame.top}" width="{max(x1 - x0, 3):.1f}" '
        f'height="{frame.plot_height:.1f}"><title>{escape(span.label)}</title></rect>'
    )


def _category_label(frame: _Frame, i: int, slot: float, text: str, rotate: bool) -> str:
    """The label under category ``i``, cut at 18 characters (the bars' tooltips have it all)."""
    x, y = frame.px(i) + slot / 2, frame.baseline + 14
    short = text if len(text) <= 18 else text[:17] + "…"
    place = f'text-anchor="end" transform="rotate(-35 {x:.1f} {y:.1f})"' if rotate else (
        'text-anchor="middle"'
    )
    return (
        f'<text class="cat" data-i="{i}" x="{x:.1f}" y="{y:.1f}" {place}>{escape(short)}</text>'
    )


def _y_axis(frame: _Frame, percent: bool = False):
    for tick in nice_ticks(frame.y0, frame.y1):
        y = float(frame.py(tick))
        yield (
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"/><text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{escape(_format(tick, percent))}</text>'
        )


def _x_axis(frame: _Frame):
    yield (
        f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" '
        f'y1="{frame.baseline:.1f}" y2="{frame.baseline:.1f}"/>'
    )
    for tick, text in time_ticks(frame.x0, frame.x1):
        x = float(frame.px(tick))
        yield (
            f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{frame.baseline:.1f}" '
            f'y2="{frame.baseline + 4:.1f}"/><text class="tick" x="{x:.1f}" '
            f'y="{frame.baseline + 16:.1f}" text-anchor="middle">{escape(text)}</text>'
        )


# --- scales, ticks, numbers ---------------------------------------------------------------------


def _padded_extent(arrays: Sequence[np.ndarray]) -> tuple[float, float]:
    finite = [a[np.isfinite(a)] for a in (np.asarray(v, float) for v in arrays)]
    values = np.concatenate(finite) if finite else np.array([])
    if not len(values):
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    # Keep zero as the floor for non-negative data close to it: rates and distances start at 0.
    low = 0.0 if lo >= 0 and lo - pad < 0 else lo - pad
    return low, hi + pad


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi].

    >>> nice_ticks(0, 0.27)
    [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    """
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


_DAY = 86400.0
_STEPS = [  # (seconds, strftime) candidates, smallest first
    (3600, "%H:%M"), (3 * 3600, "%H:%M"), (6 * 3600, "%b %d %H:%M"), (12 * 3600, "%b %d %H:%M"),
    (_DAY, "%b %d"), (2 * _DAY, "%b %d"), (7 * _DAY, "%b %d"), (14 * _DAY, "%b %d"),
]  # fmt: skip


def time_ticks(t0: float, t1: float, count: int = 8) -> list[tuple[float, str]]:
    """Tick positions and labels for a time axis: whole hours, days, weeks or months (UTC).

    >>> [label for _, label in time_ticks(1767225600, 1798675200)][:3]
    ['Jan 2026', 'Mar 2026', 'May 2026']
    """
    span = t1 - t0
    for seconds, fmt in _STEPS:
        if span / seconds <= count:
            first = math.ceil(t0 / seconds) * seconds
            return [(t, _utc(t).strftime(fmt)) for t in np.arange(first, t1 + 1, seconds)]
    months = next((m for m in (1, 2, 3, 6, 12) if span / (m * 30.4 * _DAY) <= count), 24)
    return [(t, _utc(t).strftime("%b %Y")) for t in _month_starts(t0, t1, months)]


def _month_starts(t0: float, t1: float, every: int) -> list[float]:
    start = _utc(t0)
    year, month = start.year, start.month
    if (start.day, start.hour, start.minute, start.second) != (1, 0, 0, 0):
        month += 1
    ticks = []
    while True:
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        moment = datetime(year, month, 1, tzinfo=timezone.utc).timestamp()
        if moment > t1:
            return ticks
        if (month - 1) % every == 0:
            ticks.append(moment)
        month += 1


def _utc(seconds: float) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=float(seconds))


def _format(value: float, percent: bool = False) -> str:
    """A short human number: 0.123, 1,234, 1.2e-05; percentages as 12.5%."""
    if value is None or not np.isfinite(value):
        return "–"
    if percent:
        return f"{value * 100:.3g}%"
    return format_number(value)


def format_number(value: float | None) -> str:
    """Four significant digits, thousands separated, no scientific notation for everyday sizes
    (a trillion and up is no everyday size: a MAPE of 1e16 would print 17 digits).

    >>> [format_number(v) for v in (0.123456, 1234.5, 2.0, 1.5e-05, 2.5e16)]
    ['0.1235', '1,234', '2', '1.5e-05', '2.5e+16']
    """
    if value is None or not np.isfinite(value):
        return "–"
    if 1000 <= abs(value) < 1e12:
        return f"{value:,.0f}"
    return f"{value:.4g}"


# --- downsampling -------------------------------------------------------------------------------


def _thin(run: np.ndarray, y: np.ndarray, total: int, max_points: int = MAX_POINTS) -> np.ndarray:
    """At most this run's share of ``max_points`` indices, keeping each bucket's minimum and
    maximum so that spikes survive (a year of hourly windows is 8,760 points per line)."""
    budget = max(2, max_points * len(run) // max(total, 1))
    if len(run) <= budget:
        return run
    keep: set[int] = set()
    for bucket in np.array_split(run, budget // 2):
        values = y[bucket]
        keep.update((int(bucket[np.argmin(values)]), int(bucket[np.argmax(values)])))
    return np.array(sorted(keep))
