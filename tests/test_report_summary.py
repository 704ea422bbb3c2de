"""The report's first screen on the demo, as headless Chromium leaves it: each monitor's headline,
its rows of breaching checks and the line of windows waiting for labels.

What the page should say is computed here again from ``driftline_results`` with pandas and numpy
(SPEC §5, "The summary of a monitor"), not taken from the report's code. The browser tests need
Debian's ``chromium`` package and are skipped, saying so, without it. A screenshot of each
monitor's summary goes to ``artifacts/report-summary-<monitor>.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from bs4 import BeautifulSoup
from headless_chromium import chromium, needs_chromium

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
pytestmark = needs_chromium

SERIES = ["monitor", "check_name", "column_name", "segment_key", "segment_value"]
WAITING = "labels_not_mature"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo (its 90 days, on fewer rows), its report, and its results table."""
    from driftline import demo

    directory = tmp_path_factory.mktemp("demo")
    demo.run_demo(directory, rows=30_000)
    with duckdb.connect(str(directory / "warehouse.duckdb"), read_only=True) as con:
        results = con.sql("select * from driftline_results").df()
    return directory / "report.html", results


@pytest.fixture(scope="module")
def page(demo, tmp_path_factory):
    """The DOM after the page's script ran, and Chromium's log."""
    report, _ = demo
    done = chromium(tmp_path_factory.mktemp("chromium"), "--enable-logging=stderr", "--v=0",
                     "--virtual-time-budget=10000", "--dump-dom", report.as_uri())  # fmt: skip
    return BeautifulSoup(done.stdout, "html.parser"), done.stderr


@pytest.fixture(scope="module")
def expected(demo):
    """Per monitor, the rows of breaching checks in triage order, computed from the results."""
    _, results = demo
    return {monitor: _expected_rows(findings) for monitor, findings in _findings(results).groupby("monitor")}


def test_no_console_errors_and_every_anchor_resolves(page):
    dom, log = page
    assert dom.html.get("data-errors") == "0", dom.html.get("data-last-error")
    assert not [line for line in log.splitlines() if "CONSOLE" in line]
    ids = {tag["id"] for tag in dom.find_all(id=True)}
    links = [a["href"][1:] for a in dom.find_all("a", href=True) if a["href"].startswith("#") and a["href"] != "#"]
    assert links and [link for link in links if link not in ids] == []


def test_each_monitor_lists_one_row_per_breaching_check_in_triage_order(page, expected):
    dom, _ = page
    assert set(expected) == {"lead_scoring", "lead_conversion"}
    for monitor, rows in expected.items():
        shown = dom.select(f'section#{monitor} table.triage tbody tr')
        cells = [row.find_all("td") for row in shown]
        assert [c[0].get_text() for c in cells] == [r["check"] for r in rows]
        assert [c[1].get_text() for c in cells] == [r["severity"] for r in rows]
        assert [c[2].find(string=True, recursive=False) for c in cells] == [r["collapsed"] for r in rows]
        assert [c[3].get_text() for c in cells] == [f"{r['since']:%Y-%m-%d}" for r in rows]
        # each row links to its check's chart, and to the runbook
        assert [c[0].a["href"] for c in cells] == [f"#{monitor}-{r['check']}" for r in rows]
        assert all(c[4].a["href"].startswith("https://") for c in cells)


def test_the_drift_row_collapses_the_drifted_columns(page, expected):
    """The demo's campaign moves industry, time_on_site_s and visits_7d (and the score in a
    segment): one row names them all, with the worst series."""
    dom, _ = page
    drift = next(r for r in expected["lead_scoring"] if r["check"] == "drift_psi")
    assert {"industry", "time_on_site_s", "visits_7d"} <= set(drift["affected"])
    assert drift["severity"] == "fail" and len(dom.select("section#lead_scoring table.triage tbody tr")) < 10


def test_each_monitor_opens_with_its_headline(page, demo, expected):
    dom, _ = page
    _, results = demo
    for monitor, rows in expected.items():
        section = dom.select_one(f"section#{monitor}")
        headline = section.select_one("p.headline").get_text()
        assert section.find("p") is section.select_one("p.headline")  # first thing under the title
        clauses = headline.split("; ")
        assert clauses[:2] == _expected_clauses(rows, _measured(results, monitor)), headline
        overview = dom.select_one(f'#overview a[href="#{monitor}"]').find_parent("tr")
        assert overview.select_one("td.headline").get_text() == headline  # the top lists it too


def test_drift_at_a_glance_counts_the_drifted_features(page, demo, expected):
    dom, _ = page
    _, results = demo
    drift_rows = [r for r in expected["lead_scoring"] if r["check_type"] == "drift"]
    drifted = sorted({c for r in drift_rows for c in r["columns"]})
    glance = dom.select_one("#lead_scoring-drift")
    assert glance.select_one(".drifted").get_text() == f"{len(drifted)} of {_measured(results, 'lead_scoring')}"
    figures = glance.find_next("div", class_="multiples").select("figure.small")
    assert sorted(f["data-column"] for f in figures if f.has_attr("data-column")) == drifted
    assert all(f.select_one("svg rect.bar") for f in figures)


def test_performance_waiting_for_labels_shows_its_latest_judged_status(page, demo):
    dom, _ = page
    _, results = demo
    check = results[(results.monitor == "lead_scoring") & (results.check_name == "performance_precision")]
    overall = check[check.segment_key.isna()]
    waits = overall.reason.fillna("") == WAITING
    matured = overall.window_start[~waits].max()
    newer = overall[waits & (overall.window_start > matured)]
    until = max(pd.Timestamp(json.loads(d)["mature_at"]) for d in newer.details)
    assert len(newer) > 0
    line = f"{newer.window_start.nunique()} newer windows waiting for labels until {until:%Y-%m-%d}"

    section = dom.select_one("section#lead_scoring-performance_precision")
    waiting = section.select_one("p.waiting")
    assert line in waiting.get_text() and f"{matured:%Y-%m-%d}" in waiting.get_text()
    latest = _latest_judged(check)
    status = _worst(latest.status)
    assert waiting.select_one(".status").get_text() == status.replace("_", " ")
    assert section.select_one("h3 .status").get_text() == status
    row = next(r for r in dom.select("section#lead_scoring table.triage tbody tr") if r.td.get_text() == "performance_precision")
    assert row.select_one(".waiting").get_text() == line

    # Each heat map cell: the status of its segment's latest window with labels, not the grey
    # "insufficient data" of the windows still waiting (which every segment has)
    heat = dom.select_one("section#lead_scoring table.heat")
    segments = [th.get_text() for th in heat.select("thead th")][1:]
    cells = next(tr for tr in heat.select("tbody tr") if tr.th.get_text() == "performance_precision").select("td")
    label = ["overall" if _str(k) is None else f"{k}={v}" for k, v in zip(latest.segment_key, latest.segment_value)]
    statuses = dict(zip(label, latest.status))
    assert len(segments) == len(statuses)
    assert [c["class"][1] for c in cells] == [f"st-{statuses[s]}" for s in segments]
    assert statuses["overall"] in ("ok", "warn", "fail")


def test_screenshot_of_each_monitors_summary(page, demo, tmp_path):
    """The summary of each monitor (title to the heat map) on a page of its own, with the report's
    styles, photographed for a person to look at."""
    report, _ = demo
    html = report.read_text(encoding="utf-8")
    head = html[: html.index("<body>") + len("<body>")]
    ARTIFACTS.mkdir(exist_ok=True)
    for monitor in ("lead_scoring", "lead_conversion"):
        start = html.index(f'<section class="monitor" id="{monitor}">')
        end = html.index('<section class="check"', start)
        summary = tmp_path / f"{monitor}.html"
        summary.write_text(f"{head}<main>{html[start:end]}</section></main></body></html>", encoding="utf-8")
        shot = ARTIFACTS / f"report-summary-{monitor}.png"
        shot.unlink(missing_ok=True)
        chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1300", summary.as_uri())
        assert shot.stat().st_size > 20_000


# --- the summary, computed again from the results ------------------------------------------------


def _latest_judged(results: pd.DataFrame) -> pd.DataFrame:
    """Per series, the latest row not waiting for labels."""
    ordered = results[results.reason.fillna("") != WAITING].sort_values(["window_start", "created_at"])
    return ordered.groupby(SERIES, dropna=False).tail(1)


def _findings(results: pd.DataFrame) -> pd.DataFrame:
    """The breaching series of every monitor with their bound, effect and start of breach."""
    latest = _latest_judged(results)
    found = latest[latest.status.isin(["warn", "fail"])].copy()
    found["bound"] = pd.Series([_bound(row) for row in found.itertuples()], index=found.index, dtype=float)
    base = found.bound.where(found.bound.notna() & (found.bound != 0), found.reference_value)
    found["effect"] = np.where(base.notna() & (base != 0), (found.value - base).abs() / base.abs(), found.value.abs())
    found["since"] = [_since(results, row) for row in found.itertuples()]
    found["label"] = [
        " · ".join(p for p in (_str(r.column_name), None if _str(r.segment_key) is None else f"{r.segment_key}={r.segment_value}") if p) or "overall"
        for r in found.itertuples()
    ]  # fmt: skip
    return found


def _bound(row) -> float | None:
    """The bound of the row's severity it is past, else the anomaly band edge it is past."""
    threshold = (getattr(row, f"{row.status}_lower"), getattr(row, f"{row.status}_upper"))
    band = (json.loads(row.details) if isinstance(row.details, str) else {}).get("band") or {}
    for low, high in (threshold, (band.get("lower"), band.get("upper"))):
        if low is not None and not pd.isna(low) and row.value < low:
            return low
        if high is not None and not pd.isna(high) and row.value > high:
            return high
    return None


def _since(results: pd.DataFrame, row) -> pd.Timestamp:
    """The first window of the series' trailing run of warn/fail among its judged windows."""
    same = np.ones(len(results), bool)
    for name in SERIES:
        value = getattr(row, name)
        same &= results[name].isna().to_numpy() if _str(value) is None else (results[name] == value).to_numpy()
    judged = results[same & results.status.isin(["ok", "warn", "fail"]).to_numpy()].sort_values("window_start")
    healthy = np.flatnonzero(~judged.status.isin(["warn", "fail"]).to_numpy())
    return judged.window_start.iloc[healthy[-1] + 1 if len(healthy) else 0]


def _expected_rows(findings: pd.DataFrame) -> list[dict]:
    rows = []
    for check, part in findings.groupby("check_name"):
        part = part.assign(_fail=part.status == "fail").sort_values(["_fail", "effect"], ascending=False)
        worst = part.iloc[0]
        columns = sorted(part.column_name.dropna().unique())
        if columns:
            affected = columns
        else:
            segments = sorted({"overall" if _str(k) is None else f"{k}={v}" for k, v in zip(part.segment_key, part.segment_value)})
            affected = sorted(segments, key=lambda s: (s != "overall", s))
        listed = ", ".join(affected[:6]) + (f" +{len(affected) - 6} more" if len(affected) > 6 else "")
        rows.append({
            "check": check, "check_type": worst.check_type, "columns": columns, "affected": affected,
            "severity": "fail" if part._fail.any() else "warn", "overall": part.segment_key.isna().any(),
            "effect": worst.effect, "worst": worst, "since": part.since.min(),
            "collapsed": f"{listed}; worst: {worst.label} {worst.metric} {worst.value:.4g}",
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["severity"] != "fail", not r["overall"], -r["effect"], r["check"]))


def _measured(results: pd.DataFrame, monitor: str) -> int:
    drift = results[(results.monitor == monitor) & (results.check_type == "drift") & results.column_name.notna()]
    latest = drift[drift.window_start == drift.groupby("check_name").window_start.transform("max")]
    return latest.column_name.nunique()


def _expected_clauses(rows: list[dict], measured: int) -> list[str]:
    """The first clauses of the headline: drift checks share one, others say their worst finding."""
    drift = [r for r in rows if r["check_type"] == "drift"]
    subjects = [r for r in rows if r["check_type"] != "drift" or r is drift[0]]
    clauses, said = [], None
    for row in subjects[:2]:
        since = min(r["since"] for r in drift) if row["check_type"] == "drift" else row["since"]
        when = "" if since == said else f" since {since.day} {since:%b}"
        said = since
        if row["check_type"] == "drift":
            drifted = {c for r in drift for c in r["columns"]}
            clauses.append(f"{len(drifted)} of {measured} features drifted{when}")
            continue
        worst = row["worst"]
        subject = worst.metric + (f" of {worst.column_name}" if _str(worst.column_name) else "")
        subject += f" in {worst.segment_value}" if _str(worst.segment_key) else ""
        if not pd.isna(worst.reference_value):
            before, after = _two(worst.reference_value, worst.value)
            verb = "fell" if worst.value < worst.reference_value else "rose"
            clauses.append(f"{subject} {verb} from {before} to {after}{when}")
        else:
            line, value = _two(worst.bound, worst.value)
            clauses.append(f"{subject} at {value} ({'below' if worst.value < worst.bound else 'above'} {line}){when}")
    return clauses


def _two(a: float, b: float) -> tuple[str, str]:
    digits = next((d for d in (2, 3, 4) if f"{a:.{d}g}" != f"{b:.{d}g}"), 4)
    return f"{a:.{digits}g}", f"{b:.{digits}g}"


def _worst(statuses: pd.Series) -> str:
    order = ["ok", "insufficient_data", "warn", "fail", "error"]
    return max(statuses, key=order.index)


def _str(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


