"""The summary's rules (SPEC §5, "The summary of a monitor") on findings written by hand: the
expected rows, effects and sentences are worked out in the comments."""

from __future__ import annotations

from datetime import datetime

import pytest

from driftline.triage import Finding, day, pair, summarize

SEP30, OCT1 = datetime(2026, 9, 30), datetime(2026, 10, 1)
TODAY = datetime(2026, 10, 29)


def drift(column, value, segment=None, severity="fail", since=SEP30):
    key, val = segment.split("=") if segment else (None, None)
    return Finding("drift_psi", "drift", "psi", column, key, val, severity, value, bound=0.25, since=since)


def test_effect_is_the_distance_past_the_line_in_units_of_the_line():
    assert drift("x", 1.71).effect == pytest.approx((1.71 - 0.25) / 0.25)  # 5.84
    no_line = Finding("auc", "performance", "roc_auc", None, None, None, "warn", 0.69, reference=0.75)
    assert no_line.effect == pytest.approx(0.06 / 0.75)  # 0.08: relative to the reference
    assert Finding("p", "drift", "psi", "x", None, None, "fail", 0.3).effect == 0.3  # neither: the value


def test_rows_fail_before_warn_overall_before_segments_larger_effect_first():
    findings = [
        # a warn with a huge effect still comes after every fail
        Finding("null_rate", "quality", "null_rate", "email", None, None, "warn", 0.9, bound=0.1),
        # fail only in a segment: after the fails that include the overall series
        Finding("precision", "performance", "precision", None, "region", "latam", "fail", 0.33, reference=0.64, bound=0.44, since=SEP30),
        # fail overall, effect |0.60 - 0.65| / 0.65 = 0.077
        Finding("roc_auc", "performance", "roc_auc", None, None, None, "fail", 0.60, reference=0.76, bound=0.65, since=OCT1),
        # fail overall, effect (0.52 - 0.25) / 0.25 = 1.08 in industry, (1.71 - 0.25) / 0.25 = 5.84 in its segment
        drift("industry", 0.52), drift("industry", 1.71, "channel=social"), drift("visits_7d", 0.44, severity="warn"),
    ]  # fmt: skip
    rows = summarize(findings, features=12, today=TODAY).rows
    assert [r.check_name for r in rows] == ["drift_psi", "roc_auc", "precision", "null_rate"]
    assert [r.severity for r in rows] == ["fail", "fail", "fail", "warn"]
    assert rows[0].collapsed == "industry, visits_7d; worst: industry · channel=social psi 1.71"
    assert rows[1].collapsed == "overall; worst: overall roc_auc 0.6"
    assert rows[0].since == SEP30


def test_the_headline_one_clause_per_check_drift_shared_since_said_once():
    findings = [
        drift("industry", 0.52), drift("visits_7d", 0.44),
        Finding("score_drift", "drift", "psi", "score", "region", "latam", "fail", 0.70, bound=0.25, since=SEP30),
        Finding("precision", "performance", "precision", None, "region", "latam", "fail", 0.3288, reference=0.6403, bound=0.4403, since=SEP30),
        Finding("parity", "fairness", "demographic_parity_ratio", "gender", None, None, "fail", 0.6688, bound=0.8, since=OCT1),
        Finding("null_rate", "quality", "null_rate", "email", None, None, "warn", 0.2, bound=0.1, since=OCT1),
        Finding("latency", "latency", "latency", None, None, None, "warn", 900.0, bound=500.0, since=OCT1),
    ]  # fmt: skip
    summary = summarize(findings, features=13, today=TODAY)
    # drift (both drift checks: 3 columns) · parity (fail overall, effect 0.16) · precision (fail in
    # a segment) · then two warns, counted
    assert summary.headline == (
        "3 of 13 features drifted since 30 Sep; demographic_parity_ratio of gender at 0.67 (below 0.8) "
        "since 1 Oct; precision in latam fell from 0.64 to 0.33 since 30 Sep; 2 more checks breaching"
    )


def test_a_single_drifted_column_is_named_with_its_segment():
    score = Finding("score_drift", "drift", "psi", "score", "region", "latam", "fail", 0.7, bound=0.25, since=SEP30)
    assert summarize([score], features=1, today=TODAY).headline == "score drifted in latam since 30 Sep"
    assert summarize([], features=1).headline == "Nothing breaches in the latest judged windows."


def test_days_and_values():
    assert day(SEP30, TODAY) == "30 Sep" and day(SEP30, datetime(2027, 1, 2)) == "30 Sep 2026"
    assert day(datetime(2026, 9, 30, 6), TODAY) == "30 Sep 06:00"
    assert pair(0.6403, 0.3288) == ("0.64", "0.33")
    assert pair(0.6403, 0.6371) == ("0.64", "0.637")  # 2 digits read 0.64 twice


def test_an_estimate_says_it_is_one_in_the_headline():
    # estimated precision in partner: 0.6466 on the reference, 0.5079 now, a warn since 15 Oct;
    # the realized precision in latam, a fail, comes first
    oct15 = datetime(2026, 10, 15)
    findings = [
        Finding("estimated", "estimated_performance", "precision", None, "channel", "partner", "warn", 0.5079, reference=0.6466, since=oct15),
        Finding("precision", "performance", "precision", None, "region", "latam", "fail", 0.3576, reference=0.6403, since=SEP30),
    ]  # fmt: skip
    assert summarize(findings, today=TODAY).headline == (
        "precision in latam fell from 0.64 to 0.36 since 30 Sep; "
        "estimated precision in partner fell from 0.65 to 0.51 since 15 Oct"
    )
