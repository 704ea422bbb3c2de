"""Read what the report shows from the result tables: small frames, all computed in the warehouse.

The result tables hold aggregates only (a row per check, column, segment and window), so the
report reads them whole except for histograms, where only the overall bins come back, and the
``details`` JSON, which is read only for the rows that need it (fairness groups). Thresholds,
reasons and ranks come as columns of ``driftline_check_history``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import pandas as pd

from driftline.reasons import LABELS_NOT_MATURE
from driftline.reporting import summary
from driftline.result_schema import ALERTS, HISTOGRAMS, RESULTS, RUNS, TABLES
from driftline.views import check_history

_RUN_COLUMNS = ("run_id", "monitor", "window_start", "window_end", "finished_at", "status", "error")
_HISTOGRAM_COLUMNS = (
    "monitor", "column_name", "window_start", "bin_index", "bin_label",
    "reference_count", "current_count",
)  # fmt: skip
_DERIVED_COLUMNS = (  # what driftline_check_history adds to the results' columns
    "warn_threshold_value", "fail_threshold_value", "band_lower", "band_upper", "severity_rank",
)  # fmt: skip
_DETAIL_COLUMNS = (
    "monitor", "check_name", "check_type", "column_name", "segment_key", "segment_value",
    "window_start", "status", "details",
)  # fmt: skip


_PENDING_COLUMNS = ("monitor", "check_name", "window_start", "mature_at")


@dataclass(frozen=True)
class ReportData:
    """The frames the report is built from (empty frames when a table does not exist yet)."""

    history: pd.DataFrame  # driftline_check_history rows
    runs: pd.DataFrame  # one row per monitor window evaluated
    alerts: pd.DataFrame  # every alert episode, open and resolved
    details: pd.DataFrame  # details JSON of fairness rows and of explained overall breaches
    histograms: pd.DataFrame  # overall (unsegmented) drift bins per monitor, column and window
    pending: pd.DataFrame  # overall windows waiting for labels, and when each matures


def load(con: ibis.BaseBackend, database: str | None = None) -> ReportData:
    """Read the report's frames from the result tables in ``database``."""
    present = set(con.list_tables(database=database))
    missing = {RUNS, RESULTS, HISTOGRAMS, ALERTS} - present
    if missing:
        return _empty()
    return ReportData(
        history=_timestamps(check_history(con, database).to_pandas()),
        runs=_timestamps(con.table(RUNS, database=database).select(*_RUN_COLUMNS).to_pandas()),
        alerts=_timestamps(con.table(ALERTS, database=database).to_pandas()),
        details=_timestamps(_details(con, database).to_pandas()),
        histograms=_timestamps(_overall_histograms(con, database)),
        pending=_pending(con, database),
    )


def _details(con: ibis.BaseBackend, database: str | None):
    """Fairness rows, and the overall breaches whose details say which segments explain them."""
    results = con.table(RESULTS, database=database)
    explained = results.segment_key.isnull() & results.status.isin(["warn", "fail"]) & results.details.contains('"explained_by"')
    return results.filter((results.check_type == "fairness") | explained.fill_null(False)).select(*_DETAIL_COLUMNS)


def _pending(con: ibis.BaseBackend, database: str | None) -> pd.DataFrame:
    """The overall rows waiting for labels, with the ``mature_at`` their details name: the page
    says until when a check's newer windows wait."""
    results = con.table(RESULTS, database=database)
    waiting = results.filter((results.reason == LABELS_NOT_MATURE) & results.segment_key.isnull())
    frame = _timestamps(waiting.select(*_PENDING_COLUMNS[:-1], "details").to_pandas())
    return frame.assign(mature_at=summary.mature_at(frame.details)).drop(columns="details")


def _overall_histograms(con: ibis.BaseBackend, database: str | None) -> pd.DataFrame:
    """Overall bins with the window they belong to (histograms are keyed by run_id), one binning
    per column: where two drift checks bin a column differently, the first in name order
    (``quantile:…`` before ``uniform:…``; rows written before the column existed have none)."""
    bins = con.table(HISTOGRAMS, database=database)
    runs = con.table(RUNS, database=database).select("run_id", "window_start")
    overall = bins.filter(bins.segment_key.isnull())
    frame = overall.join(runs, "run_id").select(*_HISTOGRAM_COLUMNS, "binning").to_pandas()
    binning = frame.binning.fillna("")
    first = binning.groupby([frame.monitor, frame.column_name, frame.window_start]).transform("min")
    return frame[binning == first].drop(columns="binning")


def _timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns as naive UTC ``datetime64`` whatever the backend returned."""
    for column in frame.columns:
        if column.endswith(("_start", "_end", "_at")):
            values = pd.to_datetime(frame[column], utc=True)
            frame[column] = values.dt.tz_localize(None)
    return frame


def _empty() -> ReportData:
    history = pd.DataFrame(columns=[*TABLES[RESULTS].names, *_DERIVED_COLUMNS])
    return ReportData(
        history=_timestamps(history),
        runs=_timestamps(pd.DataFrame(columns=list(_RUN_COLUMNS))),
        alerts=_timestamps(pd.DataFrame(columns=list(TABLES[ALERTS].names))),
        details=_timestamps(pd.DataFrame(columns=list(_DETAIL_COLUMNS))),
        histograms=_timestamps(pd.DataFrame(columns=list(_HISTOGRAM_COLUMNS))),
        pending=_timestamps(pd.DataFrame(columns=list(_PENDING_COLUMNS))),
    )

