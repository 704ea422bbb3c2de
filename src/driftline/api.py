"""The Python API: what the CLI, tests and orchestrators (Airflow, Dagster) call.

    >>> import driftline
    >>> summary = driftline.run(project="my_project")      # doctest: +SKIP
    >>> summary.exit_code                                   # doctest: +SKIP
    0

Errors raise ``driftline.DriftlineError`` subclasses carrying ``path:line:column: message``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from driftline import leases, writers
from driftline.alerts import process_alerts
from driftline.bind import BoundMonitor
from driftline.compilation import compile_monitors
from driftline.errors import ConfigError, Location, WarehouseError
from driftline.judge import FAIL, SEVERITY, WARN
from driftline.plan.labels import LABELS_NOT_MATURE, labels_mature
from driftline.plan.profile import now_utc
from driftline.project import load_project
from driftline.result_schema import RESULTS, TABLES
from driftline.runner import WindowOutcome
from driftline.spec.types import to_utc_naive
from driftline.store import ResultStore
from driftline.workspace import Workspace
from driftline.windows import Window, check_supported, due_windows, last_due_end, windows_between

EXIT_OK, EXIT_WARN, EXIT_FAIL, EXIT_ERROR = 0, 1, 2, 3


@dataclass(frozen=True)
class Planned:
    """What ``progress`` is told before a monitor's first window: the windows it will evaluate."""

    monitor: str
    windows: list[Window]


# Called with a Planned per monitor, then with each WindowOutcome as its window finishes (the CLI
# shows progress with it): run and backfill return only once every window is done.
Progress = Callable[["Planned | WindowOutcome"], None]


@dataclass
class RunSummary:
    """What a run or backfill evaluated: one outcome per monitor window."""

    outcomes: list[WindowOutcome] = field(default_factory=list)
    notifications: list = field(default_factory=list)  # driftline.outbox.Notification per message
    skipped: list[leases.Skip] = field(default_factory=list)  # monitors another process evaluates

    def to_pandas(self) -> pd.DataFrame:
        """Every check result of every evaluated window, one row each, as stored in
        ``driftline_results`` (a failed window has none)."""
        rows = [result for outcome in self.outcomes for result in outcome.results]
        return pd.DataFrame(rows, columns=list(TABLES[RESULTS].names))

    @property
    def exit_code(self) -> int:
        if any(o.status == "error" for o in self.outcomes):
            return EXIT_ERROR
        worst = max((SEVERITY.get(o.worst, 0) for o in self.outcomes), default=0)
        return {SEVERITY[FAIL]: EXIT_FAIL, SEVERITY[WARN]: EXIT_WARN}.get(worst, EXIT_OK)


def _moment(value: datetime | str, option: str) -> datetime:
    """``--at``, ``--start`` or ``--end`` as naive UTC; a value that is not a time, or one out of
    range (``0001-01-01T00:00+01:00`` overflows), is a ConfigError."""
    try:
        return check_supported(to_utc_naive(value))
    except (ValueError, OverflowError) as error:
        raise ConfigError(str(error), Location(f"--{option}")) from None


def validate(project: str | Path = ".", connection: str | None = None) -> list[str]:
    """Parse every file and check every monitor against the warehouse schema."""
    with Workspace.open(project, connection) as workspace:
        return [b.loaded.name for b in workspace.bind()]


def run(
    project: str | Path = ".",
    at: datetime | str | None = None,
    monitors: Sequence[str] | None = None,
    connection: str | None = None,
    notify: bool = True,
    dry_run: bool = False,
    wait: float | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Evaluate every due window not yet completed (first run: the latest due window).

    ``notify=False`` records alert episodes but sends nothing; ``dry_run=True`` renders the alert
    messages into ``RunSummary.notifications`` instead of sending them, and leaves them pending
    for the next run that notifies. A monitor another process is evaluating is skipped (see
    ``RunSummary.skipped``), or waited for up to ``wait`` seconds in all.
    """
    now = _moment(at, "at") if at is not None else now_utc()
    deadline = _deadline(wait)
    workspace = _open(project, connection, deadline)
    if isinstance(workspace, leases.Skip):
        return RunSummary(skipped=[workspace])

    def plan(monitor: BoundMonitor) -> list[Window]:
        spec = monitor.loaded.spec
        due = due_windows(now, spec.schedule, workspace.store.completed_until(spec.name))
        again = _failed_before(workspace.store, spec) + _labels_matured(workspace.store, spec, now)
        return sorted(set(due) | set(again))

    with workspace:
        writers.check_writable(workspace.con, "run")
        bound = workspace.bind(monitors)
        workspace.store.ensure_tables()
        return _evaluate(workspace, bound, plan, notify, now, dry_run, deadline, progress)


def _deadline(wait: float | None) -> float:
    """``time.monotonic()`` until which to wait for a lease (``wait``: seconds, None: none)."""
    if wait is not None and not (0 <= wait < float("inf")):
        raise ConfigError(f"expected a number of seconds, 0 or more, got {wait!r}", Location("--wait"))
    return time.monotonic() + (wait or 0)


def _open(project: str | Path, connection: str | None, deadline: float) -> Workspace | leases.Skip:
    """The workspace, or a Skip when its DuckDB file is open in another process after
    ``deadline``: DuckDB lets one process at a time open a file for writing."""

    def attempt() -> Workspace | leases.Skip:
        try:
            return Workspace.open(project, connection)
        except WarehouseError as error:
            pid = leases.file_lock_holder(error)
            if pid is None:
                raise
            return leases.Skip(None, pid=pid)

    return leases.retry_until(deadline, attempt, lambda got: isinstance(got, Workspace))


def _failed_before(store: ResultStore, spec) -> list[Window]:
    """Windows whose run failed (a warehouse error, a query since fixed): not completed, so
    evaluated again, even when a later window has succeeded since. Only windows of the current
    schedule: after a change of ``every`` the old ones are left to ``backfill``."""
    return [w for w in store.failed_windows(spec.name) if w.end - w.start == spec.schedule.every]


def _labels_matured(store: ResultStore, spec, now: datetime) -> list[Window]:
    """Windows evaluated before their labels arrived whose labels are mature now: evaluated
    again, so their performance is filled in (the store replaces a window atomically)."""
    if spec.model is None or spec.model.labels is None:
        return []
    waiting = store.windows_with_reason(spec.name, LABELS_NOT_MATURE)
    return [w for w in waiting if labels_mature(spec.model, w, now)]


def backfill(
    start: datetime | str,
    end: datetime | str,
    project: str | Path = ".",
    monitors: Sequence[str] | None = None,
    connection: str | None = None,
    notify: bool = False,
    at: datetime | str | None = None,
    dry_run: bool = False,
    wait: float | None = None,
    max_windows: int | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """(Re-)evaluate every whole window in [start, end) that is due; alerts, and monitors another
    process is evaluating, as in :func:`run`.

    More than ``max_windows`` windows in all (default :data:`MAX_BACKFILL_WINDOWS`) are refused
    before anything is opened or written: ``every: 1m`` over a year is 525,600 windows.
    """
    now = _moment(at, "at") if at is not None else now_utc()
    first, last = _moment(start, "start"), _moment(end, "end")
    if last <= first:  # checked before anything is opened: an empty range is a typo, not a no-op
        raise ConfigError(f"{end} is not after --start {start}: backfill evaluates the whole windows in [start, end)", Location("--end"))
    specs = [loaded.spec for loaded in load_project(project, connection).select(list(monitors or []))]
    _check_window_count({spec.name: _backfill_windows(spec, first, last, now) for spec in specs}, max_windows)
    deadline = _deadline(wait)
    workspace = _open(project, connection, deadline)
    if isinstance(workspace, leases.Skip):
        return RunSummary(skipped=[workspace])

    def plan(monitor: BoundMonitor) -> list[Window]:
        return _backfill_windows(monitor.loaded.spec, first, last, now)

    with workspace:
        writers.check_writable(workspace.con, "backfill")
        bound = workspace.bind(monitors)
        workspace.store.ensure_tables()
        return _evaluate(workspace, bound, plan, notify, now, dry_run, deadline, progress)


MAX_BACKFILL_WINDOWS = 1_000
"""The most windows a backfill evaluates unless it is given a higher ``max_windows``."""


def _backfill_windows(spec, first: datetime, last: datetime, now: datetime) -> list[Window]:
    schedule = spec.schedule
    return windows_between(first, min(last, last_due_end(now, schedule)), schedule.every)


def _check_window_count(plans: dict[str, list[Window]], max_windows: int | None) -> None:
    """Refuse a backfill of more windows than ``max_windows`` (default MAX_BACKFILL_WINDOWS)."""
    if max_windows is not None and max_windows < 1:
        raise ConfigError(f"expected a number of windows of at least 1, got {max_windows}", Location("--max-windows"))
    limit = MAX_BACKFILL_WINDOWS if max_windows is None else max_windows
    count = sum(len(windows) for windows in plans.values())
    if count <= limit:
        return
    largest = max(plans, key=lambda name: len(plans[name]))
    raise ConfigError(
        f"this backfill covers {count:,} windows ({len(plans[largest]):,} of monitor {largest!r}), more than {limit:,}; "
        f"pass --max-windows {count} to evaluate them all, or narrow --start/--end",
        Location("--max-windows"),
    )


def _evaluate(
    workspace: Workspace,
    bound: list[BoundMonitor],
    plan: Callable[[BoundMonitor], list[Window]],
    notify: bool,
    now: datetime,
    dry_run: bool = False,
    deadline: float = 0.0,
    progress: Progress | None = None,
) -> RunSummary:
    """Evaluate each monitor while holding its lease; ``plan`` is asked for its windows only
    then, so that a process that waited sees what the previous holder completed."""
    summary = RunSummary()
    store, ttl = workspace.store, workspace.project.settings.lease_ttl
    for monitor in bound:
        name = monitor.loaded.name
        lease, holder = leases.acquire_waiting(store.con, store.schema, name, ttl, deadline)
        if lease is None:
            summary.skipped.append(leases.Skip(name, holder))
            continue
        store.held[name] = (lease, ttl)
        try:
            evaluator = workspace.evaluator(monitor)
            outcomes = []
            windows = plan(monitor)
            if progress:
                progress(Planned(name, windows))
            for window in windows:
                outcomes.append(evaluator.evaluate(window, now))
                if progress:
                    progress(outcomes[-1])
                if store.held[name] is None:  # taken over while this window was measured
                    break
            summary.outcomes += outcomes
            summary.notifications += process_alerts(workspace, monitor, outcomes, notify, now, dry_run=dry_run)
        finally:
            held = store.held.pop(name)
            if held is not None:
                leases.release(store.con, store.schema, held[0])
    return summary


def compile(
    project: str | Path = ".",
    monitor: str | None = None,
    dialect: str | None = None,
    connection: str | None = None,
    at: datetime | str | None = None,
) -> str:
    """The SQL a run executes for the latest due window of each monitor, in ``dialect``."""
    now = _moment(at, "at") if at is not None else now_utc()
    with Workspace.open(project, connection) as workspace:
        return compile_monitors(workspace, [monitor] if monitor else None, dialect or workspace.con.name, now)


def report(project: str | Path = ".", out: str | Path = "report.html", connection: str | None = None) -> Path:
    """Write the HTML report of the project's result tables to ``out``; only reads the warehouse."""
    from driftline.report_command import write_report

    return write_report(project, Path(out), connection)
