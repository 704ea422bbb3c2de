"""Estimated performance against NannyML's CBPE, on NannyML's own synthetic car-loan data.

NannyML (0.13, in its own virtual environment ``benchmarks/.venv-nannyml``, made by
``make -C benchmarks nannyml-venv``) ships the data with its package:
``nannyml.load_synthetic_car_loan_dataset()`` reads it from files inside the package, no download.
Its CBPE estimates ROC AUC, F1, precision, recall, specificity and accuracy per weekly chunk
of the analysis period without the labels; the labels of the analysis period are shipped too, so
the realized values are known.

driftline runs ``estimated_performance`` checks of the same six metrics on the same rows, loaded
into DuckDB, over the same weeks (and ``performance`` checks for the realized values). NannyML's
weeks are pandas' ``W`` periods, Monday to Sunday; driftline's 7-day windows are aligned to
1970-01-01, a Thursday, so the timestamps are moved 3 days later in DuckDB (Monday 00:00 becomes
Thursday 00:00: the same rows fall in each week). Only whole weeks are compared: the first
analysis week shares its Monday with the reference's last rows, and the last one ends early.

Per metric, over the whole weeks: the mean |driftline − NannyML| of the estimates, the mean
|estimate − realized| of each, and the standard errors of both (NannyML's ``sampling_error``,
driftline's ``std_error``). Time and peak memory (``VmHWM``) of a fit and estimate for NannyML,
of a backfill of every week for driftline (a fresh project: its calibration included), each in a
fresh process.

    python benchmarks/bench_nannyml.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from car_loan import METRICS, NANNYML_OPTIONS, SHIFT_DAYS, VENV_PYTHON, driftline_project, load_with_labels, overall_results, ran_as_child, write_rows  # noqa: E402

DATA_DIR = HERE / "data" / "nannyml"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


# -- NannyML, in its own venv ------------------------------------------------------------------------


def nannyml_child() -> None:
    """Fit CBPE on the reference, estimate the analysis weeks; write the data for driftline."""
    import nannyml as nml

    started = time.perf_counter()
    reference, analysis = load_with_labels()
    loaded = time.perf_counter()
    estimator = nml.CBPE(**NANNYML_OPTIONS)
    estimator.fit(reference)
    results = estimator.estimate(analysis).filter(period="analysis").to_df()
    finished = time.perf_counter()
    chunks = []
    for _, row in results.iterrows():
        first, last = int(row[("chunk", "start_index")]), int(row[("chunk", "end_index")])
        chunk = {"start": str(row[("chunk", "start_date")]), "end": str(row[("chunk", "end_date")]),
                 "first_row": str(analysis.timestamp.iloc[first]), "last_row": str(analysis.timestamp.iloc[last])}
        for metric in METRICS:
            chunk[metric] = {k: row[(metric, k)] for k in ("value", "sampling_error", "realized")}
        chunks.append(chunk)
    write_rows(reference, analysis, DATA_DIR / "car_loan.parquet")
    print(json.dumps({
        "nannyml": nml.__version__,
        "rows_reference": len(reference), "rows_analysis": len(analysis),
        "reference_start": str(reference.timestamp.min()), "reference_end": str(reference.timestamp.max()),
        "load_s": loaded - started, "fit_estimate_s": finished - loaded, "peak_rss_mb": peak_rss_mb(),
        "calibrated": bool(estimator.needs_calibration),
        "chunks": chunks,
    }, default=float))


# -- driftline ---------------------------------------------------------------------------------------


def driftline_child(reference_start: str, reference_end: str, first_week: str, end: str) -> None:
    """A fresh project over the exported rows; one backfill of every analysis week, timed."""
    import pandas as pd

    from driftline import api

    checks = "\n".join(f"  - {kind}: {{metric: {m}}}" for kind in ("estimated_performance", "performance") for m in METRICS)
    with driftline_project(DATA_DIR / "car_loan.parquet", reference_start, reference_end, checks, "bench_nannyml_") as root:
        rss_before = peak_rss_mb()
        started = time.perf_counter()
        summary = api.backfill(pd.Timestamp(first_week), pd.Timestamp(end), project=root, at=pd.Timestamp(end) + pd.Timedelta(days=1), notify=False)
        finished = time.perf_counter()
        frame = overall_results(root, summary)
        values = {
            f"{row.check_type}:{row.metric}:{pd.Timestamp(row.window_start) - pd.Timedelta(days=SHIFT_DAYS):%Y-%m-%d}":
            [None if pd.isna(row.value) else float(row.value), None if pd.isna(row.std_error) else float(row.std_error)]
            for row in frame.itertuples()
        }
        print(json.dumps({
            "backfill_s": finished - started, "windows": len(summary.outcomes),
            "queries": sum(o.queries for o in summary.outcomes),
            "peak_rss_mb": peak_rss_mb(), "peak_rss_mb_before_run": rss_before, "values": values,
        }))


# -- the comparison ----------------------------------------------------------------------------------


def compare(nannyml: dict, driftline: dict) -> dict:
    """Per metric, over the whole weeks: mean absolute differences and mean standard errors."""
    import pandas as pd

    # whole weeks: rows from the week's first hour to its last (the first analysis week shares
    # its Monday with the reference's last rows, the last one ends early)
    hour = pd.Timedelta(hours=1)
    whole = [
        c for c in nannyml["chunks"]
        if pd.Timestamp(c["first_row"]) - pd.Timestamp(c["start"]) < hour and pd.Timestamp(c["end"]) - pd.Timestamp(c["last_row"]) < hour
    ]
    figures = {}
    for metric in METRICS:
        rows = []
        for chunk in whole:
            week = f"{pd.Timestamp(chunk['start']):%Y-%m-%d}"
            mine, my_error = driftline["values"][f"estimated_performance:{metric}:{week}"]
            realized, _ = driftline["values"][f"performance:{metric}:{week}"]
            theirs = chunk[metric]
            rows.append((mine, theirs["value"], realized, theirs["realized"], my_error, theirs["sampling_error"]))
        frame = pd.DataFrame(rows, columns=["driftline", "nannyml", "realized", "nannyml_realized", "std_error", "sampling_error"])
        figures[metric] = {
            "weeks": len(frame),
            "driftline_vs_nannyml": float((frame.driftline - frame.nannyml).abs().mean()),
            "driftline_vs_nannyml_max": float((frame.driftline - frame.nannyml).abs().max()),
            "driftline_vs_realized": float((frame.driftline - frame.realized).abs().mean()),
            "nannyml_vs_realized": float((frame.nannyml - frame.realized).abs().mean()),
            "realized_agree_max": float((frame.realized - frame.nannyml_realized).abs().max()),
            "std_error_mean": float(frame.std_error.mean()),
            "nannyml_sampling_error_mean": float(frame.sampling_error.mean()),
        }
    return {"whole_weeks": len(whole), "first_week": whole[0]["start"], "last_week": whole[-1]["start"], "metrics": figures}


def main() -> None:
    if ran_as_child(__doc__.splitlines()[0], nannyml_child, driftline_child):
        return

    import pandas as pd

    from common import load_average, machine, run_child, save

    payload: dict = {"machine": machine(), "load_average_start": load_average()}
    if not VENV_PYTHON.exists():
        payload["error"] = f"{VENV_PYTHON} is missing: create it with `make -C benchmarks nannyml-venv`"
        print(f"[nannyml] {payload['error']}")
        save("nannyml", payload)
        return
    print("[nannyml] NannyML CBPE on the car-loan data, in a fresh process ...", flush=True)
    nannyml = run_child(VENV_PYTHON, Path(__file__), ["--child", "nannyml"])
    starts = [pd.Timestamp(c["start"]) for c in nannyml["chunks"]]
    # the reference up to its last row (the analysis period may start on the same day)
    reference = (pd.Timestamp(nannyml["reference_start"]).floor("s") + pd.Timedelta(days=SHIFT_DAYS),
                 pd.Timestamp(nannyml["reference_end"]).floor("s") + pd.Timedelta(days=SHIFT_DAYS, seconds=1))
    analysis = (min(starts) + pd.Timedelta(days=SHIFT_DAYS), max(starts) + pd.Timedelta(days=SHIFT_DAYS + 7))
    print("[nannyml] driftline on the same weeks, in a fresh process ...", flush=True)
    window_args = [f"{t:%Y-%m-%dT%H:%M:%S}" for t in (*reference, *analysis)]
    driftline = run_child(sys.executable, Path(__file__), ["--child", "driftline", "--args", *window_args])
    payload["nannyml"] = {k: v for k, v in nannyml.items() if k != "chunks"}
    payload["driftline"] = {k: v for k, v in driftline.items() if k != "values"}
    payload["comparison"] = compare(nannyml, driftline)
    payload["load_average_end"] = load_average()
    for metric, f in payload["comparison"]["metrics"].items():
        print(f"  {metric:<12} |driftline-nannyml| {f['driftline_vs_nannyml']:.5f}  |driftline-realized| {f['driftline_vs_realized']:.5f}  "
              f"|nannyml-realized| {f['nannyml_vs_realized']:.5f}  se {f['std_error_mean']:.4f} vs {f['nannyml_sampling_error_mean']:.4f}")
    print(f"  NannyML fit+estimate {nannyml['fit_estimate_s']:.2f}s, peak RSS {nannyml['peak_rss_mb']:.0f} MB; "
          f"driftline backfill {driftline['backfill_s']:.2f}s ({driftline['windows']} windows, {driftline['queries']} queries), "
          f"peak RSS {driftline['peak_rss_mb']:.0f} MB")
    print(f"[nannyml] results: {save('nannyml', payload)}")


if __name__ == "__main__":
    main()
