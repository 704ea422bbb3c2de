"""The result tables' columns: a public contract for BI tools (SPEC §5).

Kept apart from the code that writes them so that readers (the report, the views, the judge)
share one definition. Timestamps are naive UTC. Migrations are additive: a column is only ever
added at the end of a table, never renamed or dropped.
"""

from __future__ import annotations

import ibis

RUNS = "driftline_runs"
RESULTS = "driftline_results"
HISTOGRAMS = "driftline_histograms"
ALERTS = "driftline_alerts"
PROFILES = "driftline_profiles"
LEASES = "driftline_leases"

TABLES: dict[str, ibis.Schema] = {
    RUNS: ibis.schema(
        {
            "run_id": "string",
            "monitor": "string",
            "window_start": "timestamp",
            "window_end": "timestamp",
            "started_at": "timestamp",
            "finished_at": "timestamp",
            "status": "string",
            "error": "string",
            "rows_current": "int64",
            "rows_reference": "int64",
            "driftline_version": "string",
        }
    ),
    RESULTS: ibis.schema(
        {
            "run_id": "string",
            "monitor": "string",
            "check_name": "string",
            "check_type": "string",
            "metric": "string",
            "column_name": "string",
            "segment_key": "string",
            "segment_value": "string",
            "window_start": "timestamp",
            "window_end": "timestamp",
            "value": "float64",
            "p_value": "float64",
            "status": "string",
            "warn_threshold": "string",
            "fail_threshold": "string",
            "n_current": "int64",
            "n_reference": "int64",
            "details": "string",
            "created_at": "timestamp",
            # Added after SPEC §5's first list (additive; null on rows written before): the bounds
            # the value breaches outside of, as resolved for this window (a {drop}/{rise} counted
            # from the reference value, an anomaly band narrowing the fail bounds), the reference
            # value, and why an insufficient_data result is one (a code of driftline.reasons).
            "warn_lower": "float64",
            "warn_upper": "float64",
            "fail_lower": "float64",
            "fail_upper": "float64",
            "reference_value": "float64",
            "reason": "string",
            # Added later still (additive): the value's standard error, a closed form per metric
            # (SPEC §6); null where the metric has none (drift, quality, latency).
            "std_error": "float64",
        }
    ),
    HISTOGRAMS: ibis.schema(
        {
            "run_id": "string",
            "monitor": "string",
            "column_name": "string",
            "segment_key": "string",
            "segment_value": "string",
            "bin_index": "int64",
            "bin_label": "string",
            "lower": "float64",
            "upper": "float64",
            "reference_count": "int64",
            "current_count": "int64",
            # Added after SPEC §5's list (additive): the bins' configuration ("quantile:10",
            # "uniform:7", "categories:20"), which tells apart two drift checks binning one column
            # differently.
            "binning": "string",
        }
    ),
    ALERTS: ibis.schema(
        {
            "alert_id": "string",
            "fingerprint": "string",
            "monitor": "string",
            "check_name": "string",
            "column_name": "string",
            "segment_key": "string",
            "segment_value": "string",
            "severity": "string",
            "state": "string",
            "opened_at": "timestamp",
            "last_seen_at": "timestamp",
            "resolved_at": "timestamp",
            "last_run_id": "string",
            "value": "float64",
            "message": "string",
            "notify_status": "string",
            "notify_attempts": "int64",
            "channel": "string",
            "slack_ts": "string",
            # Added after SPEC §5's list (additive): the window time of the episode's latest
            # announcement (its cooldown clock), and the notifications waiting in the outbox as
            # JSON (see driftline.outbox), with the last delivery error until a message gets
            # through; null once nothing is pending and nothing failed.
            "notified_at": "timestamp",
            "payload": "string",
        }
    ),
    # Not part of the BI contract: cached reference profiles (edges, categories, reference counts
    # and reference metric values), keyed by monitor, reference window and configuration hash.
    PROFILES: ibis.schema(
        {
            "profile_key": "string",
            "monitor": "string",
            "reference_start": "timestamp",
            "reference_end": "timestamp",
            "created_at": "timestamp",
            "profile": "string",
        }
    ),
}


# Not part of TABLES: created with a primary key on ``monitor`` where the backend has keys (see
# driftline.leases). One row per monitor being evaluated: who evaluates it, and until when.
LEASE_SCHEMA = ibis.schema(
    {
        "monitor": "string",
        "holder": "string",
        "host": "string",
        "pid": "int64",
        "acquired_at": "timestamp",
        "expires_at": "timestamp",
    }
)


# What the tables and their columns hold, for people: the views' column comments and the dbt
# sources file (`driftline dbt-sources`) say this. SPEC §5 is the longer version.
TABLE_DESCRIPTIONS = {
    RUNS: "One row per monitor window evaluated",
    RESULTS: "One row per check, column, segment and window: the value and its status",
    HISTOGRAMS: "The bins behind each drift value",
    ALERTS: "One row per breach episode of a monitor, check, column and segment",
}

_BOUND = "the value {} {} it (the {} threshold as resolved for this window{}); null: no bound on that side"
_RELATIVE = ", a {drop}/{rise} counted from reference_value"
_SERIES = {
    "run_id": "the run that wrote the row (driftline_runs.run_id)",
    "monitor": "the monitor's name",
    "check_name": "the check's name, unique within the monitor",
    "column_name": "the column the value is about; null for a check of the whole table or model",
    "segment_key": "the segment column; null for the overall row",
    "segment_value": "the segment column's value; null for the overall row",
}
COLUMN_DESCRIPTIONS: dict[str, dict[str, str]] = {
    RUNS: {
        "run_id": "the run's id; every row it wrote carries it",
        "monitor": "the monitor's name",
        "window_start": "start of the window evaluated (UTC)",
        "window_end": "end of the window evaluated, exclusive (UTC)",
        "started_at": "when the evaluation started (UTC)",
        "finished_at": "when it finished (UTC)",
        "status": "running | success | error",
        "error": "what went wrong, for status error",
        "rows_current": "rows of the window",
        "rows_reference": "rows of the reference window",
        "driftline_version": "the driftline version that evaluated the window",
    },
    RESULTS: {
        **_SERIES,
        "check_type": "drift | performance | fairness | quality | latency | metric",
        "metric": "the metric or drift method (psi, roc_auc, null_rate, ...; a custom metric's name)",
        "window_start": "start of the window evaluated (UTC)",
        "window_end": "end of the window evaluated, exclusive (UTC)",
        "value": "the check's value on the window; null when it could not be measured (see reason)",
        "p_value": "the test's p-value (chi2, ks); null where the method has none",
        "status": "ok | warn | fail | insufficient_data | error",
        "warn_threshold": "the warn threshold as written in the monitor",
        "fail_threshold": "the fail threshold as written in the monitor",
        "n_current": "rows or values the value was measured on",
        "n_reference": "rows or values of the reference window the value was compared with",
        "details": "JSON: what else the check found (histogram summary, groups, anomaly band, explanation)",
        "created_at": "when the row was written (UTC)",
        "warn_lower": _BOUND.format("warns", "below", "warn", _RELATIVE),
        "warn_upper": _BOUND.format("warns", "above", "warn", _RELATIVE),
        "fail_lower": _BOUND.format("fails", "below", "fail", _RELATIVE + ", narrowed by the anomaly band"),
        "fail_upper": _BOUND.format("fails", "above", "fail", _RELATIVE + ", narrowed by the anomaly band"),
        "reference_value": "the same metric on the reference window, where a {drop}/{rise} threshold needs it",
        "reason": "why the status is insufficient_data: labels_not_mature, min_rows, empty_window, ... (SPEC §5)",
        "std_error": "the value's standard error (binomial for rates, Hanley-McNeil for roc_auc, s/sqrt(n) for means; SPEC §6); null where none applies",
    },
    HISTOGRAMS: {
        **{key: _SERIES[key] for key in ("run_id", "monitor", "column_name", "segment_key", "segment_value")},
        "bin_index": "the bin's position, 0-based",
        "bin_label": "the bin's label: its range, or the category",
        "lower": "the bin's lower edge; null for a categorical bin and the open first bin",
        "upper": "the bin's upper edge; null for a categorical bin and the open last bin",
        "reference_count": "rows of the reference window in the bin",
        "current_count": "rows of the current window in the bin",
        "binning": "the bins' configuration (quantile:10, uniform:7, categories:20)",
    },
    ALERTS: {
        "alert_id": "the episode's id",
        "fingerprint": "monitor, check, column and segment: what the episode is about",
        **{key: _SERIES[key] for key in ("monitor", "check_name", "column_name", "segment_key", "segment_value")},
        "severity": "warn | fail: the worst status the episode has seen",
        "state": "open | resolved",
        "opened_at": "the start of the episode's first breaching window (UTC)",
        "last_seen_at": "the start of its latest breaching window (UTC)",
        "resolved_at": "the start of the first window after it that no longer breaches (UTC); null while open",
        "last_run_id": "the run that last moved the episode on",
        "value": "the value of the latest breaching window",
        "message": "the alert message",
        "notify_status": "pending | sending | sent | failed | suppressed",
        "notify_attempts": "delivery attempts so far",
        "channel": "the Slack channel the episode is announced in",
        "slack_ts": "the Slack message's ts: its thread",
        "notified_at": "the window time of the episode's latest announcement (its cooldown clock)",
        "payload": "JSON: the notifications waiting in the outbox, and the last delivery error",
    },
}
