"""NannyML's synthetic car-loan data as both benchmarks against NannyML use it
(``bench_nannyml.py``: estimated performance; ``bench_reference_band.py``: learned thresholds).

NannyML's side runs in its own virtual environment (``benchmarks/.venv-nannyml``, made by
``make -C benchmarks nannyml-venv``), which reads the data from files inside its package and
writes the rows both tools measure to a parquet file; driftline's side loads that file into a
fresh DuckDB project. NannyML's weeks are pandas' ``W`` periods, Monday to Sunday; driftline's
7-day windows are aligned to 1970-01-01, a Thursday, so the timestamps are moved ``SHIFT_DAYS``
later in DuckDB: the same rows fall in each week.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".venv-nannyml" / "bin" / "python"
METRICS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
SHIFT_DAYS = 3  # pandas weeks start on Monday, driftline's 7-day windows on Thursday
COLUMNS = ["timestamp", "y_pred_proba", "y_pred", "repaid"]
NANNYML_OPTIONS = dict(
    y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="repaid", timestamp_column_name="timestamp",
    metrics=METRICS, chunk_period="W", problem_type="classification_binary",
)

MONITOR = """
name: car_loan
source: {{table: car_loan, timestamp: ts}}
model: {{task: binary_classification, score: y_pred_proba, prediction: y_pred, label: repaid}}
schedule: {{every: 7d}}
reference: {{start: "{start}", end: "{end}"}}
min_rows: 1
checks:
{checks}
"""


def load_with_labels() -> tuple[Any, Any]:
    """NannyML's reference and analysis frames, the analysis with its labels (NannyML's venv)."""
    import nannyml as nml

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    return reference, analysis.merge(targets, on="id")


def write_rows(reference: Any, analysis: Any, path: Path) -> None:
    """The columns both tools read, reference then analysis, for driftline's side."""
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat([reference[COLUMNS], analysis[COLUMNS]]).to_parquet(path)


@contextlib.contextmanager
def driftline_project(rows: Path, reference_start: str, reference_end: str, checks: str, prefix: str) -> Iterator[Path]:
    """A fresh driftline project over ``rows`` with one weekly monitor of ``checks``; removed after."""
    import duckdb

    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with duckdb.connect(str(root / "warehouse.duckdb")) as con:
            con.execute(f"""CREATE TABLE car_loan AS SELECT CAST(timestamp AS TIMESTAMP) + INTERVAL {SHIFT_DAYS} DAY AS ts,
                            y_pred_proba, CAST(y_pred AS INTEGER) AS y_pred, CAST(repaid AS INTEGER) AS repaid
                            FROM read_parquet('{rows}')""")
        (root / "monitors").mkdir()
        (root / "monitors" / "car_loan.yml").write_text(MONITOR.format(start=reference_start, end=reference_end, checks=checks))
        (root / "driftline_project.yml").write_text("name: bench\nconnection: duckdb://warehouse.duckdb\n")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def overall_results(root: Path, summary: Any) -> Any:
    """The backfill's overall (unsegmented) result rows; an error if any window failed."""
    from driftline import api
    from driftline.result_schema import RESULTS

    failed = [o.error for o in summary.outcomes if o.status != "success"]
    if failed:
        raise RuntimeError(f"driftline failed: {failed[:3]}")
    frame = api.Workspace.open(root).store.table(RESULTS).execute()
    return frame[frame.segment_key.isna()]


def ran_as_child(description: str, nannyml_child: Callable[[], None], driftline_child: Callable[..., None]) -> bool:
    """Each benchmark runs its two sides as fresh processes of itself (``--child nannyml`` in
    NannyML's venv, ``--child driftline`` in the project's): True when this process was one of
    them and has run its side."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--child", choices=["nannyml", "driftline"], help=argparse.SUPPRESS)
    parser.add_argument("--args", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "nannyml":
        nannyml_child()
    elif args.child == "driftline":
        driftline_child(*args.args)
    return args.child is not None
