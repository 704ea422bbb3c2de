"""False alert episodes of the performance checks, with and without ``confidence`` and
``reference_band``: on the demo and on a churn-like scenario.

- The demo (``driftline demo``'s warehouse, ``--rows`` rows, the repository's example monitors):
  every window backfilled from the reference's end to the demo's end, with the performance,
  estimated-performance and conversion checks' thresholds as plain drops (``{drop: x}``), with
  ``confidence: 0.95`` added to each drop (as the example monitor has it for precision), and as ``{reference_band: 3}`` (warn) /
  ``{reference_band: 5}`` (fail). An episode that opens before the campaign of 2026-09-30 (the
  first planted change) is a false one.
- The churn-like scenario (``tests/churn_scenario.py``): daily windows, 8 segments, recall
  collapsing in one segment on a known day; an episode elsewhere, or before that day, is false.

    .venv/bin/python benchmarks/false_episodes.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

PERFORMANCE_CHECKS = ("performance_precision", "estimated_performance_precision", "performance_roc_auc", "conversion_rate")

VARIANTS = {
    "plain drops ({drop: x})": lambda text: _plain(text),
    "with confidence: 0.95": lambda text: _each_drop(_plain(text), lambda x: f"{{drop: {x}, confidence: 0.95}}"),
    "reference_band (warn 3, fail 5)": lambda text: _bands(_plain(text)),
}


def _plain(text: str) -> str:
    """The monitors' drops without the confidence the examples give some of them."""
    return text.replace(", confidence: 0.95}", "}")


def _each_drop(text: str, form) -> str:
    import re

    return re.sub(r"\{drop: ([0-9.]+)\}", lambda m: form(m.group(1)), text)


def _bands(text: str) -> str:
    import re

    text = re.sub(r"warn: \{drop: [0-9.]+\}", "warn: {reference_band: 3}", text)
    return re.sub(r"fail: \{drop: [0-9.]+\}", "fail: {reference_band: 5}", text)


def demo_counts(rows: int) -> dict[str, dict[str, int]]:
    from driftline import api
    from driftline.demo import prepare_project
    from driftline.demo_data import DEMO_END, INCIDENT_AT, build_demo_warehouse
    from driftline.result_schema import ALERTS

    base = Path(tempfile.mkdtemp(prefix="false_episodes_"))
    try:
        prepare_project(base / "template")
        build_demo_warehouse(base / "template" / "warehouse.duckdb", rows=rows)
        counts = {}
        for name, rewrite in VARIANTS.items():
            project = base / f"v{len(counts)}"
            shutil.copytree(base / "template", project)
            for monitor in (project / "monitors").glob("*.yml"):
                monitor.write_text(rewrite(monitor.read_text(encoding="utf-8")), encoding="utf-8")
            start = INCIDENT_AT - timedelta(days=32)  # the reference ends 2026-08-29
            summary = api.backfill(start, DEMO_END, project=project, at=DEMO_END + timedelta(days=8), notify=False)
            failed = [o.error for o in summary.outcomes if o.status != "success"]
            if failed:
                raise RuntimeError(f"{name}: {failed[:2]}")
            alerts = api.Workspace.open(project).store.table(ALERTS).execute()
            mine = alerts[alerts.check_name.isin(PERFORMANCE_CHECKS)]
            counts[name] = {"episodes": int(len(mine)), "false": int((mine.opened_at < INCIDENT_AT).sum())}
        return counts
    finally:
        shutil.rmtree(base, ignore_errors=True)


def churn_counts() -> dict[str, dict[str, int]]:
    import churn_scenario as churn

    from driftline import api
    from driftline.result_schema import ALERTS

    root = Path(tempfile.mkdtemp(prefix="churn_"))
    try:
        churn.write_project(root, churn.scenario())
        days = churn.monitored_days()
        api.backfill(days[0], days[-1] + churn.DAY, project=root, at=days[-1] + 3 * churn.DAY, notify=False)
        counted = churn.stored_episodes(api.Workspace.open(root).store.table(ALERTS).execute())
        return {f"{name} {churn.THRESHOLDS[name]}": c for name, c in counted.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print("churn-like scenario (8 segments + overall, 32 daily windows, recall collapses in s3 on day 21):")
    for name, c in churn_counts().items():
        print(f"  {name:48} episodes {c['episodes']:3}  false {c['false']:3}")
    if not args.skip_demo:
        print(f"demo ({args.rows:,} rows; performance, estimated precision and conversion checks; false = opened before 2026-09-30):")
        for name, c in demo_counts(args.rows).items():
            print(f"  {name:48} episodes {c['episodes']:3}  false {c['false']:3}")


if __name__ == "__main__":
    main()
