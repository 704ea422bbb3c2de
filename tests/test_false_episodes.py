"""False alert episodes of per-segment performance checks on a churn-like scenario (see
``churn_scenario``): the episodes driftline opens with ``{drop: 0.05}``, with a ``confidence``
and with a ``reference_band`` equal those numpy and scipy find on the same rows, and the
noise-aware forms open fewer false ones while catching the planted change."""

from __future__ import annotations

import pandas as pd
import pytest

import churn_scenario as churn
from driftline import api
from driftline.result_schema import ALERTS


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    data = churn.scenario()
    root = churn.write_project(tmp_path_factory.mktemp("churn"), data)
    days = churn.monitored_days()
    summary = api.backfill(days[0], days[-1] + churn.DAY, project=root, at=days[-1] + 3 * churn.DAY, notify=False)
    assert all(o.status == "success" for o in summary.outcomes), [o.error for o in summary.outcomes if o.error]
    alerts = api.Workspace.open(root).store.table(ALERTS).execute()
    return data, alerts


def test_episodes_equal_an_independent_count(scenario):
    data, alerts = scenario
    assert churn.stored_episodes(alerts) == churn.expected_episodes(data)


def test_noise_aware_thresholds_open_fewer_false_episodes_and_still_catch_the_change(scenario):
    data, alerts = scenario
    counts = churn.stored_episodes(alerts)
    assert counts["recall_drop_significant"]["false"] < counts["recall_drop"]["false"]
    assert counts["recall_band"]["false"] < counts["recall_drop"]["false"]
    change = churn.START + churn.CHANGE_DAY * churn.DAY
    for check in churn.THRESHOLDS:
        caught = alerts[(alerts.check_name == check) & (alerts.segment_value == churn.CHANGED_SEGMENT)]
        assert (pd.to_datetime(caught.opened_at) == change).any(), check  # on the day of the change
