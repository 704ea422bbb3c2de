"""What the report shows, computed from the result frames: monitors, checks, lines, heat maps.

Pure functions from :class:`~driftline.reporting.data.ReportData` to small frozen view objects; no
HTML here. Times on charts are seconds since the epoch (UTC) of each window's start.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from driftline.reasons import LABELS_NOT_MATURE
from driftline import triage
from driftline.reporting import summary, svg
from driftline.reporting.data import ReportData
from driftline.reporting.info import MonitorInfo
from driftline.reporting.summary import Waiting

# From harmless to alarming; the worst status of a set is the one furthest right.
STATUS_ORDER = ("ok", "insufficient_data", "warn", "fail", "error")
STATUS_RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}
CHECK_TYPE_ORDER = ("drift", "performance", "estimated_performance", "fairness", "quality", "latency", "metric")
SERIES_KEY = ["column_name", "segment_key", "segment_value"]
MAX_OVERALL_LINES = 8  # overall lines per chart (one per column)
MAX_SEGMENT_LINES = 3  # plus the worst few segments
MAX_HEATMAP_SEGMENTS = 14


def worst(statuses: Sequence[str | None]) -> str | None:
    """The most alarming status among ``statuses`` (None when there is none).

    >>> worst(["ok", "warn", "insufficient_data"])
    'warn'
    """
    known = [s for s in statuses if s in STATUS_ORDER]
    return max(known, key=STATUS_ORDER.index) if known else None


@dataclass(frozen=True)
class SeriesView:
    """One drawn line: a column and/or segment of a check over time, and its last known value
    (``known_at`` is set when that is not the latest window, e.g. labels still to come)."""

    label: str
    css: str
    x: np.ndarray
    y: np.ndarray
    latest_value: float | None
    latest_status: str | None
    known_at: pd.Timestamp | None = None


@dataclass(frozen=True)
class FairnessView:
    """Per-group rates of the latest window that has them."""

    window_start: pd.Timestamp
    groups: dict[str, dict[str, float]]
    excluded: tuple[str, ...]


@dataclass(frozen=True)
class CheckView:
    """One check of a monitor: its chart and what goes around it."""

    monitor: str
    name: str
    check_type: str
    metric: str
    anchor: str
    status: str | None
    warn_threshold: str | None
    fail_threshold: str | None
    lines: tuple[SeriesView, ...]
    hidden_series: int
    band: svg.Band | None = None
    rules: tuple[svg.Rule, ...] = ()
    markers: tuple[svg.Marker, ...] = ()
    pending: svg.Span | None = None
    fairness: FairnessView | None = None
    drift_rows: dict[str, pd.DataFrame] = field(default_factory=dict)  # column -> overall rows
    waiting: Waiting | None = None  # newer windows whose labels are still to come
    realized: EstimatedVsRealized | None = None  # estimated_performance: the realized value beside it
    explained_by: str | None = None  # which segments explain the latest overall breach


@dataclass(frozen=True)
class EstimatedVsRealized:
    """An estimated_performance check's overall values beside the realized ones of the
    performance check of the same metric (known once the labels mature), latest window first."""

    realized_check: str
    rows: pd.DataFrame  # window_start, estimated, std_error, realized, realized_status


@dataclass(frozen=True)
class DriftedColumn:
    """A column a drift check finds drifted, with its overall value (None when only some
    segments drifted)."""

    column: str
    check: CheckView
    value: float | None
    status: str | None


@dataclass(frozen=True)
class DriftGlance:
    """Drift at a glance: which of the columns the drift checks measure drifted."""

    measured: int
    drifted: tuple[DriftedColumn, ...]  # worst first


@dataclass(frozen=True)
class HeatMap:
    """Statuses of the latest window: one row per check, one column per segment."""

    segments: tuple[str, ...]
    rows: tuple[tuple[CheckView, tuple[tuple[str | None, str], ...]], ...]  # (status, tooltip)
    hidden_segments: int = 0


@dataclass(frozen=True)
class FailedWindow:
    """A window whose latest run failed: it has no results, and every ``driftline run`` tries
    it again until it succeeds."""

    start: pd.Timestamp
    end: pd.Timestamp
    error: str


@dataclass(frozen=True)
class MonitorView:
    """One monitor: its overview line, open alerts, heat map and checks."""

    info: MonitorInfo
    status: str | None
    latest_window: tuple[pd.Timestamp, pd.Timestamp] | None
    last_run_at: pd.Timestamp | None
    open_alerts: pd.DataFrame
    failed_windows: tuple[FailedWindow, ...] = ()  # oldest first
    checks: tuple[CheckView, ...] = ()
    heatmap: HeatMap | None = None
    x_domain: tuple[float, float] = (0.0, 1.0)
    summary: triage.Summary = triage.Summary(triage.headline([]), ())
    drift: DriftGlance | None = None

    @property
    def anchor(self) -> str:
        return self.info.name

    @property
    def open_alert_count(self) -> int:
        return len(self.open_alerts)


@dataclass(frozen=True)
class _MonitorFrames:
    """One monitor's slice of every frame."""

    history: pd.DataFrame
    runs: pd.DataFrame
    alerts: pd.DataFrame
    details: pd.DataFrame
    pending: pd.DataFrame


def build_monitors(data: ReportData, infos: Sequence[MonitorInfo]) -> list[MonitorView]:
    """A view per monitor: the given ones in order, then any others found in the tables."""
    infos = list(infos)
    known = {info.name for info in infos}
    found = pd.concat([data.history.monitor, data.runs.monitor]).dropna().unique()
    infos += [MonitorInfo(str(n), None, None, None) for n in sorted(found) if n not in known]
    return [_monitor(info, _slice(data, info.name)) for info in infos]


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Naive-UTC timestamps as float seconds since 1970-01-01."""
    return ((values - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(float)


# --- a monitor ----------------------------------------------------------------------------------


def _slice(data: ReportData, name: str) -> _MonitorFrames:
    def of(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame.monitor == name]

    return _MonitorFrames(of(data.history), of(data.runs), of(data.alerts), of(data.details), of(data.pending))


def _monitor(info: MonitorInfo, frames: _MonitorFrames) -> MonitorView:
    history, runs = frames.history, frames.runs
    failed = _failed_windows(runs)
    last_run_at = runs.finished_at.max() if len(runs) else None
    base = MonitorView(
        info=info,
        status="error" if failed and failed[-1].end == runs.window_end.max() else None,  # the latest window failed
        latest_window=None,
        last_run_at=last_run_at,
        open_alerts=_open_alerts(frames.alerts),
        failed_windows=failed,
    )
    if history.empty:
        return base
    latest_start = history.window_start.max()
    latest = history[history.window_start == latest_start]
    checks = tuple(
        _check(info.name, name, rows, latest_start, frames)
        for name, rows in _checks_in_order(history)
    )
    features = summary.drift_columns(history)
    found = triage.summarize(summary.findings(history), features or None, latest_start)
    return replace(
        base,
        status=worst([base.status, *(c.status for c in checks)]),
        latest_window=(latest_start, latest.window_end.max()),
        last_run_at=last_run_at if last_run_at is not None else history.created_at.max(),
        checks=checks,
        heatmap=_heatmap(checks, _latest_known_of_latest(history, latest)),
        x_domain=_x_domain(history),
        summary=found,
        drift=_drift_glance(found, checks, features),
    )


def _latest_known_of_latest(history: pd.DataFrame, latest: pd.DataFrame) -> pd.DataFrame:
    """The series of the latest window, each by its latest row not waiting for labels: a check
    whose newest windows wait shows the status its labelled windows have."""
    known = summary.latest_known(history)
    return known.merge(latest[summary.SERIES].drop_duplicates(), on=summary.SERIES)


def _drift_glance(found: triage.Summary, checks: tuple[CheckView, ...], measured: int) -> DriftGlance | None:
    """The drifted columns of every drift check, worst check first, each column once."""
    if not measured:
        return None
    by_name = {c.name: c for c in checks}
    drifted: dict[str, DriftedColumn] = {}
    for row in found.rows:
        if row.check_type != "drift":
            continue
        for finding in row.findings:
            if finding.column in drifted or finding.column is None:
                continue
            overall = next((f for f in row.findings if f.column == finding.column and f.overall), None)
            drifted[finding.column] = DriftedColumn(
                finding.column, by_name[row.check_name],
                overall.value if overall else None, overall.severity if overall else None,
            )  # fmt: skip
    return DriftGlance(int(measured), tuple(drifted.values()))


def _open_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """Open alerts, fail before warn, the newest first."""
    open_alerts = alerts[alerts.state == "open"]
    severity = open_alerts.severity.map({"fail": 0, "warn": 1}).fillna(2)
    order = open_alerts.assign(_severity=severity).sort_values(
        ["_severity", "opened_at"], ascending=[True, False]
    )
    return order.drop(columns="_severity")


def _failed_windows(runs: pd.DataFrame) -> tuple[FailedWindow, ...]:
    """Every window whose latest run failed, oldest first: an older one has no results in the
    charts and no later run's error to show it."""
    latest = runs.sort_values("finished_at", na_position="first").drop_duplicates(["window_start", "window_end"], keep="last")
    failed = latest[latest.status == "error"].sort_values("window_start")
    return tuple(FailedWindow(r.window_start, r.window_end, _text(r.error) or "run failed") for r in failed.itertuples())


def _x_domain(history: pd.DataFrame) -> tuple[float, float]:
    """The time axis every chart of a monitor shares, so charts line up under each other."""
    x = epoch_seconds(history.window_start)
    low, high = float(x.min()), float(x.max())
    return (low, high) if high > low else (low - 43200, low + 43200)


def _checks_in_order(history: pd.DataFrame):
    """(check_name, rows) by check type (drift first), then name."""
    def order(item):
        name, rows = item
        kind = rows.check_type.iloc[0]
        rank = CHECK_TYPE_ORDER.index(kind) if kind in CHECK_TYPE_ORDER else len(CHECK_TYPE_ORDER)
        return rank, name

    return sorted(history.groupby("check_name", sort=False), key=order)


# --- a check ------------------------------------------------------------------------------------


def _check(
    monitor: str, name: str, rows: pd.DataFrame, latest_start: pd.Timestamp, frames: _MonitorFrames
) -> CheckView:
    """A check's chart (the lines worth drawing, thresholds, band, alert markers) and extras."""
    rows = rows.sort_values(["window_start", "created_at"])
    series = [_Series.of(key, part) for key, part in rows.groupby(SERIES_KEY, dropna=False)]
    drawn = _pick_lines(series)
    lines = tuple(s.view(f"s{i}" if s.overall else f"s{i} segment") for i, s in enumerate(drawn))
    latest = rows[rows.window_start == latest_start]
    if latest.empty:
        latest = rows[rows.window_start == rows.window_start.max()]
    primary = drawn[0] if drawn else None
    last = rows.iloc[-1]  # the check as configured now (thresholds may have changed)
    details = frames.details[frames.details.check_name == name]
    known = summary.latest_known(rows)
    known = known.merge(latest[summary.SERIES].drop_duplicates(), on=summary.SERIES)
    realized = _estimated_vs_realized(rows, frames.history) if last.check_type == "estimated_performance" else None
    if realized is not None:
        lines += (_realized_line(realized, f"s{len(lines)}"),)
    return CheckView(
        monitor=monitor,
        name=name,
        check_type=str(last.check_type),
        metric=str(last.metric),
        anchor=f"{monitor}-{name}",
        # each series by its latest window with labels: newer windows waiting say nothing yet
        status=worst(list(known.status)),
        warn_threshold=_text(last.warn_threshold),
        fail_threshold=_text(last.fail_threshold),
        lines=lines,
        hidden_series=len(series) - len(drawn),
        band=primary.band() if primary else None,
        rules=primary.rules() if primary else (),
        markers=_alert_markers(frames.alerts[frames.alerts.check_name == name], drawn),
        pending=_pending_span(rows),
        fairness=_fairness(details[details.check_type == "fairness"]),
        explained_by=_explained_by(details),
        drift_rows=_drift_rows(last.check_type, drawn, series),
        waiting=summary.waiting(rows, frames.pending[frames.pending.check_name == name]),
        realized=realized,
    )


ESTIMATED_VS_REALIZED_ROWS = 8  # the latest windows the table shows


def _estimated_vs_realized(rows: pd.DataFrame, history: pd.DataFrame) -> EstimatedVsRealized | None:
    """The overall estimated values beside the realized ones of a performance check of the same
    metric in the monitor; None without such a check."""
    metric = rows.metric.iloc[-1]
    realized = history[(history.check_type == "performance") & (history.metric == metric)
                       & history.segment_key.isna() & history.column_name.isna()]  # fmt: skip
    if realized.empty:
        return None
    name = sorted(realized.check_name.unique())[0]
    realized = realized[realized.check_name == name].sort_values("created_at").drop_duplicates("window_start", keep="last")
    estimated = rows[rows.segment_key.isna() & rows.column_name.isna()].drop_duplicates("window_start", keep="last")
    error = estimated.std_error if "std_error" in estimated.columns else np.nan
    both = pd.DataFrame({"window_start": estimated.window_start, "estimated": estimated.value, "std_error": error})
    both = both.merge(realized[["window_start", "value", "status"]].rename(columns={"value": "realized", "status": "realized_status"}),
                      on="window_start", how="left")  # fmt: skip
    return EstimatedVsRealized(name, both.sort_values("window_start", ascending=False).reset_index(drop=True))


def _realized_line(realized: EstimatedVsRealized, css: str) -> SeriesView:
    """The realized overall value as one more line of the estimated check's chart."""
    rows = realized.rows.sort_values("window_start")
    y = _floats(rows.realized)
    known = np.flatnonzero(np.isfinite(y))
    last = rows.iloc[known[-1]] if len(known) else None
    value = None if last is None else float(last.realized)
    status = None if last is None else _text(last.realized_status)
    stale = last is not None and known[-1] != len(y) - 1
    return SeriesView(f"realized ({realized.realized_check})", f"{css} realized", epoch_seconds(rows.window_start), y,
                      value, status, last.window_start if stale else None)  # fmt: skip


@dataclass(frozen=True, eq=False)  # compared by identity: it holds a DataFrame
class _Series:
    """All rows of one column × segment of a check, and how alarming it has been."""

    key: tuple
    rows: pd.DataFrame

    @classmethod
    def of(cls, key: tuple, rows: pd.DataFrame) -> _Series:
        return cls(_key(key), rows)

    @property
    def overall(self) -> bool:
        return self.key[1] is None

    @property
    def label(self) -> str:
        column, segment_key, segment_value = self.key
        segment = None if segment_key is None else f"{segment_key}={segment_value}"
        return " · ".join(p for p in (column, segment) if p) or "overall"

    @cached_property
    def badness(self) -> tuple[int, int]:
        """(latest status rank, warn + 2 × fail windows over the whole history)."""
        statuses = self.rows.status
        latest = STATUS_RANK.get(statuses.iloc[-1], 0)
        return latest, int((statuses == "warn").sum() + 2 * (statuses == "fail").sum())

    @cached_property
    def x(self) -> np.ndarray:
        return epoch_seconds(self.rows.window_start)

    def view(self, css: str) -> SeriesView:
        y = _floats(self.rows.value)
        known = np.flatnonzero(np.isfinite(y))
        last = self.rows.iloc[known[-1] if len(known) else -1]
        value = float(last.value) if pd.notna(last.value) else None
        stale = len(known) and known[-1] != len(y) - 1
        return SeriesView(self.label, css, self.x, y, value, last.status,
                          last.window_start if stale else None)  # fmt: skip

    def band(self) -> svg.Band | None:
        lower, upper = _floats(self.rows.band_lower), _floats(self.rows.band_upper)
        if not np.isfinite(lower).any():
            return None
        return svg.Band(self.x, lower, upper)

    def rules(self) -> tuple[svg.Rule, ...]:
        """A line per bound of each threshold: one for a one-sided threshold, two for
        ``{outside}``. Where a bound is the anomaly band's edge, the band already shows it."""
        rules = []
        for level in ("warn", "fail"):
            for side in ("lower", "upper"):
                y = _floats(self.rows[f"{level}_{side}"])
                y = np.where(y == _floats(self.rows[f"band_{side}"]), np.nan, y)
                if np.isfinite(y).any():
                    rules.append(svg.Rule(f"{level} threshold", self.x, y, level))
        return tuple(rules)


def _pick_lines(series: list[_Series]) -> list[_Series]:
    """Overall lines (worst first, at most a few) and the worst few segments that misbehaved.

    Worst means: the latest status, then how often the series breached; among drift series,
    whose values all mean "higher is worse", then the latest value.
    """
    def rank(s: _Series):
        latest, breaches = s.badness
        drift = s.rows.check_type.iloc[0] == "drift"
        value = s.rows.value.iloc[-1] if drift and pd.notna(s.rows.value.iloc[-1]) else 0.0
        return -latest, -breaches, -value, s.label

    overall = sorted((s for s in series if s.overall), key=rank)[:MAX_OVERALL_LINES]
    troubled = [s for s in series if not s.overall and (s.badness[0] >= 2 or s.badness[1] > 0)]
    return overall + sorted(troubled, key=rank)[:MAX_SEGMENT_LINES]


def _alert_markers(alerts: pd.DataFrame, drawn: list[_Series]) -> tuple[svg.Marker, ...]:
    """Where alerts of the drawn series opened and resolved: on their first breaching window and
    on the first window that no longer breached."""
    by_key = {s.key: s for s in drawn}
    markers = []
    for alert in alerts.itertuples(index=False):
        series = by_key.get(_key((alert.column_name, alert.segment_key, alert.segment_value)))
        if series is None:
            continue
        opened = f"{alert.severity} alert opened {_when(alert.opened_at)} · {series.label}"
        markers.append(svg.Marker(_window_of(series, alert.opened_at), f"opened {alert.severity}",
                                  opened))  # fmt: skip
        if alert.state == "resolved" and pd.notna(alert.resolved_at):
            resolved = f"alert resolved {_when(alert.resolved_at)} · {series.label}"
            markers.append(svg.Marker(_window_of(series, alert.resolved_at), "resolved", resolved))
    return tuple(markers)


def _window_of(series: _Series, moment: pd.Timestamp) -> float:
    """The x of the window an alert time names: episode times are window starts (SPEC §5), so
    the latest window starting at or before ``moment`` (the window itself when it is drawn)."""
    starts = series.rows.window_start.to_numpy()
    i = int(np.searchsorted(starts, np.datetime64(moment), side="right")) - 1
    return float(series.x[max(i, 0)])


def _pending_span(rows: pd.DataFrame) -> svg.Span | None:
    """The stretch of recent windows whose labels have not arrived yet (performance checks)."""
    waiting = rows[rows.reason == LABELS_NOT_MATURE]
    if waiting.empty:
        return None
    start = epoch_seconds(waiting.window_start.sort_values().head(1))[0]
    end = epoch_seconds(rows.window_start.tail(1))[0]
    count = waiting.window_start.nunique()
    return svg.Span(float(start), float(end), f"labels not mature ({count} windows)")


def _explained_by(details: pd.DataFrame) -> str | None:
    """``details.explained_by`` of the check's latest overall breach (see driftline.contributions)."""
    explained = details[details.segment_key.isna() & details.status.isin(["warn", "fail"])]
    for row in explained.sort_values("window_start", ascending=False).itertuples():
        found = _json(row.details).get("explained_by")
        if found:
            return str(found)
    return None


def _fairness(details: pd.DataFrame) -> FairnessView | None:
    """The per-group rates of the latest overall window whose details list groups."""
    overall = details[details.segment_key.isna()].sort_values("window_start", ascending=False)
    for row in overall.itertuples(index=False):
        parsed = _json(row.details)
        if parsed.get("groups"):
            return FairnessView(
                window_start=row.window_start,
                groups=parsed["groups"],
                excluded=tuple(parsed.get("excluded_groups") or ()),
            )
    return None


def _drift_rows(check_type: str, drawn: list[_Series], series: list[_Series]) -> dict:
    """The overall rows per column whose histograms a drift check shows, drawn (worst) first."""
    if check_type != "drift":
        return {}
    overall = [s for s in series if s.overall and s.key[0] is not None]
    drawn_first = [s for s in drawn if s in overall] + sorted(
        (s for s in overall if s not in drawn), key=lambda s: s.label
    )
    return {s.key[0]: s.rows[["window_start", "value", "status"]] for s in drawn_first}


# --- heat map -----------------------------------------------------------------------------------


def _heatmap(checks: tuple[CheckView, ...], latest: pd.DataFrame) -> HeatMap:
    """Worst status per check × segment in the latest window (columns of a check combined)."""
    segment = np.where(
        latest.segment_key.isna(),
        "overall",
        latest.segment_key.astype(str) + "=" + latest.segment_value.astype(str),
    )
    rank = latest.status.map(STATUS_RANK).fillna(0)
    latest = latest.assign(segment_label=segment, status_rank=rank)
    # The worst row of each check × segment speaks for the cell.
    by_rank = latest.sort_values("status_rank", ascending=False, kind="stable")
    worst_rows = by_rank.drop_duplicates(["check_name", "segment_label"])
    cells = {
        (row.check_name, row.segment_label): (row.status, _cell_tooltip(row))
        for row in worst_rows.itertuples(index=False)
    }
    segments = _heatmap_segments(latest)
    rows = tuple(
        (check, tuple(cells.get((check.name, s), (None, "no result")) for s in segments))
        for check in checks
    )
    hidden = latest.segment_label.nunique() - len(segments)
    return HeatMap(tuple(segments), rows, hidden)


def _heatmap_segments(latest: pd.DataFrame) -> list[str]:
    """'overall' first, then the most troubled segments, at most a screen's width of them."""
    others = latest[latest.segment_label != "overall"]
    rank = others.status_rank.groupby(others.segment_label).max()
    ordered = sorted(rank.index, key=lambda s: (-rank[s], s))[:MAX_HEATMAP_SEGMENTS]
    return ["overall", *ordered] if (latest.segment_label == "overall").any() else ordered


def _cell_tooltip(row) -> str:
    where = f"{row.column_name}: " if pd.notna(row.column_name) else ""
    tip = f"{where}{row.metric} = {svg.format_number(row.value)} ({row.status})"
    return f"{tip}, window {row.window_start:%Y-%m-%d %H:%M}"


# --- small helpers ------------------------------------------------------------------------------


def _key(values: tuple) -> tuple:
    """A series key (column, segment key, segment value) with None for every kind of null."""
    return tuple(None if pd.isna(v) else v for v in values)


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _text(value) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _json(text) -> dict:
    try:
        parsed = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _when(moment: pd.Timestamp) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if pd.notna(moment) else "–"
