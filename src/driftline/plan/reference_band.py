"""Thresholds learned from the reference: ``{reference_band: k}`` breaches outside the mean ± k
standard deviations of the check's value over the reference cut into the schedule's own windows
(SPEC §3), as NannyML's default thresholds are learned from its reference chunks.

The reference's whole windows (``windows.windows_between``: a partial window at either end is left
out) are measured in ONE grouped query: the window's query of the model and data checks
(``WindowQuery``), run over the reference with each row's window index standing in for the
segments — a column ``__band_window`` (the window, overall) and, per segment column s,
``__band_<s>`` (the window and s's value) — so the query's one pass yields every window's value
overall and per segment. The mean and the (population) standard deviation over the windows with a
value are stored in the reference profile, per check, column and segment, with a fingerprint of
the check (a changed check learns its band again), and attached to each measurement's details,
where the judge reads them.

An ``estimated_performance`` check's band is learned from the *realized* metric over the
reference windows (their labels are known there), so the estimate is held to the spread the real
metric shows.
"""

from __future__ import annotations

from typing import Any, Callable

import ibis
import ibis.expr.types as ir
import numpy as np

from driftline.plan.check_kind import Context
from driftline.plan.drift import Measurement
from driftline.plan.frame import window_rows
from driftline.plan.histograms import as_text
from driftline.plan.profile import NULL_SEGMENT, ReferenceProfile, SegmentKey, StoredPerCheck
from driftline.plan.window_query import WindowFigures, WindowQuery
from driftline.spec.models import Bound, CheckBase, Monitor, PerformanceCheck, check_name
from driftline.windows import EPOCH, Window, windows_between

KEY = "reference_bands"  # where the bands live in the profile's metrics
WINDOW_COLUMN = "__band_window"
SEPARATOR = "\x1f"  # between the window index and a segment value in ``__band_<s>``


def banded(check: CheckBase) -> bool:
    """Whether a threshold of ``check`` is a ``{reference_band}``."""
    return any(isinstance(t, Bound) and t.reference_band is not None for t in (check.warn, check.fail))


def measured_as(check: CheckBase) -> CheckBase:
    """The check whose values over the reference windows make the band: an estimated
    performance check's realized twin, else the check itself."""
    if type(check).__name__ == "EstimatedPerformanceCheck":
        return PerformanceCheck(metric=check.metric, name=check_name(check))
    return check


def reference_windows(monitor: Monitor, reference: Window) -> list[Window]:
    """The schedule's whole windows inside the reference."""
    return windows_between(reference.start, reference.end, monitor.schedule.every)


def segment_columns(segments: list[str]) -> list[str]:
    """The stand-in segment columns: the window overall, then the window and each segment."""
    return [WINDOW_COLUMN, *(f"__band_{s}" for s in segments)]


def with_window_index(rows: ir.Table, timestamp: str, first: Window, every_seconds: float, segments: list[str]) -> ir.Table:
    """``rows`` with the stand-in segment columns: the index of the schedule window a row falls
    in (counted from ``first``), alone and joined with each segment column's value."""
    start = (first.start - EPOCH).total_seconds()
    index = ((rows[timestamp].epoch_seconds() - start) / every_seconds).floor().cast("int64").cast("string")
    columns = {WINDOW_COLUMN: index}
    for s in segments:
        value = as_text(rows[s]).fill_null(NULL_SEGMENT)
        columns[f"__band_{s}"] = index.concat(ibis.literal(SEPARATOR), value)
    return rows.mutate(**columns)


def decode(segment: SegmentKey, segments: list[str]) -> tuple[int, SegmentKey] | None:
    """(window index, the real segment) of a stand-in segment; None for the whole reference."""
    key, value = segment
    if key is None or value is None:
        return None
    if key == WINDOW_COLUMN:
        return int(value), (None, None)
    index, real_value = value.split(SEPARATOR, 1)
    return int(index), (segments[segment_columns(segments).index(key) - 1], real_value)


class ReferenceBands(StoredPerCheck):
    """The bands of every ``{reference_band}`` check, per column and segment."""

    KEY = KEY

    def configuration(self, check: CheckBase) -> list[Any]:
        """The schedule's period too: the bands are over windows of that length."""
        return [*super().configuration(check), self.monitor.schedule.every.total_seconds()]

    def due(self, checks: list[CheckBase]) -> list[CheckBase]:
        return [c for c in checks if banded(c) and not self.has(c)]

    def save(self, check: CheckBase, per_series: dict[tuple, list[float]], windows: int) -> None:
        """Mean and population standard deviation (as NannyML's ``np.nanstd``) of each series'
        values over the reference windows that had one."""
        bands = [[*series, float(np.mean(v)), float(np.std(v)), len(v)] for series, v in per_series.items() if v]
        self.stored[check_name(check)] = {"fingerprint": self.fingerprint(check), "windows": windows, "bands": bands}

    def attach(self, measured: Measurement) -> None:
        """Put the band's mean, standard deviation and window count in
        ``details["reference_band"]``, where the judge reads them."""
        if not banded(measured.check) or not self.has(measured.check):
            return
        for column, segment_key, segment_value, mean, std, n in self.stored[measured.check_name]["bands"]:
            if (column, segment_key, segment_value) == (measured.column_name, measured.segment_key, measured.segment_value):
                measured.details["reference_band"] = {"mean": mean, "std": std, "windows": n}
                return


def bands_query(plan: Any, profile: ReferenceProfile, checks: list[CheckBase], context: Context) -> WindowQuery | None:
    """ONE query measuring ``checks`` on every whole schedule window of the reference, overall
    and per segment; None when the reference holds no whole window."""
    windows = reference_windows(plan.monitor, profile.window)
    if not windows:
        return None
    from driftline.plan.model_checks import kind_of

    span = Window(windows[0].start, windows[-1].end)
    rows = window_rows(plan.source, plan.monitor, plan.inputs, span)
    every = plan.monitor.schedule.every.total_seconds()
    rows = with_window_index(rows, plan.monitor.source.timestamp, windows[0], every, plan.segments)
    query = WindowQuery(rows, segment_columns(plan.segments), plan.dialect, source=plan.source.table)
    for check in checks:
        twin = measured_as(check)
        kind_of(twin).register(twin, query, context)
    return query


def learn(checks: list[CheckBase], figures: WindowFigures, context: Context, bands: ReferenceBands, segments: list[str], windows: int, measured_value: Callable) -> None:
    """Each check's values per reference window, collected per column and real segment, saved
    as bands; ``measured_value(kind, check, column, figures, context)`` measures one, as a
    window's checks are (``min_rows`` included). A check whose labels are not mature on the
    reference learns nothing yet."""
    from driftline.plan.model_checks import kind_of

    for check in checks:
        twin = measured_as(check)
        kind = kind_of(twin)
        if kind.needs_labels(twin) and not context.labels_mature:
            continue
        per_series: dict[tuple, list[float]] = {}
        for segment, segment_figures in figures.segments.items():
            decoded = decode(segment, segments)
            if decoded is None:
                continue
            _, real = decoded
            if real != (None, None) and not kind.segmented(twin):
                continue
            for column in kind.columns(twin, context.monitor):
                value = measured_value(kind, twin, column, segment_figures, context)
                series = per_series.setdefault((column, *real), [])
                if value.value is not None:
                    series.append(value.value)
        bands.save(check, per_series, windows)
