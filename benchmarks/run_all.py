"""Run every benchmark in one session and render their tables.

    python benchmarks/run_all.py [--repeat 5] [--evidently-repeat 3] [--regenerate] [--skip evidently,metrics]

Steps: generate the data when missing (or with ``--regenerate``), then ``bench_drift.py``,
``bench_trailing.py``, ``bench_metrics.py`` and ``bench_evidently.py``, each in its own process,
one after the other, and finally ``report.py`` renders the JSON results as tables in
``benchmarks/data/results/tables.md``, which RESULTS.md quotes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_data import DEFAULT_DB, make  # noqa: E402

WIDE_DB = HERE / "data" / "bench_wide.duckdb"


def step(*args: str) -> None:
    print(f"\n$ {' '.join(args)}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, cwd=HERE.parent)
    print(f"({time.perf_counter() - started:.0f}s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--evidently-repeat", type=int, default=3)
    parser.add_argument("--regenerate", action="store_true", help="generate the data again even if present")
    parser.add_argument("--skip", default="", help="comma-separated: drift, scaling, trailing, metrics, evidently")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    for path, numeric, categorical in ((DEFAULT_DB, 20, 5), (WIDE_DB, 80, 20)):
        if path == WIDE_DB and {"drift", "scaling"} & skip:
            continue
        if args.regenerate or not path.exists():
            if path.exists():
                path.unlink()
            print(f"generating {path.name}: 5,000,000 rows, {numeric} numeric + {categorical} categorical ...", flush=True)
            info = make(path, numeric=numeric, categorical=categorical)
            print(f"  {info['seconds']:.0f}s", flush=True)

    bench = lambda name: str(HERE / name)  # noqa: E731
    if "drift" not in skip:
        step(bench("bench_drift.py"), "--repeat", str(args.repeat), *(["--no-scaling"] if "scaling" in skip else []))
    if "trailing" not in skip:
        step(bench("bench_trailing.py"), "--repeat", str(args.repeat))
    if "metrics" not in skip:
        step(bench("bench_metrics.py"), "--repeat", str(args.repeat))
    if "evidently" not in skip:
        step(bench("bench_evidently.py"), "--repeat", str(args.evidently_repeat))
    step(bench("report.py"))


if __name__ == "__main__":
    main()
