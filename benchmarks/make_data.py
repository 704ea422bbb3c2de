"""Generate the benchmark table ``predictions`` in ``benchmarks/data/bench.duckdb``.

Everything is made by one SQL statement inside DuckDB. Every random draw is
``hash(i * 4096 + k)`` (row ``i``, stream ``k``) turned into a uniform in (0, 1), or a normal
through Box-Muller, so the table is identical on every run with the same parameters and DuckDB
version, whatever the thread count. (DuckDB's multi-argument ``hash(a, b, c)`` gives correlated
streams, hence one integer key per draw.)

Columns (defaults: 5M rows, 20 numeric, 5 categorical):

- ``id`` BIGINT, ``event_time`` TIMESTAMP spread evenly over 37 days from ``START``
  (2025-12-02 00:00 UTC): a 30-day reference [2025-12-02, 2026-01-01) and the 7-day window
  [2026-01-01, 2026-01-08), which is aligned to the 7-day schedule grid (1970-01-01 was a Thursday,
  and so is 2026-01-01);
- ``f0`` ... ``f{n-1}`` DOUBLE: normals, log-normals, uniforms and small counts; every third
  column has 2 % nulls, every fifth 0.5 % NaN; in the current week a few columns shift a little;
- ``c0`` ... ``c{m-1}`` VARCHAR with 4, 12, 30, 60, 250 ... values (Zipf-like), 1 % nulls;
- ``segment`` VARCHAR, 5 values; ``group_attr`` VARCHAR (a protected attribute, 2 values);
- ``score`` DOUBLE in (0, 1), ``label`` BOOLEAN drawn from the score.

    python benchmarks/make_data.py --rows 5000000 --numeric 20 --categorical 5
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DEFAULT_DB = DATA / "bench.duckdb"
TABLE = "predictions"
START = datetime(2025, 12, 2)
DAYS = 37
REFERENCE_DAYS = 30
CURRENT_START = START + timedelta(days=REFERENCE_DAYS)  # 2026-01-01, a 7-day grid boundary
CURRENT_END = CURRENT_START + timedelta(days=7)
SEGMENTS = ("north", "south", "east", "west", "online")
CATEGORY_SIZES = (4, 12, 30, 60, 250)


def uniform(k: int) -> str:
    """A uniform in (0, 1) from stream ``k`` of row ``i``."""
    return f"((hash(i * 4096 + {k}) % 1000000007)::DOUBLE + 0.5) / 1000000007.0"


def normal(k: int) -> str:
    """A standard normal through Box-Muller from streams ``k`` and ``k + 1``."""
    return f"(sqrt(-2.0 * ln({uniform(k)})) * cos(2.0 * pi() * {uniform(k + 1)}))"


def numeric_column(j: int) -> str:
    """Column ``f{j}``: a distribution chosen by ``j``, nulls/NaN on some, a shift in the last week."""
    base = 10 * j + 100
    shape = j % 4
    if shape == 0:
        value = f"(50.0 + 10.0 * {normal(base)})"
    elif shape == 1:
        value = f"exp(1.0 + 0.8 * {normal(base)})"
    elif shape == 2:
        value = f"(100.0 * {uniform(base)})"
    else:
        value = f"floor(-ln({uniform(base)}) * 3.0)"
    if j % 7 == 1:  # a mild shift in the current week for a few columns
        value = f"({value} * CASE WHEN event_time >= TIMESTAMP '{CURRENT_START}' THEN 1.15 ELSE 1.0 END)"
    if j % 5 == 4:
        value = f"CASE WHEN {uniform(base + 3)} < 0.005 THEN 'NaN'::DOUBLE ELSE {value} END"
    if j % 3 == 0:
        value = f"CASE WHEN {uniform(base + 4)} < 0.02 THEN NULL ELSE {value} END"
    return f"{value}::DOUBLE AS f{j}"


def categorical_column(j: int) -> str:
    """Column ``c{j}``: Zipf-like over ``size`` values, 1 % nulls."""
    size = CATEGORY_SIZES[j % len(CATEGORY_SIZES)] * (1 + j // len(CATEGORY_SIZES))
    base = 10 * j + 2000
    # u^2 skews toward small codes: value k has probability ~ 1/sqrt(k)
    code = f"floor(power({uniform(base)}, 2) * {size})::BIGINT"
    return f"CASE WHEN {uniform(base + 1)} < 0.01 THEN NULL ELSE 'v' || {code}::VARCHAR END AS c{j}"


def build_sql(rows: int, numeric: int, categorical: int) -> str:
    span_us = DAYS * 86_400 * 1_000_000
    features = [numeric_column(j) for j in range(numeric)] + [categorical_column(j) for j in range(categorical)]
    segments = "[" + ", ".join(f"'{s}'" for s in SEGMENTS) + "]"
    logit = f"(-1.0 + 1.2 * {normal(10)} + 0.4 * {normal(12)})"
    return f"""
CREATE OR REPLACE TABLE {TABLE} AS
WITH base AS (
    SELECT i, TIMESTAMP '{START}' + to_microseconds((i::HUGEINT * {span_us} // {rows})::BIGINT) AS event_time
    FROM range({rows}) t(i)
)
SELECT
    i AS id,
    event_time,
    {segments}[1 + (hash(i * 4096 + 1) % {len(SEGMENTS)})::INTEGER] AS segment,
    CASE WHEN {uniform(2)} < 0.5 THEN 'a' ELSE 'b' END AS group_attr,
    1.0 / (1.0 + exp(-{logit})) AS score,
    {uniform(14)} < 1.0 / (1.0 + exp(-({logit} + 0.6 * {normal(16)}))) AS label,
    {(',' + chr(10) + '    ').join(features)}
FROM base
"""


def make(path: Path = DEFAULT_DB, rows: int = 5_000_000, numeric: int = 20, categorical: int = 5) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute("SET enable_progress_bar = false")
        # rows come out of range() in event_time order and insertion order is kept (DuckDB's
        # default), so the table is stored sorted by time and zone maps prune the windows
        con.execute("SET preserve_insertion_order = true")
        con.execute(build_sql(rows, numeric, categorical))
        con.execute("CHECKPOINT")
        count = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    return {"path": str(path), "rows": count, "numeric": numeric, "categorical": categorical, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--numeric", type=int, default=20)
    parser.add_argument("--categorical", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_DB)
    args = parser.parse_args()
    info = make(args.out, args.rows, args.numeric, args.categorical)
    print(f"{info['rows']:,} rows, {info['numeric']} numeric + {info['categorical']} categorical features "
          f"-> {info['path']} in {info['seconds']:.1f}s")


if __name__ == "__main__":
    main()
