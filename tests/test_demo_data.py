"""The demo warehouse: its tables, its determinism, and the two incidents it promises.

The statistics here are computed independently of driftline, in numpy and scikit-learn, on rows
read back from the DuckDB file: PSI with SPEC section 6's binning (10 reference quantile bins,
top categories plus ``__other__``, eps 1e-4), precision at threshold 0.5, and the demographic
parity ratio (min / max selection rate across gender). The last test runs driftline itself on
the second incident and compares its verdicts with precision computed here from the raw rows.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score

from driftline import demo_data
from driftline.demo_data import (
    DEMO_END,
    DEMO_START,
    INCIDENT_AT,
    LABEL_DELAY,
    RESELLER_AT,
    build_demo_warehouse,
)

ROWS = 200_000
REFERENCE_END = DEMO_START + timedelta(days=28)
THRESHOLD = 0.5

EXPECTED_PREDICTION_TYPES = {
    "lead_id": "BIGINT",
    "scored_at": "TIMESTAMP",
    "model_version": "VARCHAR",
    "region": "VARCHAR",
    "channel": "VARCHAR",
    "industry": "VARCHAR",
    "country": "VARCHAR",
    "company_tier": "VARCHAR",
    "lead_source": "VARCHAR",
    "company_size": "BIGINT",
    "visits_7d": "BIGINT",
    "pages_per_visit": "DOUBLE",
    "time_on_site_s": "DOUBLE",
    "email_opens_30d": "BIGINT",
    "days_since_signup": "BIGINT",
    "annual_revenue_k": "DOUBLE",
    "form_fields_filled": "BIGINT",
    "gender": "VARCHAR",
    "score": "DOUBLE",
    "latency_ms": "DOUBLE",
    "revenue": "DOUBLE",
}
EXPECTED_OUTCOME_TYPES = {"lead_id": "BIGINT", "converted": "BOOLEAN", "labeled_at": "TIMESTAMP"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "warehouse.duckdb"
    return build_demo_warehouse(path, rows=ROWS)


@pytest.fixture(scope="module")
def leads(built) -> pd.DataFrame:
    """Every v3 lead, with its label where one has arrived, and its day."""
    with duckdb.connect(str(built.path), read_only=True) as con:
        frame = con.execute(
            """
            SELECT p.*, o.converted, o.labeled_at
            FROM lead_predictions p LEFT JOIN lead_outcomes o USING (lead_id)
            WHERE p.model_version = 'v3'
            """
        ).df()
    frame["day"] = frame["scored_at"].dt.floor("D")
    return frame


# --- Independent statistics --------------------------------------------------------------------


def psi(reference: pd.Series, current: pd.Series, categorical: bool, eps: float = 1e-4) -> float:
    """PSI as SPEC section 6 defines it, nulls left out."""
    reference, current = reference.dropna(), current.dropna()
    if categorical:
        counts = reference.value_counts()
        top = sorted(counts.index, key=lambda v: (-counts[v], v))[:20]
        ref_bins = reference.where(reference.isin(top), "__other__")
        cur_bins = current.where(current.isin(top), "__other__")
        labels = [*top, "__other__"]
        p = ref_bins.value_counts().reindex(labels, fill_value=0).to_numpy() / len(reference)
        q = cur_bins.value_counts().reindex(labels, fill_value=0).to_numpy() / len(current)
    else:
        ref = reference.to_numpy(dtype=float)
        edges = np.unique(np.quantile(ref, np.arange(1, 10) / 10))
        bins = len(edges) + 1
        ref_index = np.searchsorted(edges, ref, side="right")
        cur_index = np.searchsorted(edges, current.to_numpy(dtype=float), side="right")
        p = np.bincount(ref_index, minlength=bins) / len(ref)
        q = np.bincount(cur_index, minlength=bins) / len(current)
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def daily_psi(leads: pd.DataFrame, feature: str) -> pd.Series:
    """PSI of each day against the first 28 days, indexed by day."""
    categorical = feature in demo_data.CATEGORICAL_FEATURES
    reference = leads.loc[leads["scored_at"] < REFERENCE_END, feature]
    return leads.groupby("day")[feature].apply(
        lambda current: psi(reference, current, categorical)
    )


@pytest.fixture(scope="module")
def psi_by_day(leads) -> pd.DataFrame:
    """Daily PSI of every feature: one row per day, one column per feature."""
    features = demo_data.NUMERIC_FEATURES + demo_data.CATEGORICAL_FEATURES
    return pd.DataFrame({feature: daily_psi(leads, feature) for feature in features})


def precision(frame: pd.DataFrame) -> float:
    """Precision at the threshold over the leads whose label has arrived."""
    labeled = frame[frame["converted"].notna()]
    return precision_score(labeled["converted"].astype(bool), labeled["score"] >= THRESHOLD)


def parity_ratio(frame: pd.DataFrame) -> float:
    """Demographic parity ratio: lowest over highest selection rate across genders."""
    selection_rates = (frame["score"] >= THRESHOLD).groupby(frame["gender"]).mean()
    return float(selection_rates.min() / selection_rates.max())


def fingerprint(path) -> tuple:
    """Exact, order-free aggregates of every cell of both tables."""
    with duckdb.connect(str(path), read_only=True) as con:
        return tuple(
            con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {table}").fetchone()
            for table in ("lead_predictions", "lead_outcomes")
        )


# --- Tables and columns ------------------------------------------------------------------------


def test_tables_have_the_promised_columns_and_types(built):
    with duckdb.connect(str(built.path), read_only=True) as con:
        for table, expected in (
            ("lead_predictions", EXPECTED_PREDICTION_TYPES),
            ("lead_outcomes", EXPECTED_OUTCOME_TYPES),
        ):
            described = con.execute(f"DESCRIBE {table}").fetchall()
            assert {name: kind for name, kind, *_ in described} == expected
        tables = {row[0] for row in con.execute("SHOW TABLES").fetchall()}
    assert tables == {"lead_predictions", "lead_outcomes"}


def test_facts_describe_the_build(built):
    assert built.rows == ROWS
    assert (built.start, built.end, built.incident_at) == (DEMO_START, DEMO_END, INCIDENT_AT)
    assert built.label_delay == LABEL_DELAY
    assert set(built.shifted_features) | set(built.stable_features) == set(
        built.numeric_features + built.categorical_features
    )
    assert not set(built.shifted_features) & set(built.stable_features)
    assert len(built.numeric_features) >= 8 and len(built.categorical_features) >= 4
    assert built.shifted_score_region == "latam"
    assert "latam" in built.summary()
    assert (built.reseller_at, built.reseller_channel) == (RESELLER_AT, "partner")
    assert INCIDENT_AT < RESELLER_AT < DEMO_END - LABEL_DELAY  # some of its days have labels
    assert "partner" in built.summary()


def test_rows_span_the_ninety_days_with_a_weekly_pattern(built, leads):
    with duckdb.connect(str(built.path), read_only=True) as con:
        count, first, last, ids = con.execute(
            "SELECT count(*), min(scored_at), max(scored_at), count(DISTINCT lead_id) "
            "FROM lead_predictions"
        ).fetchone()
    assert count == ids == ROWS
    assert DEMO_START <= first < DEMO_START + timedelta(hours=6)
    assert DEMO_END - timedelta(hours=6) < last < DEMO_END
    before = leads[leads["scored_at"] < INCIDENT_AT]
    per_weekday = before.groupby(before["day"].dt.day_of_week).size()
    assert per_weekday[[0, 1, 2, 3]].min() > 1.5 * per_weekday[[5, 6]].max()


def test_values_are_plausible(built):
    with duckdb.connect(str(built.path), read_only=True) as con:
        frame = con.execute("SELECT * FROM lead_predictions").df()
    assert frame["score"].between(0, 1).all()
    assert (frame["latency_ms"] > 0).all()
    assert (frame["revenue"] >= 0).all()
    assert set(frame["model_version"]) == {"v2", "v3"}
    assert 0.01 < (frame["model_version"] == "v2").mean() < 0.05
    assert set(frame["region"]) == {"na", "emea", "latam", "apac"}
    assert set(frame["channel"]) == {"organic", "paid_search", "social", "partner"}
    assert set(frame["gender"]) == {"f", "m", "x"}
    null_rates = frame[list(demo_data.NULL_RATES)].isna().mean()
    assert null_rates.between(0.005, 0.08).all(), null_rates


def test_the_label_is_not_in_the_predictions(built):
    with duckdb.connect(str(built.path), read_only=True) as con:
        columns = {row[0] for row in con.execute("DESCRIBE lead_predictions").fetchall()}
    assert "converted" not in columns
    assert not any(column.startswith("_") for column in columns)


# --- Labels ------------------------------------------------------------------------------------


def test_labels_exist_exactly_for_leads_scored_a_label_delay_before_the_end(built):
    with duckdb.connect(str(built.path), read_only=True) as con:
        frame = con.execute(
            "SELECT p.scored_at, o.labeled_at, o.converted, p.revenue "
            "FROM lead_predictions p LEFT JOIN lead_outcomes o USING (lead_id)"
        ).df()
        orphans = con.execute(
            "SELECT count(*) FROM lead_outcomes o ANTI JOIN lead_predictions p USING (lead_id)"
        ).fetchone()[0]
    assert orphans == 0
    labeled = frame["labeled_at"].notna()
    assert (labeled == (frame["scored_at"] < DEMO_END - LABEL_DELAY)).all()
    delay = frame.loc[labeled, "labeled_at"] - frame.loc[labeled, "scored_at"]
    assert delay.between(pd.Timedelta(days=6), pd.Timedelta(days=8)).all()
    assert (frame.loc[labeled, "labeled_at"] < DEMO_END).all()
    assert frame.loc[labeled, "converted"].notna().all()
    # Revenue is booked only for converted leads whose label has arrived.
    booked = frame["revenue"] > 0
    assert (frame.loc[booked, "converted"] == True).all()  # noqa: E712
    assert booked.sum() > 0.9 * (frame["converted"] == True).sum()  # noqa: E712


# --- Determinism -------------------------------------------------------------------------------


def test_builds_are_identical_whatever_the_thread_count(built, tmp_path, monkeypatch):
    connect = duckdb.connect

    def single_threaded(database, *args, **kwargs):
        return connect(database, *args, config={"threads": 1})

    monkeypatch.setattr(demo_data.duckdb, "connect", single_threaded)
    again = build_demo_warehouse(tmp_path / "again.duckdb", rows=ROWS)
    monkeypatch.undo()
    assert fingerprint(again.path) == fingerprint(built.path)


def test_a_build_overwrites_an_earlier_one(built, tmp_path):
    path = tmp_path / "overwritten.duckdb"
    build_demo_warehouse(path, rows=5_000, seed=8)
    build_demo_warehouse(path, rows=ROWS)
    assert fingerprint(path) == fingerprint(built.path)


def test_the_seed_changes_the_data(tmp_path):
    first = build_demo_warehouse(tmp_path / "seed7.duckdb", rows=5_000, seed=7)
    second = build_demo_warehouse(tmp_path / "seed8.duckdb", rows=5_000, seed=8)
    assert fingerprint(first.path) != fingerprint(second.path)


def test_too_few_rows_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        build_demo_warehouse(tmp_path / "tiny.duckdb", rows=10)


# --- The incident ------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", demo_data.STABLE_FEATURES + demo_data.SHIFTED_FEATURES)
def test_no_feature_drifts_before_the_incident(psi_by_day, feature):
    before = psi_by_day.loc[psi_by_day.index < INCIDENT_AT, feature]
    assert len(before) == 60
    assert before.max() < 0.1, before.idxmax()


@pytest.mark.parametrize("feature", demo_data.STABLE_FEATURES)
def test_stable_features_stay_stable_after_the_incident(psi_by_day, feature):
    after = psi_by_day.loc[psi_by_day.index >= INCIDENT_AT, feature]
    assert len(after) == 30
    assert after.max() < 0.1, after.idxmax()


@pytest.mark.parametrize("feature", demo_data.SHIFTED_FEATURES)
def test_shifted_features_drift_every_day_after_the_incident(psi_by_day, feature):
    after = psi_by_day.loc[psi_by_day.index >= INCIDENT_AT, feature]
    assert len(after) == 30
    assert after.min() > 0.25, after.idxmin()


def campaign_only(leads: pd.DataFrame) -> pd.DataFrame:
    """The leads from the campaign's start until the reseller's."""
    return leads[(leads["scored_at"] >= INCIDENT_AT) & (leads["scored_at"] < RESELLER_AT)]


def test_precision_falls_in_the_shifted_region_only(leads):
    before = leads[leads["scored_at"] < INCIDENT_AT]
    after = campaign_only(leads)
    for region, group in before.groupby("region"):
        assert 0.55 < precision(group) < 0.75, region
        was, now = precision(group), precision(after[after["region"] == region])
        if region == demo_data.SHIFTED_SCORE_REGION:
            assert was - now >= 0.2, (was, now)
            assert now < 0.4
        else:
            assert abs(was - now) < 0.05, (region, was, now)


def test_the_shifted_region_is_over_scored(leads):
    latam = leads[leads["region"] == demo_data.SHIFTED_SCORE_REGION]
    before = latam[latam["scored_at"] < INCIDENT_AT]
    after = latam[(latam["scored_at"] >= INCIDENT_AT) & latam["converted"].notna()]
    assert after["score"].mean() > before["score"].mean() + 0.1
    # The model promises more conversions than arrive.
    assert after["score"].mean() > after["converted"].astype(float).mean() + 0.2


def test_demographic_parity_holds_before_and_breaks_after(leads):
    assert parity_ratio(leads[leads["scored_at"] < INCIDENT_AT]) > 0.9
    assert parity_ratio(campaign_only(leads)) < 0.8


def test_volume_and_channel_mix_change_with_the_campaign(leads):
    daily = leads.groupby("day").size()
    assert daily[daily.index >= INCIDENT_AT].mean() > 1.1 * daily[daily.index < INCIDENT_AT].mean()
    social = (leads["channel"] == "social").groupby(leads["scored_at"] >= INCIDENT_AT).mean()
    assert social[False] < 0.15 and social[True] > 0.35


# --- The second incident: covariate shift in the reseller's channel -----------------------------

RESELLER_BAND = (THRESHOLD, 0.51)  # the scores the reseller's leads get


def in_channel(leads: pd.DataFrame, start, end) -> pd.DataFrame:
    """The reseller channel's leads scored in [start, end)."""
    channel = leads[leads["channel"] == "partner"]
    return channel[(channel["scored_at"] >= start) & (channel["scored_at"] < end)]


def test_the_reseller_sends_leads_that_just_clear_the_threshold(leads):
    before = in_channel(leads, DEMO_START, RESELLER_AT)
    after = in_channel(leads, RESELLER_AT, DEMO_END)
    share_of_leads = (leads["channel"] == "partner").groupby(leads["scored_at"] >= RESELLER_AT).mean()
    assert share_of_leads[False] < 0.2 and share_of_leads[True] > 0.25

    def band_share_of_positives(frame):
        positives = frame[frame["score"] >= THRESHOLD]
        return positives["score"].between(*RESELLER_BAND).mean()

    assert band_share_of_positives(before) < 0.1
    assert band_share_of_positives(after) > 0.85


def test_the_model_stays_calibrated_on_the_reseller_leads(leads):
    """Pure covariate shift: leads in the band convert at their score, after as before."""
    band = in_channel(leads, RESELLER_AT, DEMO_END)
    band = band[band["score"].between(*RESELLER_BAND) & band["converted"].notna()]
    converted = band["converted"].astype(float)
    standard_error = np.sqrt(converted.mean() * (1 - converted.mean()) / len(converted))
    assert len(band) > 1_000
    assert abs(converted.mean() - band["score"].mean()) < 3 * standard_error


def test_precision_falls_in_the_reseller_channel_on_every_labeled_day(leads):
    reference = precision(in_channel(leads, DEMO_START, REFERENCE_END))
    before = in_channel(leads, REFERENCE_END, RESELLER_AT)
    after = in_channel(leads, RESELLER_AT, DEMO_END - LABEL_DELAY)
    assert 0.6 < reference < 0.7
    assert abs(precision(before) - reference) < 0.03
    assert reference - precision(after) > 0.1
    daily = after.groupby("day").apply(precision)
    assert len(daily) == (DEMO_END - LABEL_DELAY - RESELLER_AT).days
    assert (daily < 0.6).all(), daily
    # The reseller's days have no features of their own: no feature drifts in its channel.
    stable = before.sample(n=min(len(before), len(after)), random_state=0)
    for feature in demo_data.NUMERIC_FEATURES + demo_data.CATEGORICAL_FEATURES:
        categorical = feature in demo_data.CATEGORICAL_FEATURES
        assert psi(stable[feature], after[feature], categorical) < 0.1, feature


def test_estimated_precision_breaches_on_the_day_and_realized_once_labels_mature(tmp_path, capsys):
    """driftline on the reseller's first day: the estimate flags it at once, the labels later.

    The realized drop asserted here is recomputed from the raw rows (precision above)."""
    from driftline import api, demo

    directory = tmp_path / "demo"
    demo.prepare_project(directory)
    build_demo_warehouse(directory / "warehouse.duckdb", rows=ROWS)
    first_day = (RESELLER_AT - timedelta(days=1), RESELLER_AT + timedelta(days=1))

    def verdicts(at):
        verdicts.summary = api.backfill(*first_day, project=directory, monitors=["lead_scoring"], at=at, notify=False)
        con = api.Workspace.open(directory).con
        try:  # closed at once: the raw rows are read below through a read-only connection
            results = con.table("driftline_results").to_pandas()
        finally:
            con.disconnect()
        partner = results[(results["segment_value"] == "partner")
                          & results["check_type"].isin(["performance", "estimated_performance"])]
        latest = partner.sort_values("created_at").groupby(["window_start", "check_type"]).last()
        return latest["status"].unstack(), latest["value"].unstack()

    day_before, day = pd.Timestamp(RESELLER_AT) - pd.Timedelta(days=1), pd.Timestamp(RESELLER_AT)
    on_the_day, _ = verdicts(RESELLER_AT + timedelta(days=1, hours=1))
    assert on_the_day.loc[day_before, "estimated_performance"] == "ok"
    assert on_the_day.loc[day, "estimated_performance"] in ("warn", "fail")
    assert (on_the_day["performance"] == "insufficient_data").all()  # no labels yet

    matured, values = verdicts(RESELLER_AT + LABEL_DELAY + timedelta(days=1, hours=1))
    assert matured.loc[day_before, "performance"] == "ok"
    assert matured.loc[day, "performance"] in ("warn", "fail")
    # Read-only, right after the API's runs in this process: they closed their connection.
    with duckdb.connect(str(directory / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT p.score, o.converted FROM lead_predictions p JOIN lead_outcomes o USING (lead_id) "
            "WHERE p.model_version = 'v3' AND p.channel = 'partner' AND p.scored_at >= ? AND p.scored_at < ?",
            [RESELLER_AT, RESELLER_AT + timedelta(days=1)],
        ).df()
    expected = precision_score(rows["converted"].astype(bool), rows["score"] >= THRESHOLD)
    assert values.loc[day, "performance"] == pytest.approx(expected, abs=1e-12)

    demo._print_precision_catches(verdicts.summary)  # what ``driftline demo`` prints about it
    printed = capsys.readouterr().out
    assert ("channel=partner: estimated precision 2026-10-15 (on the day); "
            "realized precision 2026-10-15 (known 2026-10-23, when its labels arrived)") in printed
    assert "region=latam: estimated precision never; realized precision 2026-10-14" in printed  # concept drift
