"""A synthetic lead-scoring warehouse with two known incidents, for ``driftline demo``.

The story
---------
A B2B company scores every inbound lead with a conversion model. The scoring service logs to
``lead_predictions``: features, segments, the score. Model ``v3`` serves the traffic; 3 % still
goes to the old ``v2``, which monitors filter out with ``where: "model_version = 'v3'"``. Whether
a lead converted is known only later: a nightly CRM sync writes ``lead_outcomes`` seven days after
the lead's scoring day, so the last week of data has no labels yet.

For sixty days nothing happens. Every day draws from the same distributions; only the volume
follows the working week. On ``INCIDENT_AT`` (2026-09-30 00:00 UTC) marketing launches a
paid-social campaign (figures below are for the default million rows and seed):

* lead volume rises by 30 %, and half of the leads, in every region, now come from the campaign;
* campaign leads arrive through channel ``social``, come mostly from retail and media
  (``industry``), visit more (``visits_7d`` x2.5) and stay shorter (``time_on_site_s`` x0.3).
  Daily PSI against the first 28 days jumps from below 0.01 to 0.35-0.55 for these three;
* outside latam the extra visits are genuine interest, and the model stays right about them;
* in latam the campaign's agency bought click-farm traffic: visits x30 that carry no intent. The
  model scores those leads up (positive rate 0.22 -> 0.55), but they convert no better than
  before, so precision at threshold 0.5 falls from 0.64 to 0.33 there (ROC AUC 0.76 -> 0.62),
  while the other regions hold. The score's overall PSI stays below 0.1: only the ``region``
  segment shows its drift (0.6-0.7 in latam);
* the campaign's audience is 92 % men, so the over-scored latam leads are mostly ``m``, and the
  demographic parity ratio across ``gender`` falls from 0.99 to 0.68 (daily: at least 0.81
  before, at most 0.72 until the second incident; weekly: at least 0.95 before).

Every other feature keeps its distribution after the incident (daily PSI below 0.01 overall,
below 0.05 in any region or channel), so drift monitors on them must stay quiet; before the
incident no drift, performance or fairness monitor should fire at all.

The campaign's drop is concept drift: the same scores now convert worse, which only the labels
show, a week later. On ``RESELLER_AT`` (2026-10-15) comes a drop of the other kind, covariate
shift, that the scores alone reveal on the day:

* a lead reseller joins the ``partner`` channel and sends 20 % of each day's leads (in every
  region alike; they take the place of leads the campaign did not bring, so neither the volume
  nor the campaign's share changes);
* it is paid for every lead the model accepts, so it sends only leads that just clear the 0.5
  threshold (scores 0.50-0.51). Their logged features are drawn as everyone's; what the reseller
  selects on is the rest of what the model knows about a lead, so no feature drifts, but the
  score does (daily PSI above 2 in ``partner``, 0.27-0.29 overall);
* the model is right about them: they convert at their score, about 0.51. They are nine
  predicted positives in ten in ``partner``, so its daily precision falls from 0.65 to 0.51-0.54
  (each day more than 0.1 below the reference), and CBPE's estimated precision falls with it on
  the first day; the realized precision confirms it once that day's labels arrive (the last
  seven days have none yet). Outside latam they are about half of each region's predicted
  positives, so its precision falls by less (0.65 to about 0.58; estimated too): below the
  checks' 0.1 but on one labeled day (emea, 2026-10-22, 0.66 to 0.56).
* every one of its leads is accepted, and they replace leads the campaign did not bring, whose
  gender mix is the old one, while the campaign's leads are mostly men. So ``f`` and ``x`` gain
  more accepted leads than ``m``: outside latam, where the campaign's men were never
  over-scored, men's selection rate is now two thirds of women's (demographic parity 0.64 a
  week in each of na, emea and apac), while overall the ratio recovers to 0.80-0.89 a day. The
  weekly fairness check fails in those regions from the week of 2026-10-15 on.

How the data is made
--------------------
All rows are generated inside DuckDB by one SQL statement. Leads are numbered day by day, and
every random draw is a hash of (lead number, stream, seed) turned into a uniform in (0, 1), or
into a normal through Box-Muller. Nothing depends on thread scheduling or row order, so a build
is identical on every run with the same DuckDB, and a million rows take a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

DEMO_START = datetime(2026, 8, 1)  # naive UTC
DEMO_DAYS = 90
DEMO_END = DEMO_START + timedelta(days=DEMO_DAYS)
INCIDENT_AT = DEMO_START + timedelta(days=60)  # 2026-09-30
RESELLER_AT = DEMO_START + timedelta(days=75)  # 2026-10-15: the second incident
LABEL_DELAY = timedelta(days=7)

PREDICTIONS_TABLE = "lead_predictions"
OUTCOMES_TABLE = "lead_outcomes"
MODEL_VERSION = "v3"
SEGMENTS = ("region", "channel")
SENSITIVE_ATTRIBUTE = "gender"
MIN_ROWS = 1_000  # so that every day has leads

NUMERIC_FEATURES = (
    "company_size",
    "visits_7d",
    "pages_per_visit",
    "time_on_site_s",
    "email_opens_30d",
    "days_since_signup",
    "annual_revenue_k",
    "form_fields_filled",
)
CATEGORICAL_FEATURES = ("industry", "country", "company_tier", "lead_source")
SHIFTED_FEATURES = ("visits_7d", "time_on_site_s", "industry")
STABLE_FEATURES = tuple(
    f for f in NUMERIC_FEATURES + CATEGORICAL_FEATURES if f not in SHIFTED_FEATURES
)
SHIFTED_SCORE_REGION = "latam"
RESELLER_CHANNEL = "partner"

# --- The world before the incident -------------------------------------------------------------
# A mix is {value: probability}, summing to 1.

# Relative lead volume per weekday, Monday first: B2B leads come in on working days.
WEEKDAY_VOLUME = (1.15, 1.20, 1.20, 1.10, 1.00, 0.60, 0.50)
DAILY_VOLUME_NOISE = 0.04  # relative standard deviation of a day's volume
BUSINESS_HOURS_SHARE = 0.8  # the rest arrive at any hour
BUSINESS_HOURS_PEAK, BUSINESS_HOURS_SPREAD = 14.0, 3.5  # UTC hour, standard deviation in hours

REGION_MIX = {"na": 0.32, "emea": 0.26, "latam": 0.28, "apac": 0.14}
CHANNEL_MIX = {"organic": 0.40, "paid_search": 0.30, "social": 0.12, "partner": 0.18}
GENDER_MIX = {"f": 0.42, "m": 0.40, "x": 0.18}  # x: not stated
MODEL_V2_SHARE = 0.03
INDUSTRY_MIX = {
    "software": 0.22,
    "finance": 0.14,
    "healthcare": 0.12,
    "manufacturing": 0.14,
    "retail": 0.10,
    "education": 0.08,
    "media": 0.06,
    "other": 0.14,
}
COUNTRY_MIX = {
    "na": {"us": 0.85, "ca": 0.15},
    "emea": {"gb": 0.30, "de": 0.25, "fr": 0.20, "es": 0.15, "nl": 0.10},
    "latam": {"br": 0.45, "mx": 0.30, "co": 0.15, "ar": 0.10},
    "apac": {"au": 0.35, "jp": 0.25, "in": 0.25, "sg": 0.15},
}
LEAD_SOURCE_MIX = {
    "web_form": 0.35,
    "content_download": 0.25,
    "demo_request": 0.15,
    "webinar": 0.10,
    "chat": 0.08,
    "event": 0.07,
}
# Share of missing values: enrichment and tracking are not always available.
NULL_RATES = {
    "company_size": 0.03,
    "time_on_site_s": 0.01,
    "email_opens_30d": 0.04,
    "days_since_signup": 0.02,
    "annual_revenue_k": 0.06,
    "country": 0.01,
}

# --- The incident ------------------------------------------------------------------------------

INCIDENT_VOLUME_LIFT = 1.30
# The campaign brings the same share of leads in every region, so that no segment's region or
# country mix moves: only the features of the campaign's own leads differ.
CAMPAIGN_SHARE = 0.50  # of the leads from INCIDENT_AT on
CAMPAIGN_CHANNEL = "social"
CAMPAIGN_GENDER_MIX = {"f": 0.05, "m": 0.92, "x": 0.03}
CAMPAIGN_INDUSTRY_MIX = {
    "software": 0.04,
    "finance": 0.02,
    "healthcare": 0.02,
    "manufacturing": 0.01,
    "retail": 0.48,
    "education": 0.10,
    "media": 0.30,
    "other": 0.03,
}
# In latam the campaign's agency bought click-farm traffic: many more visits, no more intent.
CAMPAIGN_VISITS_FACTOR = {"latam": 30.0, "other": 2.5}
CAMPAIGN_TIME_ON_SITE_FACTOR = 0.3

# A lead reseller joins the partner channel. It is paid for every lead the model accepts, so it
# screens its list with a copy of the scoring rule and sends only the leads that just clear the
# threshold: their log-odds lie in this range (scores 0.50-0.51). The model is right about them.
RESELLER_SHARE = 0.20  # of the leads from RESELLER_AT on; they take the place of other leads
RESELLER_LOGIT_RANGE = (0.0, 0.04)

# --- The model ---------------------------------------------------------------------------------
# v3 is a logistic regression on the features. Its log-odds, centred on typical values:
MODEL_INTERCEPT = -0.8
VISITS_WEIGHT = 0.9  # per unit of ln(1 + visits_7d): the strongest signal
TIME_ON_SITE_WEIGHT = 0.5  # per unit of ln(time_on_site_s)
PAGES_WEIGHT = 0.3  # per unit of ln(pages_per_visit)
EMAIL_OPENS_WEIGHT = 0.35  # per unit of ln(1 + email_opens_30d)
FORM_FIELDS_WEIGHT = 0.08  # per field filled
SIGNUP_AGE_WEIGHT = -0.004  # per day since signup
TIER_EFFECT = {"smb": -0.2, "enterprise": 0.3}
LEAD_SOURCE_EFFECT = {"demo_request": 0.9, "chat": 0.4, "webinar": 0.2, "content_download": -0.3}
INDUSTRY_EFFECT = {
    "software": 0.2,
    "finance": 0.1,
    "retail": -0.1,
    "education": -0.15,
    "media": -0.1,
}
# Everything else the model knows about a lead (its other signals), as a normal log-odds term.
OTHER_SIGNALS_SPREAD = 0.55

# --- Random streams ----------------------------------------------------------------------------
# Every random draw has a stream of its own, so adding one never changes the others. A normal
# draw takes two uniform streams (Box-Muller), numbered from NORMAL_STREAM_BASE.
UNIFORM_STREAMS = (
    "region",
    "channel",
    "gender",
    "campaign",
    "model_version",
    "business_hours",
    "any_hour",
    "industry",
    "country",
    "lead_source",
    "form_fields",
    "days_since_signup",
    "label",
    "label_sync",
    *(f"null_{column}" for column in NULL_RATES),
    "reseller",
    "reseller_logit",
)
NORMAL_STREAMS = (
    "hour",
    "size",
    "revenue_per_employee",
    "visits",
    "pages",
    "time_on_site",
    "email_opens",
    "other_signals",
    "v2_noise",
    "latency",
    "deal_value",
)
NORMAL_STREAM_BASE = 1000
DAILY_VOLUME_STREAM = 100  # a normal stream no lead uses, drawn once per day number
STREAM_SLOTS = 4096  # streams per lead: the hash key is lead * STREAM_SLOTS + stream


@dataclass(frozen=True)
class DemoFacts:
    """What the demo warehouse holds and which incident is hidden in it."""

    path: Path
    rows: int  # in the predictions table, all model versions
    labeled_rows: int  # in the outcomes table: labels that arrived before ``end``
    start: datetime
    end: datetime
    incident_at: datetime
    label_delay: timedelta
    predictions_table: str
    outcomes_table: str
    model_version: str
    segments: tuple[str, ...]
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    shifted_features: tuple[str, ...]
    stable_features: tuple[str, ...]
    shifted_score_region: str
    reseller_at: datetime  # the second incident: covariate shift in one channel
    reseller_channel: str
    sensitive_attribute: str
    seed: int
    build_seconds: float

    def summary(self) -> str:
        """A few lines that tell a demo user what is in the warehouse and what to look for."""
        return "\n".join(
            [
                f"{self.rows:,} scored leads in {self.predictions_table}, "
                f"{self.labeled_rows:,} labels in {self.outcomes_table} "
                f"(they arrive {self.label_delay.days} days after scoring)",
                f"data from {self.start:%Y-%m-%d} to {self.end:%Y-%m-%d} (exclusive), "
                f"built in {self.build_seconds:.1f} s",
                f"incident on {self.incident_at:%Y-%m-%d}: a paid-social campaign starts",
                f"  drifting features: {', '.join(self.shifted_features)}",
                f"  stable features:   {', '.join(self.stable_features)}",
                f"  region {self.shifted_score_region!r} is over-scored: precision falls",
                f"  demographic parity across {self.sensitive_attribute!r} falls below 0.8",
                f"incident on {self.reseller_at:%Y-%m-%d}: a lead reseller joins channel "
                f"{self.reseller_channel!r}",
                "  its leads score just above the threshold: precision falls there, "
                "and the scores show it on the day",
            ]
        )


def build_demo_warehouse(path: Path | str, rows: int = 1_000_000, seed: int = 7) -> DemoFacts:
    """Create (or overwrite) the DuckDB file ``path`` with the demo tables; return its facts.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     facts = build_demo_warehouse(f"{tmp}/demo.duckdb", rows=5_000)
    >>> facts.rows, facts.incident_at.date().isoformat(), facts.shifted_score_region
    (5000, '2026-09-30', 'latam')
    """
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS:,}, so that every day has leads")
    path = Path(path)
    _remove_database(path)
    started = time.perf_counter()
    with duckdb.connect(str(path)) as con:
        con.execute("SET enable_progress_bar = false")  # the build is quick; keep the demo's output clean
        _create_random_macros(con, seed)
        _create_calendar(con, rows)
        con.execute(f"CREATE TABLE {PREDICTIONS_TABLE} AS {_leads_sql(rows)}")
        _move_outcomes_out_of_predictions(con)
        labeled_rows = con.execute(f"SELECT count(*) FROM {OUTCOMES_TABLE}").fetchone()[0]
        con.execute("CHECKPOINT")
    return DemoFacts(
        path=path,
        rows=rows,
        labeled_rows=labeled_rows,
        start=DEMO_START,
        end=DEMO_END,
        incident_at=INCIDENT_AT,
        label_delay=LABEL_DELAY,
        predictions_table=PREDICTIONS_TABLE,
        outcomes_table=OUTCOMES_TABLE,
        model_version=MODEL_VERSION,
        segments=SEGMENTS,
        numeric_features=NUMERIC_FEATURES,
        categorical_features=CATEGORICAL_FEATURES,
        shifted_features=SHIFTED_FEATURES,
        stable_features=STABLE_FEATURES,
        shifted_score_region=SHIFTED_SCORE_REGION,
        reseller_at=RESELLER_AT,
        reseller_channel=RESELLER_CHANNEL,
        sensitive_attribute=SENSITIVE_ATTRIBUTE,
        seed=seed,
        build_seconds=time.perf_counter() - started,
    )


def _remove_database(path: Path) -> None:
    """Delete an earlier build, with its write-ahead log, so the new one starts empty."""
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def _create_random_macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """Define ``uniform(i, stream)`` in (0, 1) and ``normal(i, stream)`` for this seed.

    The key ``i * STREAM_SLOTS + stream``, mixed with the seed's hash, goes through DuckDB's
    64-bit integer hash. DuckDB's multi-argument ``hash(i, stream, seed)`` is avoided on purpose:
    it combines the parts' hashes so simply that two streams of one lead come out correlated.
    The top 53 bits fill a double's mantissa exactly, and the half-step offset keeps every draw
    strictly inside (0, 1), so ``ln(u)`` is always finite.

    ``normal`` pairs its streams for Box-Muller: streams 2k and 2k+1 share a radius and an angle
    and take its cosine and sine, two independent normals for the price of one.
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP MACRO uniform(i, stream) AS
            ((hash(xor((i::BIGINT * {STREAM_SLOTS} + stream::BIGINT)::UBIGINT,
                       hash({int(seed)}::BIGINT))) >> 11)::DOUBLE + 0.5)
            / 9007199254740992.0
        """
    )
    radius = f"sqrt(-2.0 * ln(uniform(i, {NORMAL_STREAM_BASE} + 2 * (stream // 2))))"
    angle = f"2.0 * pi() * uniform(i, {NORMAL_STREAM_BASE} + 2 * (stream // 2) + 1)"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP MACRO normal(i, stream) AS
            {radius} * CASE WHEN stream % 2 = 0 THEN cos({angle}) ELSE sin({angle}) END
        """
    )


def _create_calendar(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """One row per day with the number of its first lead; leads are numbered in day order.

    A day's volume is its weekday's weight, a little daily noise, and the campaign's lift from
    the incident on; the ``rows`` leads are shared out in proportion.
    """
    weekday_weight = _case_of_index("isodow(day_start) - 1", WEEKDAY_VOLUME)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _demo_days AS
        WITH days AS (
            SELECT d, TIMESTAMP '{DEMO_START}' + to_days(d::INTEGER) AS day_start
            FROM range({DEMO_DAYS}) t(d)
        ), weighted AS (
            SELECT day_start,
                {weekday_weight}
                * (1.0 + {DAILY_VOLUME_NOISE} * normal(d, {DAILY_VOLUME_STREAM}))
                * CASE WHEN day_start >= TIMESTAMP '{INCIDENT_AT}'
                       THEN {INCIDENT_VOLUME_LIFT} ELSE 1.0 END AS weight
            FROM days
        ), shares AS (
            SELECT day_start, sum(weight) OVER (ORDER BY day_start) / sum(weight) OVER () AS share
            FROM weighted
        )
        SELECT day_start,
            round({rows} * coalesce(lag(share) OVER (ORDER BY day_start), 0))::BIGINT AS first_lead
        FROM shares
        """
    )


def _leads_sql(rows: int) -> str:
    """The one query that makes every lead, in stages that each add a layer of the story.

    The result is the predictions table plus two hidden columns, ``_converted`` and
    ``_labeled_at``, that ``_move_outcomes_out_of_predictions`` moves to the outcomes table.
    Materialising wide intermediate tables costs more than all the arithmetic, hence one query.
    """
    return f"""
        WITH draws AS ({_draws_sql(rows)}),
        audience AS ({_audience_sql()}),
        features AS ({_features_sql()}),
        logits AS ({_logits_sql()}),
        outcomes AS ({_outcomes_sql()})
        SELECT {", ".join(_published_columns())}, _converted, _labeled_at
        FROM outcomes
    """


def _draws_sql(rows: int) -> str:
    """Every lead number with its day and all the random numbers it needs, as named columns.

    The as-of join finds the lead's day: the last one that starts at or before its number.
    Unlike a lateral ``range`` per day, it keeps the work parallel.
    """
    uniforms = ",\n".join(
        f"uniform(i, {k}) AS u_{name}" for k, name in enumerate(UNIFORM_STREAMS, start=1)
    )
    normals = ",\n".join(f"normal(i, {k}) AS n_{name}" for k, name in enumerate(NORMAL_STREAMS))
    return f"""
        SELECT i, d.day_start,
        {uniforms},
        {normals}
        FROM range({rows}) t(i) ASOF JOIN _demo_days d ON i >= d.first_lead
    """


def _audience_sql() -> str:
    """When the lead came, where from, and whether the campaign brought it.

    Four leads in five arrive in business hours, the rest at any hour. Region is drawn the same
    way before and after the incidents, so neither the campaign nor the reseller changes any
    region's volume share. From ``RESELLER_AT`` the reseller's leads take the place of some of
    the leads the campaign did not bring, so the campaign's share stays the same.
    """
    hour_of_day = f"({BUSINESS_HOURS_PEAK} + {BUSINESS_HOURS_SPREAD} * n_hour)"
    fraction_of_day = f"""CASE WHEN u_business_hours < {BUSINESS_HOURS_SHARE}
        THEN {hour_of_day} / 24 - floor({hour_of_day} / 24) ELSE u_any_hour END"""
    return f"""
        SELECT *,
            scored_at >= TIMESTAMP '{RESELLER_AT}' AND NOT from_campaign
                AND u_reseller < {RESELLER_SHARE / (1 - CAMPAIGN_SHARE)} AS from_reseller
        FROM (
        SELECT *,
            scored_at >= TIMESTAMP '{INCIDENT_AT}' AND u_campaign < {CAMPAIGN_SHARE}
                AS from_campaign
        FROM (
            SELECT *,
                day_start + to_milliseconds(floor(86400000 * {fraction_of_day})::BIGINT)
                    AS scored_at,
                {_pick("u_region", REGION_MIX)} AS region
            FROM draws
        ))
    """


def _features_sql() -> str:
    """The lead's features as the scoring service logs them, nulls included.

    Company size is drawn first, as a latent value, so that tier and revenue follow it even when
    the logged size is missing. ``latent_log_visits`` gives the lead's genuine visits; the
    campaign multiplies them.
    """
    visits_factor = (
        f"CASE WHEN NOT from_campaign THEN 1.0 "
        f"WHEN region = 'latam' THEN {CAMPAIGN_VISITS_FACTOR['latam']} "
        f"ELSE {CAMPAIGN_VISITS_FACTOR['other']} END"
    )
    time_factor = f"CASE WHEN from_campaign THEN {CAMPAIGN_TIME_ON_SITE_FACTOR} ELSE 1.0 END"
    country = (
        "CASE region "
        + " ".join(f"WHEN '{r}' THEN {_pick('u_country', mix)}" for r, mix in COUNTRY_MIX.items())
        + " END"
    )
    return f"""
        SELECT *,
            {_nullable("company_size", "greatest(1, round(latent_size))::BIGINT")}
                AS company_size,
            CASE WHEN latent_size < 50 THEN 'smb' WHEN latent_size < 1000 THEN 'mid'
                 ELSE 'enterprise' END AS company_tier,
            {_nullable("annual_revenue_k",
                       "round(latent_size * 150 * exp(0.6 * n_revenue_per_employee), 1)")}
                AS annual_revenue_k,
            floor(exp(latent_log_visits) * {visits_factor})::BIGINT AS visits_7d,
            round(exp(ln(3.0) + 0.4 * n_pages), 1) AS pages_per_visit,
            {_nullable("time_on_site_s",
                       f"round(exp(ln(240) + 0.9 * n_time_on_site) * {time_factor}, 1)")}
                AS time_on_site_s,
            {_nullable("email_opens_30d",
                       "greatest(0, floor(exp(0.8 + 0.9 * n_email_opens)) - 1)::BIGINT")}
                AS email_opens_30d,
            {_nullable("days_since_signup", "floor(-45 * ln(u_days_since_signup))::BIGINT")}
                AS days_since_signup,
            (3 + floor(10 * pow(u_form_fields, 1.3)))::BIGINT AS form_fields_filled,
            CASE WHEN from_campaign THEN {_pick("u_industry", CAMPAIGN_INDUSTRY_MIX)}
                 ELSE {_pick("u_industry", INDUSTRY_MIX)} END AS industry,
            CASE WHEN u_null_country < {NULL_RATES["country"]} THEN NULL ELSE {country} END
                AS country,
            {_pick("u_lead_source", LEAD_SOURCE_MIX)} AS lead_source,
            CASE WHEN from_campaign THEN '{CAMPAIGN_CHANNEL}'
                 WHEN from_reseller THEN '{RESELLER_CHANNEL}'
                 ELSE {_pick("u_channel", CHANNEL_MIX)} END AS channel,
            CASE WHEN from_campaign THEN {_pick("u_gender", CAMPAIGN_GENDER_MIX)}
                 ELSE {_pick("u_gender", GENDER_MIX)} END AS gender,
            CASE WHEN u_model_version < {MODEL_V2_SHARE} THEN 'v2' ELSE '{MODEL_VERSION}' END
                AS model_version
        FROM (
            SELECT *,
                exp(ln(80) + 1.5 * n_size) AS latent_size,
                1.0 + 0.75 * n_visits AS latent_log_visits
            FROM audience
        )
    """


def _logits_sql() -> str:
    """The model's log-odds of conversion, and the true log-odds the outcome is drawn from.

    The truth equals the model everywhere except for latam campaign leads: their click-farm
    visits carry no intent, so the truth counts their genuine visits instead. Their short
    sessions count in both: the model is right that those leads are weaker.

    A reseller's lead is one its screening let through: whatever its logged features, the
    signals the model sees beyond them add up to log-odds in ``RESELLER_LOGIT_RANGE``. The truth
    follows the model there too, so the reseller moves leads to where the model is less sure
    without changing what a score means (covariate shift).
    """
    genuine_visits = "floor(exp(latent_log_visits))"
    return f"""
        SELECT *,
            CASE WHEN from_campaign AND region = '{SHIFTED_SCORE_REGION}'
                 THEN model_logit
                      - {VISITS_WEIGHT} * (ln(1 + visits_7d) - ln(1 + {genuine_visits}))
                 ELSE model_logit END AS true_logit
        FROM (
            SELECT *, CASE WHEN from_reseller THEN {_reseller_logit_sql()}
                           ELSE logged_logit + {OTHER_SIGNALS_SPREAD} * n_other_signals
                           END AS model_logit
            FROM (SELECT *, {_logged_logit_sql()} AS logged_logit FROM features)
        )
    """


def _reseller_logit_sql() -> str:
    """The log-odds of a lead the reseller let through: uniform in ``RESELLER_LOGIT_RANGE``."""
    low, high = RESELLER_LOGIT_RANGE
    return f"({low} + {high - low} * u_reseller_logit)"


def _logged_logit_sql() -> str:
    """The v3 model's log-odds from the logged features, before the other signals it knows;
    missing values are imputed with typical ones, as in its pipeline."""
    return f"""(
        {MODEL_INTERCEPT}
        + {VISITS_WEIGHT} * (ln(1 + visits_7d) - 1.3)
        + {TIME_ON_SITE_WEIGHT} * (ln(coalesce(time_on_site_s, 240)) - ln(240))
        + {PAGES_WEIGHT} * (ln(pages_per_visit) - ln(3))
        + {EMAIL_OPENS_WEIGHT} * (ln(1 + coalesce(email_opens_30d, 1)) - 0.8)
        + {FORM_FIELDS_WEIGHT} * (form_fields_filled - 7)
        + {SIGNUP_AGE_WEIGHT} * (coalesce(days_since_signup, 30) - 45)
        + {_case_of_values("company_tier", TIER_EFFECT)}
        + {_case_of_values("lead_source", LEAD_SOURCE_EFFECT)}
        + {_case_of_values("industry", INDUSTRY_EFFECT)}
    )"""


def _outcomes_sql() -> str:
    """Scores, the hidden outcome and when its label arrives, revenue and latency.

    Labels arrive with the nightly CRM sync (02:00-05:00) seven days after the scoring day. So
    at the end of the data a lead has its label exactly when it was scored at least
    ``LABEL_DELAY`` before, and a daily window has all its labels once it is that old.
    Revenue is the deal value the sync books: zero unless the lead converted and was synced.
    The old v2 model is a noisier version of v3.
    """
    return f"""
        SELECT *,
            CASE WHEN _converted AND _labeled_at < TIMESTAMP '{DEMO_END}'
                 THEN round(20000 * pow(latent_size / 80, 0.3) * exp(0.5 * n_deal_value), 2)
                 ELSE 0.0 END AS revenue
        FROM (
            SELECT *,
                i + 1 AS lead_id,
                CASE WHEN model_version = '{MODEL_VERSION}' THEN 1 / (1 + exp(-model_logit))
                     ELSE 1 / (1 + exp(-(0.7 * model_logit + 0.6 * n_v2_noise - 0.1)))
                     END AS score,
                round(exp(ln(45) + 0.45 * n_latency), 2) AS latency_ms,
                u_label < 1 / (1 + exp(-true_logit)) AS _converted,
                day_start + to_days({LABEL_DELAY.days}) + to_hours(2)
                    + to_milliseconds(floor(u_label_sync * 3 * 3600000)::BIGINT) AS _labeled_at
            FROM logits
        )
    """


def _published_columns() -> tuple[str, ...]:
    """What the scoring service logs, in table order: never the label."""
    return (
        "lead_id",
        "scored_at",
        "model_version",
        *SEGMENTS,
        *CATEGORICAL_FEATURES,
        *NUMERIC_FEATURES,
        SENSITIVE_ATTRIBUTE,
        "score",
        "latency_ms",
        "revenue",
    )


def _move_outcomes_out_of_predictions(con: duckdb.DuckDBPyConnection) -> None:
    """Write the labels synced by the end of the data to the outcomes table; late ones are missing.

    Then drop the hidden columns, so the predictions table holds no trace of the label.
    """
    con.execute(
        f"""
        CREATE TABLE {OUTCOMES_TABLE} AS
        SELECT lead_id, _converted AS converted, _labeled_at AS labeled_at
        FROM {PREDICTIONS_TABLE}
        WHERE _labeled_at < TIMESTAMP '{DEMO_END}'
        """
    )
    for hidden in ("_converted", "_labeled_at"):
        con.execute(f"ALTER TABLE {PREDICTIONS_TABLE} DROP COLUMN {hidden}")


# --- Small SQL builders ------------------------------------------------------------------------


def _pick(uniform: str, mix: dict[str, float]) -> str:
    """SQL that turns the uniform column ``uniform`` into a value drawn from ``mix``.

    >>> _pick("u", {"a": 0.25, "b": 0.75})
    "CASE WHEN u < 0.25 THEN 'a' ELSE 'b' END"
    """
    values = list(mix)
    branches, edge = [], 0.0
    for value in values[:-1]:
        edge += mix[value]
        branches.append(f"WHEN {uniform} < {edge!r} THEN '{value}'")
    return f"CASE {' '.join(branches)} ELSE '{values[-1]}' END"


def _nullable(column: str, expression: str) -> str:
    """``expression``, or NULL for the column's share of missing values."""
    return f"CASE WHEN u_null_{column} < {NULL_RATES[column]} THEN NULL ELSE {expression} END"


def _case_of_values(column: str, effects: dict[str, float]) -> str:
    """SQL for the effect of a categorical column's value; unlisted values have none."""
    branches = " ".join(f"WHEN '{value}' THEN {effect}" for value, effect in effects.items())
    return f"CASE {column} {branches} ELSE 0.0 END"


def _case_of_index(index: str, weights: tuple[float, ...]) -> str:
    """SQL for ``weights[index]``, with ``index`` a 0-based SQL integer expression."""
    branches = " ".join(f"WHEN {k} THEN {w}" for k, w in enumerate(weights))
    return f"CASE {index} {branches} END"
