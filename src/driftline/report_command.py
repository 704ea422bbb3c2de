"""``driftline report``: the HTML report of a project's result tables, written to a file.

A report only reads: it runs where neither the Slack secrets are set nor the warehouse may be
written to (a read-only DuckDB file, a read-only role). So it leaves the project's ``notify``
section unread, opens DuckDB read-only, and creates, migrates and writes nothing: result tables
that do not exist yet make an empty report.
"""

from __future__ import annotations

from pathlib import Path

import ibis

from driftline import connect
from driftline.errors import DriftlineError, Location, WarehouseError
from driftline.project import Project, load_project
from driftline.reporting import MonitorInfo, build_report
from driftline.result_schema import ALERTS, HISTOGRAMS, RESULTS, RUNS, TABLES

_READ = (RUNS, RESULTS, HISTOGRAMS, ALERTS)  # the tables the report reads


def monitor_infos(project: Project) -> list[MonitorInfo]:
    return [
        MonitorInfo(m.spec.name, m.spec.description, m.spec.owner, m.spec.runbook, tuple(m.spec.tags))
        for m in project.monitors.values()
    ]


def write_report(project: str | Path, out: Path, connection: str | None = None) -> Path:
    loaded = load_project(project, connection, notify=False)
    con = connect.connect(
        loaded.connection, loaded.root, read_only=True,
        duckdb=loaded.settings.duckdb.settings(loaded.root), spark=loaded.settings.spark.settings(loaded.root),
    )
    _check_current(con, loaded.results_schema)
    html = build_report(con, monitor_infos(loaded), database=loaded.results_schema, title=f"driftline: {loaded.name}")
    _write(out, html)
    return out.resolve()


def _check_current(con: ibis.BaseBackend, schema: str | None) -> None:
    """Result tables written by an older driftline lack columns the report reads. ``run``
    migrates them (it adds columns); a report may not write, so it says so instead."""
    present = set(con.list_tables(database=schema))
    for name in _READ:
        if name not in present:
            continue
        missing = [c for c in TABLES[name].names if c not in con.table(name, database=schema).columns]
        if missing:
            raise WarehouseError(
                f"{name} has no column {missing[0]!r}: it was written by an older driftline; "
                "run `driftline run` once (it adds the column), then `driftline report`"
            )


def _write(out: Path, html: str) -> None:
    """Write the report, creating missing directories as ``--out site/monitoring/report.html``
    leads one to expect; what still cannot be written is one line, not a traceback."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as error:
        # mkdir's "File exists" means a file stands where a directory of the path should be
        reason = "is a file, not a directory" if isinstance(error, FileExistsError) else error.strerror or str(error)
        raise DriftlineError(f"cannot write the report: {reason}; pick another --out", Location(str(error.filename or out))) from None
