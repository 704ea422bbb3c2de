"""What is broken, since when and how badly: the summary that opens a monitor's report section and
its Slack message. Data only, no HTML and no mrkdwn: the report and the message render it.

A :class:`Finding` is one series (a check's column and/or segment) that breaches in its latest
judged window. :func:`summarize` groups the findings of a monitor into one :class:`CheckRow` per
check, ordered fail before warn, checks that breach overall before those that breach only in
segments, then the larger effect first, and writes the headline from those rows: one clause per
check, the first few in that order, except that all drift checks share one clause ("k of n
features drifted") where the first of them stands:

>>> from datetime import datetime
>>> since = datetime(2026, 9, 30)
>>> drift = [Finding("drift_psi", "drift", "psi", c, None, None, "fail", v, bound=0.25, since=since)
...          for c, v in (("industry", 0.52), ("visits_7d", 0.44))]
>>> precision = Finding("precision", "performance", "precision", None, "region", "latam", "fail",
...                     0.33, reference=0.64, bound=0.44, since=since)
>>> summary = summarize([*drift, precision], features=12, today=datetime(2026, 10, 29))
>>> summary.headline
'2 of 12 features drifted since 30 Sep; precision in latam fell from 0.64 to 0.33'
>>> summary.rows[0].collapsed
'industry, visits_7d; worst: industry psi 0.52'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

SEVERITY_RANK = {"fail": 0, "warn": 1}
MAX_CLAUSES = 3  # the headline names the first few checks; the rows below list them all
MAX_LISTED = 6  # affected columns or segments named in a row before "+N more"


@dataclass(frozen=True)
class Finding:
    """One series whose latest judged value breaches: its value, the line it crossed, the same
    metric on the reference window, and the first window of its breaching streak."""

    check_name: str
    check_type: str
    metric: str
    column: str | None
    segment_key: str | None
    segment_value: str | None
    severity: str  # warn | fail
    value: float | None
    reference: float | None = None
    bound: float | None = None  # the threshold (or anomaly band edge) the value is past
    threshold: str | None = None  # that threshold as written, when the bound is not known
    since: datetime | None = None

    @property
    def overall(self) -> bool:
        return self.segment_key is None

    @property
    def segment(self) -> str | None:
        return None if self.segment_key is None else f"{self.segment_key}={self.segment_value}"

    @property
    def label(self) -> str:
        """``industry · channel=social``; ``overall`` for a check's unsegmented series."""
        return " · ".join(p for p in (self.column, self.segment) if p) or "overall"

    @property
    def effect(self) -> float:
        """How far the value is past its line, in units of that line; without a known line, how
        far it moved from the reference, relative to it; with neither, the value itself (a drift
        distance is already a size). Comparable within a check; across checks it only orders."""
        if self.value is None or not math.isfinite(self.value):
            return 0.0
        for base in (self.bound, self.reference):
            if base is not None and math.isfinite(base) and base != 0:
                return abs(self.value - base) / abs(base)
        return abs(self.value)


@dataclass(frozen=True)
class CheckRow:
    """One check's breaching series, collapsed into a line, worst first."""

    check_name: str
    check_type: str
    metric: str
    findings: tuple[Finding, ...]  # worst first: severity, then effect

    @property
    def severity(self) -> str:
        return self.worst.severity

    @property
    def worst(self) -> Finding:
        return self.findings[0]

    @property
    def overall(self) -> bool:
        """Whether the check breaches on all rows, not only in some segments."""
        return any(f.overall for f in self.findings)

    @property
    def since(self) -> datetime | None:
        known = [f.since for f in self.findings if f.since is not None]
        return min(known) if known else None

    @property
    def affected(self) -> tuple[str, ...]:
        """The breaching columns of a check on columns, else its breaching segments."""
        if any(f.column for f in self.findings):
            return tuple(sorted({f.column for f in self.findings if f.column}))
        return tuple(sorted({f.segment or "overall" for f in self.findings}, key=_overall_first))

    @property
    def collapsed(self) -> str:
        """``industry, time_on_site_s, visits_7d; worst: industry · channel=social psi 1.71``."""
        names = list(self.affected)
        listed = ", ".join(names[:MAX_LISTED])
        if len(names) > MAX_LISTED:
            listed += f" +{len(names) - MAX_LISTED} more"
        worst = self.worst
        return f"{listed}; worst: {worst.label} {worst.metric} {number(worst.value)}"

    def order(self) -> tuple:
        """Fail before warn, overall before segments, larger effect first."""
        return (SEVERITY_RANK.get(self.severity, 2), not self.overall, -self.worst.effect, self.check_name)


@dataclass(frozen=True)
class Summary:
    """A monitor's headline and its rows."""

    headline: str
    rows: tuple[CheckRow, ...]


def summarize(findings: Iterable[Finding], features: int | None = None, today: datetime | None = None) -> Summary:
    """The rows of ``findings`` in triage order, and the headline built from them.

    ``features`` is how many columns the monitor's drift checks measure ("3 of 12 features"),
    when known; ``today`` decides whether dates need their year (they do when it differs).
    """
    by_check: dict[str, list[Finding]] = {}
    for finding in findings:
        if finding.severity in SEVERITY_RANK:
            by_check.setdefault(finding.check_name, []).append(finding)
    rows = [
        CheckRow(name, group[0].check_type, group[0].metric, tuple(sorted(group, key=_worst_first)))
        for name, group in by_check.items()
    ]
    rows.sort(key=CheckRow.order)
    return Summary(headline(rows, features, today), tuple(rows))


def headline(rows: list[CheckRow], features: int | None = None, today: datetime | None = None) -> str:
    """One sentence: a clause per check (one for all drift checks), the first few in triage
    order, each saying since when unless the clause before said the same date."""
    if not rows:
        return "Nothing breaches in the latest judged windows."
    drift = [row for row in rows if row.check_type == "drift"]
    subjects = [row for row in rows if row.check_type != "drift" or row is drift[0]]
    clauses, said = [], None
    for row in subjects[:MAX_CLAUSES]:
        group = drift if row.check_type == "drift" else [row]
        known = [r.since for r in group if r.since is not None]
        since = min(known) if known else None
        when = f" since {day(since, today)}" if since is not None and since != said else ""
        said = since if since is not None else said
        clauses.append(_drift_clause(drift, features, when) if group is drift else _change_clause(row.worst, when))
    more = len(subjects) - MAX_CLAUSES
    if more > 0:
        clauses.append(f"{more} more check{'s' if more > 1 else ''} breaching")
    return "; ".join(clauses)


def drifted_columns(rows: Iterable[CheckRow]) -> tuple[str, ...]:
    """The columns any drift check finds drifted (overall or in a segment), by name."""
    return tuple(sorted({f.column for r in rows if r.check_type == "drift" for f in r.findings if f.column}))


def _drift_clause(rows: list[CheckRow], features: int | None, when: str) -> str:
    """``3 of 12 features drifted since 30 Sep``; one drifted column is named."""
    drifted = drifted_columns(rows)
    if len(drifted) == 1 and (features is None or features == 1):
        worst = rows[0].worst
        where = "" if any(f.overall for r in rows for f in r.findings) else f" in {_segment_words(worst)}"
        return f"{drifted[0]} drifted{where}{when}"
    of = f" of {features}" if features else ""
    noun = "feature" if len(drifted) == 1 and not features else "features"
    return f"{len(drifted)}{of} {noun} drifted{when}"


def _change_clause(worst: Finding, when: str) -> str:
    """``precision in latam fell from 0.64 to 0.33``; without a reference value, the value and
    the line it crossed. An estimate says so: its labels may not have arrived to confirm it."""
    subject = ("estimated " if worst.check_type == "estimated_performance" else "") + worst.metric
    if worst.column:
        subject += f" of {worst.column}"
    if worst.segment_key is not None:
        subject += f" in {_segment_words(worst)}"
    if worst.value is not None and worst.reference is not None:
        before, after = pair(worst.reference, worst.value)
        verb = "fell" if worst.value < worst.reference else "rose"
        return f"{subject} {verb} from {before} to {after}{when}"
    if worst.value is not None and worst.bound is not None:
        line, value = pair(worst.bound, worst.value)
        side = "below" if worst.value < worst.bound else "above"
        return f"{subject} at {value} ({side} {line}){when}"
    past = f" (threshold {worst.threshold})" if worst.threshold else ""
    return f"{subject} at {number(worst.value)}{past}{when}"


def _segment_words(finding: Finding) -> str:
    return "null" if finding.segment_value is None else str(finding.segment_value)


def day(moment: datetime, today: datetime | None = None) -> str:
    """``30 Sep``; with the year when it is not ``today``'s; with the time when not midnight."""
    text = f"{moment.day} {moment:%b}"
    if today is None or today.year != moment.year:
        text += f" {moment.year}"
    if (moment.hour, moment.minute) != (0, 0):
        text += f" {moment:%H:%M}"
    return text


def number(value: float | None) -> str:
    """Four significant digits, as the rest of the report."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:,.0f}" if 10_000 <= abs(value) < 1e12 else f"{value:.4g}"


def pair(before: float, after: float) -> tuple[str, str]:
    """Two values with the fewest significant digits (at least two) that tell them apart."""
    for digits in (2, 3, 4):
        a, b = f"{before:.{digits}g}", f"{after:.{digits}g}"
        if a != b:
            return a, b
    return number(before), number(after)


def _worst_first(finding: Finding) -> tuple:
    """The most severe, then the furthest past its line: a segment may be worse than overall."""
    return SEVERITY_RANK.get(finding.severity, 2), -finding.effect, not finding.overall, finding.label


def _overall_first(segment: str) -> tuple:
    return segment != "overall", segment
