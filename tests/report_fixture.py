"""Realistic synthetic driftline results, written straight into the result tables.

Two monitors with daily windows (a year by default): a lead-scoring classifier segmented by
region, and a lifetime-value regression segmented by plan and acquisition channel. About fifty
check × column series per window: drift with histograms, performance with labels that arrive late,
fairness with per-group rates, data quality, latency and custom metrics with anomaly bands. A few
incidents are planted, so there are resolved alert episodes in the past and open ones at the end.

The values follow SPEC §6 where that is cheap (PSI and JS are computed from the stored histograms,
fairness values from the stored per-group rates) and are simply plausible elsewhere. Statuses and
alert episodes come from a small judge written here, independent of driftline's own.

    from report_fixture import MONITORS, fill_result_tables
    fill_result_tables(con, days=365)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import ibis
import numpy as np
import pandas as pd
import yaml

from driftline.reporting import MonitorInfo
from driftline.result_schema import ALERTS, HISTOGRAMS, RESULTS, RUNS, TABLES

END = datetime(2026, 12, 31)  # end of the last window
MIN_ROWS = 100
BINS = 10
EPS = 1e-4


@dataclass(frozen=True)
class Check:
    """One check of a monitor, and how its synthetic values behave."""

    name: str
    type: str
    metric: str
    columns: tuple[str | None, ...] = (None,)
    warn: str | None = None
    fail: str | None = None
    base: float = 0.0  # typical value (drift: background drift intensity)
    noise: float = 0.0  # day-to-day standard deviation
    worse: str = "up"  # the direction in which the value gets worse
    anomaly: str | None = None  # zscore | mad | mad_weekly: a band from the series' own history
    segmented: bool = True
    reference: float | None = None  # the same metric on the reference window
    label_delay: int = 0  # windows whose labels have not arrived yet
    groups: dict[str, float] = field(default_factory=dict)  # fairness: group -> share of rows


@dataclass(frozen=True)
class Incident:
    """A planted problem: ``shift`` added to a series from ``start`` days before the end."""

    check: str
    column: str | None
    segment: str | None  # "key=value", or None for overall (then every segment sees it too)
    start: int
    length: int
    shift: float


@dataclass(frozen=True)
class Segment:
    key: str
    value: str
    share: float
    since: int | None = None  # days before the end when the segment appeared


@dataclass(frozen=True)
class MonitorPlan:
    info: MonitorInfo
    rows_per_day: int
    segments: tuple[Segment, ...]
    checks: tuple[Check, ...]
    incidents: tuple[Incident, ...]
    categories: dict[str, tuple[str, ...]]  # categorical drift columns
    channel: str
    error_day: int | None = None  # days before the end of a failed run (no results)


LEAD_FEATURES = (
    "company_size", "visits_7d", "pages_viewed", "email_opens", "days_since_signup",
    "industry", "country", "lead_source",
)  # fmt: skip
LTV_FEATURES = (
    "tenure_months", "monthly_spend", "support_tickets", "seats", "plan_type", "channel",
)  # fmt: skip

LEAD_SCORING = MonitorPlan(
    info=MonitorInfo(
        name="lead_scoring",
        description="Lead scoring model v3: probability that a new lead converts within 30 days.",
        owner="@growth-ml",
        runbook="https://wiki.example.com/runbooks/lead-scoring",
        tags=("growth", "tier-1"),
    ),
    rows_per_day=4000,
    segments=(
        Segment("region", "na", 0.41),
        Segment("region", "emea", 0.27),
        Segment("region", "apac", 0.2),
        Segment("region", "latam", 0.11),
        Segment("region", "mena", 0.012, since=40),  # a new market: too few rows to judge
    ),
    checks=(
        Check("feature_drift", "drift", "psi", LEAD_FEATURES, "0.1", "0.25", base=0.06),
        Check("score_drift", "drift", "js", ("score",), "0.15", "0.25", base=0.03),
        Check("roc_auc", "performance", "roc_auc", warn="{drop: 0.03}", fail="{below: 0.7}",
              base=0.82, noise=0.006, worse="down", reference=0.82, label_delay=7),
        Check("precision", "performance", "precision", warn="{drop: 0.05}",
              base=0.61, noise=0.012, worse="down", reference=0.62, label_delay=7),
        Check("recall", "performance", "recall", warn="{drop: 0.05}",
              base=0.55, noise=0.012, worse="down", reference=0.56, label_delay=7),
        Check("log_loss", "performance", "log_loss", fail="{above: 0.6}",
              base=0.45, noise=0.01, reference=0.44, label_delay=7),
        Check("parity_gender", "fairness", "demographic_parity_ratio", fail="{below: 0.8}",
              base=0.3, noise=0.01, worse="down", segmented=False,
              groups={"female": 0.48, "male": 0.5, "nonbinary": 0.015}),
        Check("equal_opportunity_age", "fairness", "equal_opportunity_difference",
              warn="0.1", fail="0.2", base=0.55, noise=0.012, segmented=False, label_delay=7,
              groups={"18-29": 0.25, "30-44": 0.4, "45-64": 0.3, "65+": 0.05}),
        Check("null_rate", "quality", "null_rate", LEAD_FEATURES, "{above: 0.02}", "{above: 0.05}",
              base=0.004, noise=0.0015),
        Check("row_count", "quality", "row_count", anomaly="mad_weekly", segmented=False),
        Check("new_category_rate", "quality", "new_category_rate", ("industry", "country"),
              warn="{above: 0.01}", base=0.002, noise=0.001),
        Check("latency_p99", "latency", "p99", ("latency_ms",), "{above: 200}", "{above: 250}",
              base=150, noise=9),
        Check("conversion_rate", "metric", "conversion_rate", anomaly="mad",
              base=0.12, noise=0.006, worse="down"),
        Check("freshness_hours", "quality", "freshness_hours", fail="{above: 6}",
              base=1.5, noise=0.4, segmented=False),
    ),  # fmt: skip
    incidents=(
        Incident("feature_drift", "country", "region=emea", start=110, length=18, shift=0.75),
        Incident("feature_drift", "visits_7d", None, start=5, length=5, shift=0.6),
        Incident("roc_auc", None, None, start=70, length=20, shift=0.05),
        Incident("latency_p99", "latency_ms", None, start=185, length=3, shift=130),
        Incident("row_count", None, None, start=30, length=1, shift=-0.45),
        Incident("parity_gender", None, None, start=4, length=4, shift=0.09),
        Incident("null_rate", "email_opens", "region=apac", start=3, length=3, shift=0.07),
        Incident("conversion_rate", None, None, start=150, length=2, shift=0.04),
    ),
    categories={
        "industry": ("software", "retail", "finance", "health", "manufacturing", "education"),
        "country": ("us", "gb", "de", "fr", "br", "in", "jp", "au"),
        "lead_source": ("organic", "paid_search", "referral", "events", "partner"),
    },
    channel="#growth-ml",
)

LTV_FORECAST = MonitorPlan(
    info=MonitorInfo(
        name="ltv_forecast",
        description="12-month customer lifetime value forecast (regression).",
        owner="@finance-ds",
        runbook="https://wiki.example.com/runbooks/ltv",
        tags=("finance",),
    ),
    rows_per_day=4000,
    segments=(
        Segment("plan", "free", 0.6),
        Segment("plan", "pro", 0.3),
        Segment("plan", "enterprise", 0.1),
        Segment("channel", "paid", 0.4),
        Segment("channel", "organic", 0.6),
    ),
    checks=(
        Check("feature_drift", "drift", "psi", LTV_FEATURES, "0.1", "0.25", base=0.05),
        Check("prediction_drift", "drift", "js", ("prediction",), "0.15", "0.25", base=0.03),
        Check("mae", "performance", "mae", warn="{rise: 5}", fail="{above: 45}",
              base=38, noise=0.8, reference=38, label_delay=14),
        Check("rmse", "performance", "rmse", fail="{above: 80}",
              base=61, noise=1.5, reference=60, label_delay=14),
        Check("r2", "performance", "r2", fail="{below: 0.5}",
              base=0.71, noise=0.01, worse="down", reference=0.72, label_delay=14),
        Check("null_rate", "quality", "null_rate", LTV_FEATURES, "{above: 0.02}", "{above: 0.05}",
              base=0.003, noise=0.001),
        Check("mean_spend", "quality", "mean", ("monthly_spend",), fail="{outside: [20, 400]}",
              anomaly="zscore", base=120, noise=3),
        Check("row_count", "quality", "row_count", anomaly="mad_weekly", segmented=False),
        Check("latency_p95", "latency", "p95", ("latency_ms",), fail="{above: 500}",
              base=320, noise=15),
        Check("avg_prediction", "metric", "avg_prediction", anomaly="zscore", base=410, noise=6),
    ),  # fmt: skip
    incidents=(
        Incident("feature_drift", "monthly_spend", "plan=enterprise", start=60, length=10,
                 shift=0.8),
        Incident("mae", None, None, start=120, length=25, shift=6),
        Incident("null_rate", "seats", None, start=2, length=2, shift=0.06),
        Incident("prediction_drift", "prediction", None, start=200, length=5, shift=0.7),
        Incident("avg_prediction", None, None, start=90, length=1, shift=45),
    ),
    categories={
        "plan_type": ("free", "pro", "enterprise"),
        "channel": ("paid", "organic", "partner", "sales"),
    },
    channel="#finance-ds",
    error_day=100,
)

PLANS = (LEAD_SCORING, LTV_FORECAST)
MONITORS: tuple[MonitorInfo, ...] = tuple(plan.info for plan in PLANS)


def fill_result_tables(
    con: ibis.BaseBackend,
    database: str | None = None,
    *,
    days: int = 365,
    end: datetime = END,
    seed: int = 7,
) -> dict[str, pd.DataFrame]:
    """Create the result tables in ``database`` (replacing them) and fill them.

    Returns the frames written, by table name, so tests can compare against them.
    """
    frames = build_frames(days=days, end=end, seed=seed)
    for name, frame in frames.items():
        schema = TABLES[name]
        con.create_table(name, schema=schema, database=database, overwrite=True)
        con.insert(name, ibis.memtable(frame, schema=schema), database=database)
    return frames


def build_frames(*, days: int = 365, end: datetime = END, seed: int = 7) -> dict[str, pd.DataFrame]:
    """The four result tables as pandas frames, columns in table order."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[pd.DataFrame]] = {RUNS: [], RESULTS: [], HISTOGRAMS: [], ALERTS: []}
    for plan in PLANS:
        for name, frame in _monitor_frames(plan, days, end, rng).items():
            parts[name].append(frame)
    return {
        name: _conform(pd.concat(part, ignore_index=True), name) for name, part in parts.items()
    }


def _conform(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table's columns in order; columns this fixture does not fill are typed nulls."""
    schema = TABLES[table]
    for name, dtype in schema.items():
        if name not in frame:
            kind = "Int64" if dtype.is_integer() else dtype.to_pandas()  # Int64 holds nulls
            frame[name] = pd.Series(None, index=frame.index, dtype=kind)
        elif dtype.is_timestamp():
            frame[name] = pd.to_datetime(frame[name])
    return frame[list(schema.names)]


# --- one monitor ----------------------------------------------------------------------------


@dataclass
class _Windows:
    """The daily windows of one monitor and their runs."""

    start: pd.DatetimeIndex
    run_id: np.ndarray
    finished_at: pd.DatetimeIndex

    @property
    def count(self) -> int:
        return len(self.start)


def _monitor_frames(plan, days, end, rng) -> dict[str, pd.DataFrame]:
    windows, runs = _runs(plan, days, end)
    rows = _rows_per_window(plan, windows, rng)
    runs["rows_current"] = rows[None]
    results, histograms = [], []
    for check in plan.checks:
        for column in check.columns:
            for segment in _segments_of(plan, check):
                series, bins = _series(plan, check, column, segment, windows, rows, rng)
                results.append(series)
                if bins is not None:
                    histograms.append(bins)
    results = pd.concat(results, ignore_index=True)
    ok_runs = set(runs.run_id[runs.status == "success"])
    results = results[results.run_id.isin(ok_runs)]
    histograms = pd.concat(histograms, ignore_index=True) if histograms else pd.DataFrame()
    histograms = histograms[histograms.run_id.isin(ok_runs)]
    return {
        RUNS: runs,
        RESULTS: results,
        HISTOGRAMS: histograms,
        ALERTS: _alerts(plan, results),
    }


def _runs(plan: MonitorPlan, days: int, end: datetime) -> tuple[_Windows, pd.DataFrame]:
    start = pd.date_range(end=end - timedelta(days=1), periods=days, freq="D")
    run_id = np.array([f"{plan.info.name}-{s:%Y%m%d}" for s in start], dtype=object)
    started = start + pd.Timedelta(days=1, minutes=10)
    finished = started + pd.Timedelta(minutes=2)
    status = np.full(days, "success", dtype=object)
    error = np.full(days, None, dtype=object)
    if plan.error_day is not None and plan.error_day <= days:
        status[days - plan.error_day] = "error"
        error[days - plan.error_day] = "warehouse unreachable: connection timed out"
    runs = pd.DataFrame(
        {
            "run_id": run_id,
            "monitor": plan.info.name,
            "window_start": start,
            "window_end": start + pd.Timedelta(days=1),
            "started_at": started,
            "finished_at": finished,
            "status": status,
            "error": error,
            "rows_current": 0,
            "rows_reference": 30 * plan.rows_per_day,
            "driftline_version": "0.1.0",
        }
    )
    return _Windows(start, run_id, finished), runs


def _rows_per_window(plan: MonitorPlan, windows: _Windows, rng) -> dict[str | None, np.ndarray]:
    """Current row counts per window: overall (key None) and per "key=value" segment."""
    weekday = np.where(windows.start.day_of_week >= 5, 0.75, 1.0)
    overall = plan.rows_per_day * weekday * rng.normal(1, 0.03, windows.count)
    rows: dict[str | None, np.ndarray] = {None: np.round(overall).astype(np.int64)}
    for segment in plan.segments:
        n = np.round(overall * segment.share * rng.normal(1, 0.05, windows.count))
        if segment.since is not None:
            n[: max(windows.count - segment.since, 0)] = 0
        rows[f"{segment.key}={segment.value}"] = n.astype(np.int64)
    return rows


def _segments_of(plan: MonitorPlan, check: Check) -> list[Segment | None]:
    return [None, *plan.segments] if check.segmented else [None]


def _segment_name(segment: Segment | None) -> str | None:
    return None if segment is None else f"{segment.key}={segment.value}"


def _incident_shift(plan, check, column, segment, windows: _Windows) -> np.ndarray:
    """Sum of planted shifts for one series; an overall incident shows in every segment too, a
    segment's incident shows in the overall series in proportion to the segment's share."""
    shift = np.zeros(windows.count)
    name = _segment_name(segment)
    for incident in plan.incidents:
        if (incident.check, incident.column) != (check.name, column):
            continue
        first = windows.count - incident.start
        span = slice(max(first, 0), max(first + incident.length, 0))
        if incident.segment is None or incident.segment == name:
            shift[span] += incident.shift
        elif name is None:
            share = next(s.share for s in plan.segments if _segment_name(s) == incident.segment)
            shift[span] += incident.shift * share
    return shift


def _series(plan, check, column, segment, windows, rows, rng):
    """One check × column × segment over every window: its result rows and histogram rows."""
    n = rows[None] if check.metric == "row_count" else rows[_segment_name(segment)]
    shift = _incident_shift(plan, check, column, segment, windows)
    value, details, histograms = _values(plan, check, column, segment, windows, n, shift, rng)
    if check.metric == "row_count":
        n = np.round(value).astype(np.int64)  # the value is the number of rows itself
    reference = _reference_value(check, segment)
    reference = None if reference is None else round(reference, 6)  # as stored
    band = _anomaly_band(check, value) if check.anomaly else None
    status = _judge(check, value, reference, band, n)
    pending = _labels_pending(check, windows)
    status[pending] = "insufficient_data"
    reason = _reason(status, value, band, n, pending)
    value = np.where(pending | (n < MIN_ROWS), np.nan, value)
    details = _with_judgement(details, reference, band)
    bounds = _bound_columns(check, reference, band, windows.count)
    n_reference = round(30 * plan.rows_per_day * (1 if segment is None else segment.share))
    frame = pd.DataFrame(
        {
            "run_id": windows.run_id,
            "monitor": plan.info.name,
            "check_name": check.name,
            "check_type": check.type,
            "metric": check.metric,
            "column_name": column,
            "segment_key": None if segment is None else segment.key,
            "segment_value": None if segment is None else segment.value,
            "window_start": windows.start,
            "window_end": windows.start + pd.Timedelta(days=1),
            "value": value,
            "p_value": np.nan,
            "status": status,
            "warn_threshold": check.warn,
            "fail_threshold": check.fail,
            "n_current": n,
            "n_reference": n_reference,
            "details": [json.dumps(d) for d in details],
            "created_at": windows.finished_at,
            **bounds,
            "reference_value": np.nan if reference is None else reference,
            "reason": reason,
        }
    )
    appeared = n > 0  # a segment that did not exist yet has no rows at all
    if histograms is not None:
        histograms = histograms[np.repeat(appeared, len(histograms) // windows.count)]
    return frame[appeared], histograms


def _values(plan, check, column, segment, windows, n, shift, rng):
    """(value per window, details per window, histogram rows or None) for one series."""
    no_details = [{} for _ in range(windows.count)]
    if check.type == "drift":
        value, histograms = _drift(plan, check, column, segment, windows, n, shift, rng)
        return value, no_details, histograms
    if check.type == "fairness":
        value, details = _fairness(check, n, shift, rng)
        return value, details, None
    if check.metric == "row_count":
        return n * (1 + shift), no_details, None
    return _noisy(check, segment, n, shift, rng), no_details, None


def _with_judgement(details: list[dict], reference, band) -> list[dict]:
    """Details as SPEC'd conventions have them: reference value and anomaly band."""
    for i, entry in enumerate(details):
        if reference is not None:
            entry["reference_value"] = reference
        if band is not None and not np.isnan(band[0][i]):
            entry["band"] = {"lower": round(band[0][i], 6), "upper": round(band[1][i], 6)}
    return details


def _noisy(check: Check, segment: Segment | None, n: np.ndarray, shift, rng) -> np.ndarray:
    """Base value plus noise that grows as a segment gets smaller, plus the incident."""
    scale = np.minimum(np.sqrt(1000 / np.maximum(n, 1)), 2) if segment is not None else 1.0
    sign = -1 if check.worse == "down" else 1
    noise = rng.normal(0, check.noise, len(n)) * scale
    value = check.base + _segment_offset(check, segment) + noise + sign * shift
    return np.abs(value) if check.metric.endswith("rate") else value


def _segment_offset(check: Check, segment: Segment | None) -> float:
    """A stable difference between a segment and the whole, within two noise deviations."""
    if segment is None:
        return 0.0
    digest = hashlib.sha1(f"{check.name}{segment.value}".encode()).digest()
    return (digest[0] / 255 - 0.5) * check.noise * 4


def _reference_value(check: Check, segment: Segment | None) -> float | None:
    """The value on the reference window: the segment's own level, as a real run measures it."""
    if check.reference is None:
        return None
    return check.reference + _segment_offset(check, segment)


def _labels_pending(check: Check, windows: _Windows) -> np.ndarray:
    pending = np.zeros(windows.count, dtype=bool)
    if check.label_delay:
        pending[-check.label_delay :] = True
    return pending


# --- drift: histograms first, the statistic computed from them --------------------------------


def _drift(plan, check, column, segment, windows, n, shift, rng):
    """Reference and current histograms for one column, and the drift value they give."""
    labels, lower, upper, p = _bins(plan, column, segment)
    tilt = _tilt(column, len(p))
    intensity = check.base * rng.uniform(0.3, 1.3, windows.count) + shift
    q = p * np.exp(intensity[:, None] * tilt[None, :])
    q /= q.sum(axis=1, keepdims=True)
    current = rng.multinomial(np.maximum(n, 0), q)
    n_ref = max(int(30 * plan.rows_per_day * (1 if segment is None else segment.share)), 1)
    reference = np.round(p * n_ref).astype(np.int64)
    value = _drift_value(check.metric, reference, current)
    bins = len(labels)
    histograms = pd.DataFrame(
        {
            "run_id": np.repeat(windows.run_id, bins),
            "monitor": plan.info.name,
            "column_name": column,
            "segment_key": None if segment is None else segment.key,
            "segment_value": None if segment is None else segment.value,
            "bin_index": np.tile(np.arange(bins), windows.count),
            "bin_label": np.tile(np.array(labels, dtype=object), windows.count),
            "lower": np.tile(lower, windows.count),
            "upper": np.tile(upper, windows.count),
            "reference_count": np.tile(reference, windows.count),
            "current_count": current.reshape(-1),
        }
    )
    return value, histograms


def _bins(plan, column, segment):
    """Bin labels, edges and reference shares: shared edges, per-segment shares."""
    seed = int(hashlib.sha1(f"{column}{_segment_name(segment)}".encode()).hexdigest()[:8], 16)
    local = np.random.default_rng(seed)
    if column in plan.categories:
        labels = [*plan.categories[column], "__other__"]
        p = 1 / np.arange(1, len(labels) + 1) ** 0.8  # Zipf-like category shares
        lower = upper = np.full(len(labels), np.nan)
    else:
        scale = 10 ** (int(hashlib.sha1(column.encode()).hexdigest()[:2], 16) % 3)
        edges = np.round(np.quantile(np.random.default_rng(1).lognormal(1, 0.8, 5000) * scale,
                                     np.arange(1, BINS) / BINS), 2)  # fmt: skip
        lower = np.concatenate([[np.nan], edges])
        upper = np.concatenate([edges, [np.nan]])
        labels = [_interval_label(lo, hi) for lo, hi in zip(lower, upper)]
        p = np.full(BINS, 1 / BINS)
    p = p * local.uniform(0.85, 1.15, len(p))  # segments differ a little from the whole
    return labels, lower, upper, p / p.sum()


def _interval_label(lower: float, upper: float) -> str:
    lo = "-inf" if np.isnan(lower) else f"{lower:g}"
    hi = "inf" if np.isnan(upper) else f"{upper:g}"
    return f"[{lo}, {hi})"


def _tilt(column: str, bins: int) -> np.ndarray:
    """The direction a column drifts in: toward larger values, or between categories."""
    local = np.random.default_rng(int(hashlib.sha1(column.encode()).hexdigest()[:8], 16))
    tilt = np.linspace(-1.5, 1.5, bins) if bins == BINS else local.normal(0, 1, bins)
    return tilt / tilt.std()


def _drift_value(metric: str, reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """PSI or Jensen-Shannon distance per window (SPEC §6), from counts."""
    p = reference / max(reference.sum(), 1)
    q = current / np.maximum(current.sum(axis=1, keepdims=True), 1)
    if metric == "psi":
        pe, qe = np.maximum(p, EPS), np.maximum(q, EPS)
        return ((qe - pe) * np.log(qe / pe)).sum(axis=1)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0).sum(axis=1)
    return np.sqrt(np.maximum((kl_p + kl_q) / 2, 0))


# --- fairness: per-group rates first, the value computed from them ----------------------------


def _fairness(check: Check, n: np.ndarray, shift: np.ndarray, rng):
    """Per-group rates in ``details`` and the check's value computed from them."""
    names = list(check.groups)
    rate_key = "selection_rate" if check.metric.startswith("demographic") else "tpr"
    values, details = np.full(len(n), np.nan), []
    for i in range(len(n)):
        groups, excluded = {}, []
        for g, name in enumerate(names):
            rows = int(n[i] * check.groups[name])
            if rows < MIN_ROWS:
                excluded.append(name)
                continue
            # The first group is the one the incident hurts; the last one is advantaged slightly.
            base = check.base + (0.01 * g) - (shift[i] if g == 0 else 0)
            rates = {
                "selection_rate": base + rng.normal(0, check.noise),
                "tpr": base + 0.15 + rng.normal(0, check.noise),
                "fpr": 0.12 + rng.normal(0, 0.005),
                "precision": 0.6 + rng.normal(0, 0.01),
            }
            groups[name] = {k: round(float(v), 4) for k, v in rates.items()} | {"n": rows}
        chosen = [groups[g][rate_key] for g in groups]
        if len(chosen) >= 2:
            ratio = check.metric.endswith("ratio")
            values[i] = min(chosen) / max(chosen) if ratio else max(chosen) - min(chosen)
        details.append({"groups": groups, "excluded_groups": excluded})
    return values, details


# --- judging: statuses, anomaly bands and alert episodes ----------------------------------------


def _anomaly_band(check: Check, value: np.ndarray, k: float = 4.0):
    """A band learned from earlier windows only (the current one excluded): the last 28 windows,
    or with weekly seasonality the last 8 on the same weekday. NaN until enough history."""
    series = pd.Series(value)
    if check.anomaly != "mad_weekly":
        method = "zscore" if check.anomaly == "zscore" else "mad"
        center, spread = _center_spread(series, method, 28, 7)
    else:  # daily windows, so every 7th window is the same weekday
        center, spread = series * np.nan, series * np.nan
        for weekday in range(7):
            same_day = series.iloc[weekday::7]
            c, s = _center_spread(same_day, "mad", 8, 3)
            center.iloc[weekday::7], spread.iloc[weekday::7] = c.to_numpy(), s.to_numpy()
    return (center - k * spread).to_numpy(), (center + k * spread).to_numpy()


def _center_spread(series: pd.Series, method: str, history: int, min_history: int):
    past = series.shift(1).rolling(history, min_periods=min_history)
    if method == "zscore":
        return past.mean(), past.std()
    mad = past.apply(lambda x: np.median(np.abs(x - np.median(x))), raw=True)
    return past.median(), 1.4826 * mad


def _judge(check, value, reference, band, n) -> np.ndarray:
    """ok / warn / fail / insufficient_data per window, from thresholds and the band (a value
    outside the band fails, as in driftline)."""
    fail = _breaches(check.fail, check.worse, value, reference)
    warn = _breaches(check.warn, check.worse, value, reference)
    if band is not None:
        fail |= (value < band[0]) | (value > band[1])
    status = np.where(fail, "fail", np.where(warn, "warn", "ok")).astype(object)
    unknown = np.isnan(value) | (n < MIN_ROWS)
    if band is not None:
        unknown |= np.isnan(band[0])
    status[unknown] = "insufficient_data"
    return status


def _breaches(threshold, worse, value, reference) -> np.ndarray:
    """Where ``value`` breaches a threshold written as in the monitor YAML."""
    if threshold is None:
        return np.zeros(len(value), dtype=bool)
    rule = yaml.safe_load(threshold)
    if not isinstance(rule, dict):
        rule = {"above" if worse == "up" else "below": rule}
    (kind, x), *_ = rule.items()
    with np.errstate(invalid="ignore"):
        if kind == "above":
            return value > x
        if kind == "below":
            return value < x
        if kind == "drop":
            return value < reference - x
        if kind == "rise":
            return value > reference + x
        return (value < x[0]) | (value > x[1])  # outside


def _reason(status, value, band, n, pending) -> np.ndarray:
    """Why a window is insufficient_data, as a code of SPEC §5 (null for judged windows)."""
    reason = np.full(len(status), None, dtype=object)
    unknown = status == "insufficient_data"
    for code, applies in (
        ("no_history", np.isnan(band[0]) if band is not None else np.zeros(len(status), bool)),
        ("too_few_groups", np.isnan(value)),
        ("min_rows", n < MIN_ROWS),
        ("labels_not_mature", pending),
    ):  # the last that applies wins: from the most to the least fundamental
        reason[unknown & applies] = code
    return reason


def _bound_columns(check: Check, reference, band, windows: int) -> dict[str, np.ndarray]:
    """warn_lower ... fail_upper per window: each threshold's bounds, the band's in the fail ones."""
    columns = {}
    for level, threshold in (("warn", check.warn), ("fail", check.fail)):
        lower, upper = _bounds(threshold, check.worse, reference)
        columns[f"{level}_lower"] = np.full(windows, lower, dtype=float)
        columns[f"{level}_upper"] = np.full(windows, upper, dtype=float)
    if band is not None:  # np.fmax/fmin: a missing bound (NaN) takes the other one
        columns["fail_lower"] = np.fmax(columns["fail_lower"], np.round(band[0], 6))
        columns["fail_upper"] = np.fmin(columns["fail_upper"], np.round(band[1], 6))
    return columns


def _bounds(threshold, worse, reference) -> tuple[float, float]:
    """(lower, upper) of a threshold written as in the monitor YAML; NaN: no bound there."""
    if threshold is None:
        return np.nan, np.nan
    rule = yaml.safe_load(threshold)
    if not isinstance(rule, dict):
        rule = {"above" if worse == "up" else "below": rule}
    (kind, x), *_ = rule.items()
    if kind == "outside":
        return x[0], x[1]
    if kind in ("drop", "rise") and reference is None:
        return np.nan, np.nan
    return {
        "above": (np.nan, x),
        "below": (x, np.nan),
        "drop": (np.nan, np.nan) if reference is None else (reference - x, np.nan),
        "rise": (np.nan, np.nan) if reference is None else (np.nan, reference + x),
    }[kind]


def _alerts(plan: MonitorPlan, results: pd.DataFrame) -> pd.DataFrame:
    """One alert per breach episode: consecutive warn/fail windows of one series. Windows that
    could not be judged neither extend nor end an episode."""
    keys = ["check_name", "column_name", "segment_key", "segment_value"]
    judged = results[results.status.isin(["ok", "warn", "fail"])].sort_values("window_start")
    alerts = []
    for key, series in judged.groupby(keys, dropna=False, sort=True):
        for episode in _episodes(series):
            alerts.append(_alert(plan, dict(zip(keys, key)), series, episode))
    return pd.DataFrame(alerts, columns=list(TABLES[ALERTS].names))


def _episodes(series: pd.DataFrame):
    """(first, last, end) positions of breach runs; ``end`` is the first ok row or None."""
    breach = series.status.isin(["warn", "fail"]).to_numpy()
    i = 0
    while i < len(breach):
        if not breach[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(breach) and breach[j + 1]:
            j += 1
        yield i, j, (j + 1 if j + 1 < len(breach) else None)
        i = j + 1


def _alert(plan: MonitorPlan, key: dict, series: pd.DataFrame, episode) -> dict:
    first, last, end = episode
    rows = series.iloc[first : last + 1]
    key = {k: (None if pd.isna(v) else v) for k, v in key.items()}
    fingerprint = hashlib.sha1("|".join([plan.info.name, *map(str, key.values())]).encode())
    fingerprint = fingerprint.hexdigest()[:16]
    opened = rows.created_at.iloc[0]
    severity = "fail" if (rows.status == "fail").any() else "warn"
    worst = rows.iloc[-1]
    segment = key["segment_key"] and f"{key['segment_key']}={key['segment_value']}"
    subject = " ".join(p for p in (key["check_name"], key["column_name"], segment) if p)
    return {
        "alert_id": hashlib.sha1(f"{fingerprint}{opened}".encode()).hexdigest()[:20],
        "fingerprint": fingerprint,
        "monitor": plan.info.name,
        **key,
        "severity": severity,
        "state": "open" if end is None else "resolved",
        "opened_at": opened,
        "last_seen_at": rows.created_at.iloc[-1],
        "resolved_at": None if end is None else series.created_at.iloc[end],
        "last_run_id": worst.run_id,
        "value": worst.value,
        "message": f"{subject}: {worst.metric} = {worst.value:.4g}",
        "notify_status": "sent",
        "notify_attempts": 1,
        "channel": plan.channel,
        "slack_ts": f"{1_790_000_000 + len(rows)}.000100",
    }
