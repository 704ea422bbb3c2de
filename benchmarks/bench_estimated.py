"""What ``estimated_performance`` adds to a steady-state run of the demo's monitor.

The demo warehouse (``driftline.demo_data``, a million leads) and two copies of the example
monitor ``monitors/lead_scoring.yml``: as it is, and without its ``estimated_performance``
check. Each is run first once (its reference profile, calibration included, is built and
stored), then ``--repeat`` times on the same window with that profile, the two monitors' runs
interleaved: the steady state of a daily run. Medians and query counts of both, in one
workspace (one DuckDB instance).

    python benchmarks/bench_estimated.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Timing, load_average, machine, save, timed  # noqa: E402

WINDOW_DAY = 65  # a day after the campaign change, whose labels have matured


def without_estimate(text: str) -> str:
    """The monitor text without its estimated_performance check (and with another name)."""
    text = re.sub(r"  - estimated_performance:.*?(?=\n  - |\n\n|\Z)", "", text, flags=re.S)
    return text.replace("name: lead_scoring", "name: lead_scoring_realized_only")


def _runner(evaluator, name: str, window, now):
    def run() -> dict:
        outcome = evaluator.evaluate(window, now)
        if outcome.status != "success":
            raise RuntimeError(f"{name}: {outcome.error}")
        return {"queries": outcome.queries, "results": len(outcome.results)}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    from driftline.api import Workspace
    from driftline.demo_data import DEMO_START, build_demo_warehouse
    from driftline.windows import Window

    root = Path(tempfile.mkdtemp(prefix="bench_estimated_"))
    monitor = (HERE.parent / "monitors" / "lead_scoring.yml").read_text()
    assert "estimated_performance" in monitor, "the example monitor has no estimated_performance check"
    (root / "monitors").mkdir()
    (root / "monitors" / "with_estimate.yml").write_text(monitor)
    (root / "monitors" / "without_estimate.yml").write_text(without_estimate(monitor))
    (root / "driftline_project.yml").write_text("name: bench\nconnection: duckdb://warehouse.duckdb\n")
    print(f"[estimated] building the demo warehouse ({args.rows:,} rows) ...", flush=True)
    build_demo_warehouse(root / "warehouse.duckdb", rows=args.rows)

    workspace = Workspace.open(root)
    workspace.store.ensure_tables()
    workspace.con.con.execute("SET enable_progress_bar = false")
    start = DEMO_START + timedelta(days=WINDOW_DAY)
    window, now = Window(start, start + timedelta(days=1)), start + timedelta(days=30)
    payload: dict = {"machine": machine(), "load_average_start": load_average(), "rows": args.rows, "window": str(window)}
    runs = {}
    for name in ("lead_scoring_realized_only", "lead_scoring"):
        (bound,) = workspace.bind([name])
        runs[name] = _runner(workspace.evaluator(bound), name, window, now)
        payload[name] = {"first_run": timed(runs[name], 1, warmup=0).as_dict()}  # builds the profile
    # steady state: the two monitors' runs interleaved, so that a change of load hits both alike
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            steady = timed(run, 1, warmup=0)
            times[name] += steady.times
            payload[name]["steady_run"] = {**Timing(times[name], steady.extra).as_dict()}
    for name in runs:
        steady = payload[name]["steady_run"]
        print(f"  {name:<28} first {payload[name]['first_run']['median_s']:.3f}s, steady median {steady['median_s']:.3f}s "
              f"({steady.get('queries')} queries, {steady.get('results')} results)", flush=True)
    added = payload["lead_scoring"]["steady_run"]["median_s"] / payload["lead_scoring_realized_only"]["steady_run"]["median_s"] - 1
    payload["steady_added_share"] = added
    payload["load_average_end"] = load_average()
    print(f"  estimated_performance adds {100 * added:+.1f} % to the steady-state run")
    print(f"[estimated] results: {save('estimated', payload)}")


if __name__ == "__main__":
    main()
