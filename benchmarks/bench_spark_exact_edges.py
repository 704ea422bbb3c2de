"""Exact quantile edges on Spark: one ``PERCENTILE`` aggregate per edge against one per column.

``edges: exact`` asks for the reference's exact quantiles. Spark's ``PERCENTILE`` aggregate keeps
every value of its column (a map of value counts) until it sorts them, so the query's memory grows
with the aggregates it holds. Written as one aggregate per edge (9 edges per column, 20 numeric
columns: 180), Spark keeps each column's values nine times; written as ``PERCENTILE(x, ARRAY(...))``
per column, as driftline now writes it, once (Spark computes equal aggregate expressions once).

The reference window of ``make_data.py``'s table (20 numeric features) is exported to Parquet and
both forms run in a local Spark (``local[2]``, 4g of driver heap, the size of the cluster
benchmark's executor), each in a fresh process, as a heap exhausted ends the JVM.

    python benchmarks/bench_spark_exact_edges.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_large import ready_database  # noqa: E402
from common import CURRENT_START, TABLE, load_average, machine, numeric_features, save  # noqa: E402

NUMERIC = 20
PROBABILITIES = [k / 10 for k in range(1, 10)]  # 10 bins: 9 edges a column


def aggregates(form: str) -> list[str]:
    """The edges query's aggregates in the form asked for, one output column per edge."""
    if form == "per_edge":
        return [f"PERCENTILE({c}, {p}e0)" for c in numeric_features(NUMERIC) for p in PROBABILITIES]
    array = ", ".join(f"{p}e0" for p in PROBABILITIES)
    return [f"ELEMENT_AT(PERCENTILE({c}, ARRAY({array})), {k + 1})" for c in numeric_features(NUMERIC) for k in range(len(PROBABILITIES))]


def child(form: str, parquet: str) -> None:
    """One form's query in a local Spark of this process; its time, or the error that ended it."""
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").config("spark.driver.memory", "4g")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.read.parquet(parquet).createOrReplaceTempView("reference")
    started = time.perf_counter()
    row = spark.sql(f"SELECT {', '.join(aggregates(form))} FROM reference").collect()[0]
    print(json.dumps({"seconds": time.perf_counter() - started, "edges": len(row)}))


def run(form: str, parquet: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", form, "--parquet", str(parquet)], capture_output=True, text=True)
    if done.returncode == 0:
        return {"form": form, "ok": True, **json.loads(done.stdout.strip().splitlines()[-1])}
    error = next((line for line in done.stderr.splitlines() if "OutOfMemoryError" in line), done.stderr.strip().splitlines()[-1])
    return {"form": form, "ok": False, "error": error.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.parquet)
        return
    import duckdb

    database = ready_database(args.rows)
    with tempfile.TemporaryDirectory(prefix="exact_edges_") as folder:
        parquet = Path(folder) / "reference.parquet"
        with duckdb.connect(str(database), read_only=True) as con:
            columns = ", ".join(numeric_features(NUMERIC))
            con.execute(f"COPY (SELECT {columns} FROM {TABLE} WHERE event_time < TIMESTAMP '{CURRENT_START}') TO '{parquet}' (FORMAT parquet)")
            rows = con.execute(f"SELECT count(*) FROM '{parquet}'").fetchone()[0]
        payload = {"machine": machine(), "load_average_start": load_average(), "reference_rows": rows, "runs": []}
        for form in ("per_column", "per_edge"):
            payload["runs"].append(run(form, parquet))
            print(f"  {form}: {payload['runs'][-1]}", flush=True)
    payload["load_average_end"] = load_average()
    print(f"[exact edges on spark] results: {save('spark_exact_edges', payload)}")


if __name__ == "__main__":
    main()
