"""``driftline report``: the HTML report of a project's result tables, written to a file."""

from __future__ import annotations

from pathlib import Path

from driftline.api import Workspace
from driftline.errors import DriftlineError, Location
from driftline.report import MonitorInfo, build_report


def monitor_infos(workspace: Workspace) -> list[MonitorInfo]:
    return [
        MonitorInfo(m.spec.name, m.spec.description, m.spec.owner, m.spec.runbook, tuple(m.spec.tags))
        for m in workspace.project.monitors.values()
    ]


def write_report(project: str | Path, out: Path, connection: str | None = None) -> Path:
    workspace = Workspace.open(project, connection)
    workspace.store.ensure_tables()
    html = build_report(workspace.con, monitor_infos(workspace), database=workspace.store.schema, title=f"driftline: {workspace.project.name}")
    _write(out, html)
    return out.resolve()


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
