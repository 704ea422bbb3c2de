"""``driftline report``: the HTML report of a project's result tables, written to a file."""

from __future__ import annotations

from pathlib import Path

from driftline.api import Workspace
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
    out.write_text(html, encoding="utf-8")
    return out.resolve()
