"""Reference vs current histograms of drift checks, for every window, in a compact form.

The latest window of each column is rendered in Python (:func:`svg.bar_chart`). To look at an
earlier window the page keeps the counts of every window as JSON, and a few lines of script move
the bars of that same chart: the chart's geometry lives only in :mod:`driftline.reporting.svg`.
The y axis is fixed per column (the largest share over all windows), so windows compare at a
glance. Repeated bin labels and reference counts (a fixed reference window) are stored once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftline.reporting import svg


@dataclass(frozen=True)
class ColumnHistograms:
    """The bins of one monitor column over its windows (overall rows, no segments)."""

    key: str
    window_starts: tuple[pd.Timestamp, ...]
    labels: tuple[tuple[str, ...], ...]  # distinct label lists
    label_index: tuple[int, ...]  # per window: which label list
    references: tuple[tuple[int, ...], ...]  # distinct reference counts
    reference_index: tuple[int, ...]
    current: tuple[tuple[int, ...], ...]  # per window
    y_max: float

    def payload(self) -> dict:
        """The JSON the page script reads: short keys, as it is embedded for every window."""
        return {
            "w": [window_label(w) for w in self.window_starts],
            "labels": [list(labels) for labels in self.labels],
            "li": list(self.label_index),
            "ref": [list(r) for r in self.references],
            "ri": list(self.reference_index),
            "cur": [list(c) for c in self.current],
        }

    def templates(self) -> list[tuple[int, str]]:
        """(bin count, SVG) of the latest window for each bin count seen.

        The page script only moves bars, so a window with another number of bins (categories
        added to a trailing reference) needs a chart of its own.
        """
        latest_of_count: dict[int, int] = {}
        for window, index in enumerate(self.label_index):
            latest_of_count[len(self.labels[index])] = window
        return [(count, self.chart(window)) for count, window in sorted(latest_of_count.items())]

    def chart(self, window: int, **size) -> str:
        """The window's bars (``size``: the chart's ``width`` and ``height``, for small multiples)."""
        labels, reference, current = self.shares(window)
        return svg.bar_chart(
            labels,
            [("reference", reference), ("current", current)],
            y_max=self.y_max,
            percent=True,
            label=f"reference vs current histogram, {window_label(self.window_starts[window])}",
            **size,
        )

    def shares(self, window: int) -> tuple[tuple[str, ...], list[float], list[float]]:
        """The window's bin labels and each bin's share of the reference and current rows."""
        labels = self.labels[self.label_index[window]]
        return labels, _shares(self.references[self.reference_index[window]]), _shares(self.current[window])

    def moved_most(self, window: int) -> tuple[str, float, float]:
        """(label, reference share, current share) of the bin whose share changed most."""
        labels, reference, current = self.shares(window)
        i = int(np.argmax(np.abs(np.subtract(current, reference))))
        return labels[i], reference[i], current[i]


def collect(histograms: pd.DataFrame) -> dict[tuple[str, str], ColumnHistograms]:
    """Per (monitor, column), every window's bins, in window order."""
    frame = histograms.sort_values(["monitor", "column_name", "window_start", "bin_index"])
    columns = {}
    for (monitor, column), part in frame.groupby(["monitor", "column_name"], sort=False):
        starts = part.window_start.to_numpy()
        cuts = np.flatnonzero(starts[1:] != starts[:-1]) + 1  # where the next window begins

        def per_window(values: np.ndarray) -> list[tuple]:
            return [tuple(v.tolist()) for v in np.split(values, cuts)]

        columns[(monitor, column)] = _column(
            f"{monitor}/{column}",
            window_starts=tuple(pd.Timestamp(t) for t in starts[np.r_[0, cuts]]),
            labels=per_window(part.bin_label.astype(str).to_numpy(object)),
            references=per_window(_counts(part.reference_count)),
            current=per_window(_counts(part.current_count)),
        )
    return columns


def check_values(columns: ColumnHistograms, rows: pd.DataFrame) -> dict[str, list]:
    """A drift check's value and status for each of the column's windows (overall rows)."""
    by_window = rows.drop_duplicates("window_start", keep="last").set_index("window_start")
    value = by_window.value.reindex(list(columns.window_starts))
    status = by_window.status.reindex(list(columns.window_starts))
    return {
        "v": [float(f"{v:.4g}") if np.isfinite(v) else None for v in value.astype(float)],
        "s": [None if pd.isna(s) else str(s) for s in status],
    }


def window_label(start: pd.Timestamp) -> str:
    """A window by its start: the date, with the time when windows are shorter than a day."""
    return f"{start:%Y-%m-%d}" if start == start.normalize() else f"{start:%Y-%m-%d %H:%M}"


def _column(key: str, *, window_starts, labels, references, current) -> ColumnHistograms:
    distinct_labels, label_index = _distinct(labels)
    distinct_references, reference_index = _distinct(references)
    return ColumnHistograms(
        key=key,
        window_starts=window_starts,
        labels=distinct_labels,
        label_index=label_index,
        references=distinct_references,
        reference_index=reference_index,
        current=tuple(current),
        y_max=max(_largest_share(distinct_references), _largest_share(current)),
    )


def _distinct(values: Sequence[tuple]) -> tuple[tuple[tuple, ...], tuple[int, ...]]:
    """Dictionary encoding: the distinct values and, per position, the index of its value."""
    seen: dict[tuple, int] = {}
    index = tuple(seen.setdefault(v, len(seen)) for v in values)
    return tuple(seen), index


def _largest_share(histograms: Sequence[tuple[int, ...]]) -> float:
    return max((max(_shares(h), default=0.0) for h in histograms), default=0.0) or 1.0


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total if total else 0.0 for c in counts]


def _counts(values: pd.Series) -> np.ndarray:
    return np.nan_to_num(values.to_numpy(dtype=float)).astype(np.int64)
