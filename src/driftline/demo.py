"""``driftline demo``: build the synthetic lead-scoring warehouse, run the example monitors
over its whole history, and show what they caught (and what they would have sent to Slack)."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from driftline import api
from driftline.demo_data import DEMO_END, INCIDENT_AT, LABEL_DELAY, RESELLER_CHANNEL, SHIFTED_SCORE_REGION, build_demo_warehouse
from driftline.errors import ConfigError, Location

PROJECT_FILE = """\
name: driftline-demo
connection: duckdb://warehouse.duckdb
results:
  schema: null
notify:
  slack:
    channel: "#ml-alerts"
{credentials}report_url: null
"""


def repository_root() -> Path:
    """The checkout holding ``monitors/`` and ``macros/`` (the demo runs the real examples)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "monitors" / "lead_scoring.yml").is_file():
            return parent
    raise ConfigError("the example monitors were not found; run the demo from a source checkout", Location("monitors/lead_scoring.yml"))


def prepare_project(directory: Path) -> None:
    """A project in ``directory`` with the repository's monitors and macros."""
    root = repository_root()
    directory.mkdir(parents=True, exist_ok=True)
    for folder in ("monitors", "macros"):
        shutil.rmtree(directory / folder, ignore_errors=True)
        shutil.copytree(root / folder, directory / folder)
    (directory / "driftline_project.yml").write_text(PROJECT_FILE.format(credentials=_credentials()), encoding="utf-8")


def _credentials() -> str:
    """Slack credentials only when the user exported them; otherwise alerts are only printed."""
    if os.environ.get("SLACK_BOT_TOKEN"):
        return "    token: ${SLACK_BOT_TOKEN}\n"
    if os.environ.get("SLACK_WEBHOOK_URL"):
        return "    webhook_url: ${SLACK_WEBHOOK_URL}\n"
    return ""


def run_demo(directory: Path, rows: int = 1_000_000) -> int:
    started = time.perf_counter()
    prepare_project(directory)
    for stale in directory.glob("warehouse.duckdb*"):
        stale.unlink()
    facts = build_demo_warehouse(directory / "warehouse.duckdb", rows=rows)
    print(f"built {directory / 'warehouse.duckdb'}: {facts.rows:,} predictions, {facts.start:%Y-%m-%d} → {facts.end:%Y-%m-%d}, "
          f"campaign change on {facts.incident_at:%Y-%m-%d}, reseller in {facts.reseller_channel} from {facts.reseller_at:%Y-%m-%d}")
    summary = api.backfill(start=_first_window(directory), end=DEMO_END, project=directory, at=DEMO_END + timedelta(hours=1), notify=True)
    _print_timeline(summary)
    _print_precision_catches(summary)
    _print_alerts(summary)
    report = _write_report(directory)
    elapsed = time.perf_counter() - started
    print(f"\ndone in {elapsed:.0f} s. Explore: cd {directory} && driftline run --at 2026-10-31  |  open {report}")
    return api.EXIT_OK


def _first_window(directory: Path):
    from driftline.project import load_project

    project = load_project(directory)
    return min(m.spec.reference.end for m in project.monitors.values() if m.spec.reference.end is not None)


def _print_timeline(summary: api.RunSummary) -> None:
    print("\nwindow       status  breaches (worst first)")
    false_alarms = detected = after = 0
    for outcome in summary.outcomes:
        breached = [r for r in outcome.results if r["status"] in ("warn", "fail")]
        if outcome.window.end <= INCIDENT_AT:
            false_alarms += bool(breached)
        else:
            after += 1
            detected += bool(breached)
        print(f"{outcome.monitor[:12]:<12} {outcome.window.start:%Y-%m-%d} {outcome.worst:<6} {_describe(breached)}")
    before = len(summary.outcomes) - after
    print(f"\nwindows that end before the campaign change: {false_alarms} of {before} raised a breach (false alarms)")
    print(f"windows that hold campaign data: {detected} of {after} raised a breach")


# The two precision drops the demo plants: concept drift (only labels show it) and covariate
# shift (the scores show it on the day).
PLANTED_DROPS = (("region", SHIFTED_SCORE_REGION), ("channel", RESELLER_CHANNEL))
PRECISION_CHECKS = (("estimated_performance", "estimated precision"), ("performance", "realized precision"))


def _print_precision_catches(summary: api.RunSummary) -> None:
    """Which precision check flagged each planted drop, and from which day (window start)."""
    print("\nprecision drops: the first daily window each check flagged")
    for segment_key, segment_value in PLANTED_DROPS:
        caught = []
        for check_type, label in PRECISION_CHECKS:
            windows = [o.window for o in summary.outcomes for r in o.results
                       if r["check_type"] == check_type and r["metric"] == "precision" and r["segment_key"] == segment_key
                       and r["segment_value"] == segment_value and r["status"] in ("warn", "fail")]
            caught.append(_first_flagged(label, windows, labeled=check_type == "performance"))
        print(f"  {segment_key}={segment_value}: {'; '.join(caught)}")


def _first_flagged(label: str, windows: list, labeled: bool) -> str:
    """``estimated precision 2026-10-15``; a realized check also says when its labels were in."""
    if not windows:
        return f"{label} never"
    first = min(windows, key=lambda window: window.start)
    known = f" (known {first.end + LABEL_DELAY:%Y-%m-%d}, when its labels arrived)" if labeled else " (on the day)"
    return f"{label} {first.start:%Y-%m-%d}{known}"


def _describe(breached: list[dict]) -> str:
    if not breached:
        return ""
    counts = Counter((r["check_name"], r["column_name"]) for r in breached if r["segment_key"] is None)
    overall = ", ".join(f"{check}:{column}" if column else check for check, column in sorted(counts))
    segments = sum(1 for r in breached if r["segment_key"] is not None)
    return f"{overall or '(segments only)'}  (+{segments} segment breaches)"


def _print_alerts(summary: api.RunSummary) -> None:
    if not summary.notifications:
        return
    from driftline.notify.messages import render_text

    print(f"\n{len(summary.notifications)} Slack messages for these 90 days (first three shown):")
    for notification in summary.notifications[:3]:
        message = getattr(notification, "message", notification)
        print("\n" + render_text(message))


def _write_report(directory: Path) -> Path:
    try:
        from driftline.report_command import write_report
    except ImportError:
        return directory
    return write_report(directory, directory / "report.html")
