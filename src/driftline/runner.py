"""The run stage: one window of one monitor, end to end — measure (``measure``), judge
(``judge``, then ``anomaly``'s bands learned from history), store (``store``) — as one unit:
a window's results are replaced whole, or its run is recorded as an error.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import driftline
from driftline.anomaly import apply_anomaly_bands
from driftline.errors import DriftlineError
from driftline.judge import result_row, worst
from driftline.measure import WindowMeasurer
from driftline.plan.drift import Measurement
from driftline.plan.monitor import MonitorPlan
from driftline.plan.profile import now_utc
from driftline.result_schema import RESULTS
from driftline.store import ResultStore, WindowRecord
from driftline.windows import Window


@dataclass
class WindowOutcome:
    monitor: str
    window: Window
    run_id: str
    status: str  # success | error
    error: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0

    @property
    def worst(self) -> str:
        return "error" if self.status == "error" else worst(r["status"] for r in self.results)


class WindowEvaluator:
    """Evaluates windows of one monitor against one warehouse and result store."""

    def __init__(self, plan: MonitorPlan, store: ResultStore, source_fingerprint: str = ""):
        self.plan = plan
        self.store = store
        self.measurer = WindowMeasurer(plan, store, source_fingerprint)
        if plan.inputs is not None:
            plan.inputs.history = store.table(RESULTS)  # schema_change reads the previous run there

    @property
    def monitor(self):
        return self.plan.monitor

    def evaluate(self, window: Window, now: datetime | None = None) -> WindowOutcome:
        """Evaluate ``window``; ``now`` (default: the clock) decides label maturity and freshness."""
        run = _run_row(self.monitor.name, window)
        self.measurer.queries = 0
        self.store.mark_running(run)
        try:
            record, outcome = self._measure_and_judge(window, run, now or now_utc())
            self.store.replace_window(record)
        except DriftlineError as error:
            return self._failed(run, window, str(error))
        except Exception as error:  # the warehouse's own error, kept on one line
            return self._failed(run, window, f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}")
        return outcome

    def _failed(self, run: dict[str, Any], window: Window, message: str) -> WindowOutcome:
        run.update(status="error", error=message, finished_at=now_utc())
        self.store.record_error(run)
        return WindowOutcome(self.monitor.name, window, run["run_id"], "error", message, queries=self.measurer.queries)

    def _measure_and_judge(self, window: Window, run: dict[str, Any], now: datetime) -> tuple[WindowRecord, WindowOutcome]:
        measured = self.measurer.measure(window, now)
        results = [self._judged(m, run, window) for m in measured.measurements]
        results = apply_anomaly_bands(self.store, self.monitor, window, results)
        for row in measured.histogram_rows:
            row.update(run_id=run["run_id"], monitor=self.monitor.name)
        run.update(status="success", finished_at=now_utc(), rows_current=measured.rows_current, rows_reference=measured.rows_reference)
        outcome = WindowOutcome(self.monitor.name, window, run["run_id"], "success", results=results, queries=self.measurer.queries)
        return WindowRecord(run, results, measured.histogram_rows), outcome

    def _judged(self, m: Measurement, run: dict[str, Any], window: Window) -> dict[str, Any]:
        return result_row(m, run["run_id"], self.monitor.name, window, now_utc())


def _run_row(monitor: str, window: Window) -> dict[str, Any]:
    return {
        "run_id": uuid.uuid4().hex, "monitor": monitor, "window_start": window.start,
        "window_end": window.end, "started_at": now_utc(), "finished_at": None,
        "status": "running", "error": None, "rows_current": None, "rows_reference": None,
        "driftline_version": driftline.__version__,
    }
