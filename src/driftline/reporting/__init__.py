"""The HTML report: one static, self-contained page built from the result tables.

``build_report`` reads small frames from the result tables (:mod:`.data`), turns them into what
the page shows (:mod:`.model`; :mod:`.summary` for each monitor's headline and rows of breaching
checks, written by :mod:`driftline.triage`; :mod:`.histograms`), and renders HTML with inline SVG
charts (:mod:`.html`, :mod:`.svg`). The page needs no network: it opens from a mail attachment.

>>> import ibis
>>> from driftline.reporting import MonitorInfo, build_report
>>> html = build_report(ibis.duckdb.connect(), [MonitorInfo("churn", None, "@ds", None)])
>>> html.startswith("<!doctype html>") and 'id="churn"' in html
True
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import ibis

from driftline.reporting import data as report_data
from driftline.reporting import histograms, html
from driftline.reporting.info import MonitorInfo
from driftline.reporting.model import build_monitors

__all__ = ["MonitorInfo", "build_report"]


def build_report(
    con: ibis.BaseBackend,
    monitors: Sequence[MonitorInfo],
    *,
    database: str | None = None,
    generated_at: datetime | None = None,
    title: str = "driftline report",
) -> str:
    """The report as one HTML document.

    ``monitors`` gives the metadata the tables do not hold (owner, runbook, description, tags)
    and the order of the monitors; monitors found in the tables but not listed come after,
    without metadata. ``database`` is where the result tables are (``results.schema``).
    """
    generated_at = generated_at or datetime.now(timezone.utc).replace(tzinfo=None)
    frames = report_data.load(con, database)
    views = build_monitors(frames, monitors)
    columns = histograms.collect(frames.histograms)
    return html.render_page(title, generated_at, views, columns)
