"""``{reference_band: 3}`` against NannyML's default thresholds, on NannyML's synthetic car-loan data.

NannyML's realized-performance calculator (0.13, in ``benchmarks/.venv-nannyml``) learns each
metric's thresholds from the reference cut into weekly chunks: mean ± 3 standard deviations of
the metric over those chunks, and alerts on the analysis chunks outside them. driftline's
``performance`` checks with ``warn: {reference_band: 3}`` learn their bands from the reference cut
into the schedule's 7-day windows. As in ``bench_nannyml.py`` the timestamps are moved 3 days
later in DuckDB, so that pandas' Monday weeks are driftline's Thursday-aligned windows.

Reported per metric: both bands, their difference, the reference weeks each used (NannyML keeps a
partial week at either end of the reference; driftline leaves partial windows out), and whether
the two alert in the same analysis weeks.

    python benchmarks/bench_reference_band.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from car_loan import METRICS, NANNYML_OPTIONS, SHIFT_DAYS, VENV_PYTHON, driftline_project, load_with_labels, overall_results, ran_as_child, write_rows  # noqa: E402

DATA = HERE / "data" / "nannyml_band" / "car_loan.parquet"


def nannyml_child() -> None:
    """NannyML's thresholds and alerts per metric; the rows written for driftline."""
    import nannyml as nml
    import pandas as pd

    reference, analysis = load_with_labels()
    calculator = nml.PerformanceCalculator(**NANNYML_OPTIONS)
    calculator.fit(reference)
    frame = calculator.calculate(analysis).to_df()
    # The same calculator fitted on the reference's whole weeks only (its last week is partial),
    # which is what driftline's band reads: the algorithms coincide there.
    weeks = pd.to_datetime(reference.timestamp).dt.to_period("W")
    counts = weeks.value_counts()
    partial = counts[counts < counts.median() * 0.9].index
    whole = reference[~weeks.isin(partial)]
    on_whole = nml.PerformanceCalculator(**NANNYML_OPTIONS)
    on_whole.fit(whole)
    whole_frame = on_whole.calculate(analysis).to_df()
    out = {"reference_start": str(reference.timestamp.min()), "reference_end": str(reference.timestamp.max()),
           "reference_weeks": int(weeks.nunique()), "partial_reference_weeks": [str(p) for p in partial], "metrics": {}}
    for metric in METRICS:
        analysis_rows = frame[frame[("chunk", "period")] == "analysis"]
        whole_rows = whole_frame[whole_frame[("chunk", "period")] == "analysis"]
        out["metrics"][metric] = {
            "lower": float(analysis_rows[(metric, "lower_threshold")].iloc[0]),
            "upper": float(analysis_rows[(metric, "upper_threshold")].iloc[0]),
            "whole_weeks_lower": float(whole_rows[(metric, "lower_threshold")].iloc[0]),
            "whole_weeks_upper": float(whole_rows[(metric, "upper_threshold")].iloc[0]),
            "reference_weeks": int(weeks.nunique()),
            "alerts": {str(r[("chunk", "start_date")]): bool(r[(metric, "alert")]) for _, r in analysis_rows.iterrows()},
            "whole_weeks_alerts": {str(r[("chunk", "start_date")]): bool(r[(metric, "alert")]) for _, r in whole_rows.iterrows()},
        }
    write_rows(reference, analysis, DATA)
    print(json.dumps(out, default=float))


def driftline_child(reference_start: str, reference_end: str, first_week: str, end: str) -> None:
    """A fresh project over the exported rows; the bands and alerts of every analysis week."""
    import pandas as pd

    from driftline import api

    checks = "\n".join(f"  - performance: {{metric: {m}, warn: {{reference_band: 3}}}}" for m in METRICS)
    with driftline_project(DATA, reference_start, reference_end, checks, "bench_band_") as root:
        summary = api.backfill(pd.Timestamp(first_week), pd.Timestamp(end), project=root, at=pd.Timestamp(end) + pd.Timedelta(days=30), notify=False)
        frame = overall_results(root, summary)
        out = {}
        for metric in METRICS:
            rows = frame[frame.metric == metric].sort_values("window_start")
            details = json.loads(rows.details.iloc[0])
            out[metric] = {
                "lower": float(rows.warn_lower.iloc[0]), "upper": float(rows.warn_upper.iloc[0]),
                "reference_weeks": details["reference_band"]["windows"],
                "alerts": {f"{pd.Timestamp(r.window_start) - pd.Timedelta(days=SHIFT_DAYS):%Y-%m-%d}": r.status == "warn" for r in rows.itertuples()},
            }
        print(json.dumps(out))


def compare(nannyml: dict, driftline: dict) -> dict:
    figures = {}
    for metric in METRICS:
        theirs, mine = nannyml["metrics"][metric], driftline[metric]
        their_alerts = {k[:10]: v for k, v in theirs["alerts"].items()}
        whole_alerts = {k[:10]: v for k, v in theirs["whole_weeks_alerts"].items()}
        shared = sorted(set(their_alerts) & set(mine["alerts"]))
        figures[metric] = {
            "nannyml_band": [theirs["lower"], theirs["upper"]], "driftline_band": [mine["lower"], mine["upper"]],
            "max_band_difference": max(abs(theirs["lower"] - mine["lower"]), abs(theirs["upper"] - mine["upper"])),
            "nannyml_whole_weeks_band": [theirs["whole_weeks_lower"], theirs["whole_weeks_upper"]],
            "max_band_difference_whole_weeks": max(abs(theirs["whole_weeks_lower"] - mine["lower"]), abs(theirs["whole_weeks_upper"] - mine["upper"])),
            "reference_weeks": {"nannyml": theirs["reference_weeks"], "driftline": mine["reference_weeks"]},
            "weeks_compared": len(shared),
            "same_alert": sum(their_alerts[w] == mine["alerts"][w] for w in shared),
            "same_alert_whole_weeks": sum(whole_alerts[w] == mine["alerts"][w] for w in shared),
            "nannyml_alerts": sum(their_alerts[w] for w in shared), "driftline_alerts": sum(mine["alerts"][w] for w in shared),
        }
    return figures


def main() -> None:
    if ran_as_child(__doc__.splitlines()[0], nannyml_child, driftline_child):
        return

    import pandas as pd

    from common import run_child, save

    if not VENV_PYTHON.exists():
        print(f"{VENV_PYTHON} is missing: create it with `make -C benchmarks nannyml-venv`")
        return
    nannyml = run_child(VENV_PYTHON, Path(__file__), ["--child", "nannyml"])
    shift = pd.Timedelta(days=SHIFT_DAYS)
    start = pd.Timestamp(nannyml["reference_start"]) + shift
    end = pd.Timestamp(nannyml["reference_end"]) + shift + pd.Timedelta(seconds=1)
    weeks = sorted(k[:10] for k in nannyml["metrics"]["roc_auc"]["alerts"])
    first_week, last_week = pd.Timestamp(weeks[0]) + shift, pd.Timestamp(weeks[-1]) + shift + pd.Timedelta(days=7)
    driftline = run_child(Path(sys.executable), Path(__file__), ["--child", "driftline", "--args", str(start), str(end), str(first_week), str(last_week)])
    payload = {"metrics": compare(nannyml, driftline)}
    for metric, f in payload["metrics"].items():
        print(f"{metric:12} bands NannyML [{f['nannyml_band'][0]:.4f}, {f['nannyml_band'][1]:.4f}] driftline "
              f"[{f['driftline_band'][0]:.4f}, {f['driftline_band'][1]:.4f}] (reference weeks {f['reference_weeks']['nannyml']} / "
              f"{f['reference_weeks']['driftline']}); same alert in {f['same_alert']}/{f['weeks_compared']} weeks; "
              f"against NannyML on the whole weeks: band difference {f['max_band_difference_whole_weeks']:.1e}, "
              f"same alert in {f['same_alert_whole_weeks']}/{f['weeks_compared']}")
    save("reference_band", payload)


if __name__ == "__main__":
    main()
