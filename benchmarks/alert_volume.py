"""How many Slack messages a channel receives over the demo's 90 days.

Replays the demo as production would see it: one `driftline run` a day (notifications on, no
Slack configured, so every message is rendered and counted instead of sent), and compares the
number of messages with what a tool without episodes would send: one message per breached
check × column × segment per window.

    .venv/bin/python benchmarks/alert_volume.py [--dir benchmarks/data/alert_volume] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from driftline import api
from driftline.demo import prepare_project
from driftline.demo_data import DEMO_END, build_demo_warehouse
from driftline.spec.types import to_utc_naive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/data/alert_volume"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    prepare_project(args.dir)
    build_demo_warehouse(args.dir / "warehouse.duckdb", rows=args.rows)
    started = time.perf_counter()
    messages: Counter[str] = Counter()
    breaches_per_window = 0
    day = to_utc_naive("2026-08-30T01:00")
    while day <= DEMO_END + timedelta(hours=1):
        summary = api.run(project=args.dir, at=day, notify=True)
        for notification in summary.notifications:
            messages[notification.monitor] += 1
        breaches_per_window += sum(
            1 for outcome in summary.outcomes for row in outcome.results if row["status"] in ("warn", "fail")
        )
        day += timedelta(days=1)
    total = sum(messages.values())
    print(f"daily runs from 2026-08-30 to {DEMO_END:%Y-%m-%d}, {args.rows:,} rows, {time.perf_counter() - started:.0f} s")
    print(f"messages with episodes (defaults): {total}  {dict(messages)}")
    print(f"messages without episodes (one per breached check x column x segment per window): {breaches_per_window}")
    if total:
        print(f"reduction: {breaches_per_window / total:.0f}x")


if __name__ == "__main__":
    main()
