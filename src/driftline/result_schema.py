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
