"""The HTML report: built from a year of synthetic results, then opened in headless Chromium.

The browser tests need Debian's ``chromium`` package; they are skipped, saying so, without it.
The screenshot of the page goes to ``artifacts/report-overview.png`` at the repository root.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import ibis
import pandas as pd
import pytest
from headless_chromium import chromium, needs_chromium
from report_fixture import MONITORS, fill_result_tables

from driftline.reporting import MonitorInfo, build_report
from driftline.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@pytest.fixture(scope="module")
def year_of_results():
    """A DuckDB warehouse holding a year of daily results for two monitors."""
    con = ibis.duckdb.connect()
    frames = fill_result_tables(con, days=365)
    yield con, frames
    con.disconnect()


@pytest.fixture(scope="module")
def report(year_of_results, tmp_path_factory):
    """(path, html) of the report on a year of results."""
    con, _ = year_of_results
    html = build_report(con, MONITORS, title="driftline report")
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html, encoding="utf-8")
    return path, html


# --- the file -----------------------------------------------------------------------------------


def test_builds_into_a_small_file(report, year_of_results):
    path, html = report
    _, frames = year_of_results
    assert path.stat().st_size < 5_000_000
    assert len(frames["driftline_results"]) > 80_000  # a year, ~50 check × column series


def test_is_self_contained(report):
    _, html = report
    page = _parse(html)
    assert page.script_sources == [] and page.stylesheets == []
    assert not re.search(r"@import|url\(|@font-face", html)
    # Only links a reader clicks may point outside (runbooks); nothing the page loads.
    external = {url for url in re.findall(r"https?://[^\s\"'<>]+", html)}
    assert external <= {m.runbook for m in MONITORS}


def test_has_anchors_for_monitors_and_checks(report):
    _, html = report
    page = _parse(html)
    assert {"lead_scoring", "ltv_forecast"} <= page.ids
    for anchor in ("lead_scoring-feature_drift", "lead_scoring-roc_auc",
                   "lead_scoring-parity_gender", "ltv_forecast-mae"):  # fmt: skip
        assert anchor in page.ids
    assert page.missing_anchors() == []


def test_shows_what_each_check_needs(report):
    _, html = report
    drift = _section(html, "lead_scoring-feature_drift")
    assert 'class="hist-panel"' in drift and "visits_7d" in drift
    assert 'class="band"' in _section(html, "lead_scoring-row_count")
    assert "labels not mature (7 windows)" in _section(html, "lead_scoring-roc_auc")
    fairness = _section(html, "lead_scoring-parity_gender")
    assert "Rates per group" in fairness and "nonbinary" in fairness  # the excluded group
    assert 'class="rule fail"' in _section(html, "ltv_forecast-mae")
    assert 'class="marker opened' in drift and 'class="marker resolved' in drift


def test_lists_an_older_failed_window(report, year_of_results):
    """The fixture's finance monitor failed 100 days before its last window and succeeded
    since: no result of that window is drawn and no later run shows the error."""
    _, html = report
    _, frames = year_of_results
    runs = frames["driftline_runs"]
    failed = runs[runs.status == "error"]
    assert len(failed) == 1 and failed.window_start.iloc[0] < runs.window_start.max()
    start = failed.window_start.iloc[0].strftime("%Y-%m-%d")
    section = html[html.index(f'id="{failed.monitor.iloc[0]}"'):]
    assert "<dt>Failed windows</dt>" in section
    listed = re.search(r'<ul class="failed"><li>([^<]*): <span class="error">([^<]*)</span></li></ul>', section)
    assert listed and listed.group(1).startswith(start) and listed.group(2) == failed.error.iloc[0]
    assert "Last run failed" not in section


def test_a_failed_latest_window_makes_the_monitor_an_error():
    con = ibis.duckdb.connect()
    day = pd.Timestamp("2026-10-01")
    runs = pd.DataFrame({
        "run_id": ["a", "b", "c"], "monitor": "fresh",
        "window_start": [day, day + pd.Timedelta(days=1), day + pd.Timedelta(days=1)],
        "window_end": [day + pd.Timedelta(days=1), day + pd.Timedelta(days=2), day + pd.Timedelta(days=2)],
        "finished_at": [day + pd.Timedelta(days=1, hours=1), day + pd.Timedelta(days=2, hours=1), day + pd.Timedelta(days=2, hours=2)],
        "status": ["success", "success", "error"], "error": [None, None, "relation lead_predictions does not exist"],
    })
    ResultStore(con).ensure_tables()
    con.con.register("runs", runs)
    con.con.execute("INSERT INTO driftline_runs BY NAME SELECT * FROM runs")
    section = build_report(con, [MonitorInfo("fresh", None, None, None)]).split('id="fresh"', 1)[1]
    assert '<span class="status st-error">error</span>' in section
    assert "2026-10-02" in section and "relation lead_predictions does not exist" in section


def test_escapes_user_text_and_drops_unsafe_links():
    con = ibis.duckdb.connect()
    fill_result_tables(con, days=10)
    evil = MonitorInfo(
        name="lead_scoring",
        description='<script>alert("description")</script>',
        owner="<b>@team</b>",
        runbook="javascript:alert(1)",
        tags=('"><img src=x onerror=alert(1)>',),
    )
    html = build_report(con, [evil], title="<i>title</i>")
    assert "<script>alert" not in html and "<b>@team" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;description&quot;)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    assert "<title>&lt;i&gt;title&lt;/i&gt;</title>" in html


def test_a_two_sided_threshold_draws_both_bounds_and_a_band_edge_none():
    """``{outside: [lo, hi]}`` is two lines with one legend entry; fail bounds that are the
    anomaly band's edges are drawn as the band only."""
    con = ibis.duckdb.connect()
    ResultStore(con).ensure_tables()
    day = pd.Timestamp("2026-10-01")
    windows = [day + pd.Timedelta(days=i) for i in range(4)]
    spend = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(4)], "monitor": "m", "check_name": "spend",
        "check_type": "quality", "metric": "mean", "window_start": windows,
        "window_end": [w + pd.Timedelta(days=1) for w in windows], "value": [2.0, 2.5, 3.5, 1.5],
        "status": ["ok", "ok", "fail", "ok"], "fail_threshold": "{outside: [1, 3]}",
        "created_at": [w + pd.Timedelta(days=1, hours=1) for w in windows],
        "fail_lower": 1.0, "fail_upper": 3.0,
    })  # fmt: skip
    band = {"lower": 1.8, "upper": 2.6}
    banded = spend.assign(check_name="spend_band", fail_threshold=None, details=json.dumps({"band": band}),
                          fail_lower=band["lower"], fail_upper=band["upper"])  # fmt: skip
    con.con.register("rows", pd.concat([spend, banded]))
    con.con.execute("INSERT INTO driftline_results BY NAME SELECT * FROM rows")
    html = build_report(con, [MonitorInfo("m", None, None, None)])

    section = _section(html, "m-spend")
    rules = re.findall(r'<path class="rule fail" d="([^"]*)"', section)
    heights = [{point.split(",")[1] for point in d[1:].split(" ")} for d in rules]
    assert len(rules) == 2 and all(len(h) == 1 for h in heights)  # two horizontal lines
    assert heights[0] != heights[1]
    assert section.count('class="swatch rule fail"') == 1
    section = _section(html, "m-spend_band")
    assert 'class="band"' in section and 'class="rule fail"' not in section


def test_renders_without_result_tables():
    html = build_report(ibis.duckdb.connect(), [MonitorInfo("fresh", "New", "@me", None)])
    assert 'id="fresh"' in html and "No results yet" in html
    assert _parse(html).missing_anchors() == []


# --- in a real browser --------------------------------------------------------------------------


@needs_chromium
def test_screenshot(report, tmp_path):
    path, _ = report
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-overview.png"
    shot.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", path.as_uri())
    assert shot.exists() and shot.stat().st_size > 20_000


@needs_chromium
def test_page_script_runs_without_errors(report, tmp_path):
    path, _ = report
    dom, log = _dump_dom(tmp_path, path.as_uri())
    page = _parse(dom)
    assert page.root.get("data-errors") == "0", page.root.get("data-last-error")
    assert page.root.get("data-ok") == "1"
    assert not [line for line in log.splitlines() if "CONSOLE" in line]
    assert page.charts and all(page.charts.values()), "a chart without SVG content"
    assert page.missing_anchors() == []


@needs_chromium
def test_window_picker_shows_an_earlier_window(report, year_of_results, tmp_path):
    path, _ = report
    _, frames = year_of_results
    first = frames["driftline_runs"].window_start.min().strftime("%Y-%m-%d")
    dom, _ = _dump_dom(tmp_path, f"{path.as_uri()}?window={first}")
    page = _parse(dom)
    assert page.root.get("data-errors") == "0", page.root.get("data-last-error")
    assert page.captions and all(c.startswith(first) for c in page.captions), page.captions[:3]


def _dump_dom(tmp_path: Path, url: str) -> tuple[str, str]:
    """The DOM after the page's script ran, and Chromium's log (console messages included)."""
    done = chromium(
        tmp_path, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
        "--dump-dom", url,
    )  # fmt: skip
    return done.stdout, done.stderr


# --- reading HTML -------------------------------------------------------------------------------


def _section(html: str, anchor: str) -> str:
    """The markup of the check section with this id."""
    start = html.index(f'<section class="check" id="{anchor}">')
    return html[start : html.index("</section>", start)]


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


class _Page(HTMLParser):
    """What the tests look at in a page: ids, links, charts, script and style sources."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root: dict[str, str] = {}
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.script_sources: list[str] = []
        self.stylesheets: list[str] = []
        self.charts: dict[int, int] = {}  # chart figure number -> elements inside its SVGs
        self.captions: list[str] = []
        self._stack: list[tuple[str, dict]] = []
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        self._record(tag, attrs)
        if tag not in VOID:
            self._stack.append((tag, attrs))

    def handle_startendtag(self, tag, attrs):
        self._record(tag, {k: v or "" for k, v in attrs})

    def handle_endtag(self, tag):
        while self._stack:
            open_tag, attrs = self._stack.pop()
            if open_tag == "output":
                self._in_caption = False
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._in_caption and data.strip():
            self.captions.append(data.strip())

    def _record(self, tag, attrs):
        if tag == "html":
            self.root = attrs
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.hrefs.append(attrs["href"])
        if tag == "script" and attrs.get("src"):
            self.script_sources.append(attrs["src"])
        if tag == "link":
            self.stylesheets.append(attrs.get("href", ""))
        if tag == "figure" and "chart" in attrs.get("class", "").split():
            self.charts[len(self.charts)] = 0
        elif self._inside("svg") and self._inside_chart():
            self.charts[len(self.charts) - 1] += 1
        if tag == "output" and "hist-caption" in attrs.get("class", ""):
            self._in_caption = True

    def _inside(self, tag: str) -> bool:
        return any(open_tag == tag for open_tag, _ in self._stack)

    def _inside_chart(self) -> bool:
        return any(
            t == "figure" and "chart" in a.get("class", "").split() for t, a in self._stack
        )

    def missing_anchors(self) -> list[str]:
        return [h for h in self.hrefs if unquote(h[1:]) not in self.ids and h != "#"]
