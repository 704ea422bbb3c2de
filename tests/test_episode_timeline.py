"""Alert episodes follow the window timeline, whatever order the windows were evaluated in
(issue 14, item 3): a run and then a backfill of the days before it, a backfill in reverse, a
re-run of a window. Real runs on a small DuckDB project; Slack is the local fake server.

As in test_alerts.py, the one feature ``c`` takes "a" in an exact share of each day's rows, so
each day's PSI is known: 50/50 is ok, 70/30 a warn, 80/20 a fail. The expected times below are
the days planted in the stories, as window starts (day ``d`` is ``START + d * DAY``).
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from alert_story import DAY, FAIL, OK, START, WARN, events, story_monitor

from driftline import api
from driftline.reporting import data as report_data
from driftline.reporting.info import MonitorInfo
from driftline.reporting.model import build_monitors, epoch_seconds
from driftline.store import ResultStore


MONITOR = story_monitor("      cooldown: 3d\n")

# The issue's case: the drift begins on day 10; the first run of driftline is on day 30; it
# recovers on day 34.
ISSUE = [OK] * 10 + [FAIL] * 24 + [OK] * 2
BREACH_BEGINS, FIRST_RUN, RECOVERED = 10, 30, 34

# Two episodes: warn on days 3-4, fail on 5-6, ok on 7-8; fail again from day 9.
TWO_EPISODES = [OK] * 3 + [WARN] * 2 + [FAIL] * 2 + [OK] * 2 + [FAIL] * 2


def project_with(make_project, story: list[float], slack=None):
    settings = {"notify": {"slack": {"token": slack.token, "channel": "#ml", "base_url": slack.base_url}}} if slack else {}
    return make_project(monitors={"leads": MONITOR}, tables={"events": events(story)}, settings=settings)


def day(d: int) -> pd.Timestamp:
    return pd.Timestamp(START + d * DAY)


def run_day(project, d: int) -> api.RunSummary:
    """A scheduled run just after day ``d`` ended: it evaluates that day's window."""
    return api.run(project.root, at=START + (d + 1) * DAY)


def backfill(project, first: int, last: int) -> None:
    """Backfill days ``first`` to ``last`` (silently, as backfills are by default)."""
    api.backfill(START + first * DAY, START + (last + 1) * DAY, project=project.root, at=START + 60 * DAY)


def episodes(project) -> pd.DataFrame:
    return project.query("select * from driftline_alerts order by opened_at, segment_key nulls first")


def timeline_of(rows: pd.DataFrame) -> list[tuple]:
    """What the window timeline decides about each episode, in a comparable form."""
    columns = ["fingerprint", "state", "severity", "opened_at", "last_seen_at", "resolved_at"]
    return sorted(tuple(None if pd.isna(v) else v for v in row) for row in rows[columns].itertuples(index=False))


# -- run, then backfill the days before -----------------------------------------------------------


def test_a_backfill_before_the_first_run_moves_the_episode_back_to_where_the_breach_began(make_project, slack):
    project = project_with(make_project, ISSUE, slack)
    run_day(project, FIRST_RUN)
    [opening] = slack.delivered
    first = episodes(project)
    assert list(first.opened_at) == [day(FIRST_RUN)] * 2  # overall and region=eu

    backfill(project, 0, FIRST_RUN - 1)

    rows = episodes(project)
    assert list(rows.opened_at) == [day(BREACH_BEGINS)] * 2  # 20 days earlier, not a second episode
    assert list(rows.state) == ["open", "open"] and list(rows.last_seen_at) == [day(FIRST_RUN)] * 2
    assert list(rows.alert_id) == list(first.alert_id)  # the same episodes, moved back
    assert list(rows.slack_ts) == [opening.ts] * 2 and list(rows.notify_status) == ["sent", "sent"]
    assert len(slack.delivered) == 1  # the backfill said nothing


def test_slack_says_since_the_day_the_breach_began(make_project, slack):
    project = project_with(make_project, ISSUE, slack)
    run_day(project, FIRST_RUN)
    backfill(project, 0, FIRST_RUN - 1)

    for d in range(FIRST_RUN + 1, FIRST_RUN + 4):  # the cooldown (3 days) runs from the first message
        run_day(project, d)
    [reminder] = slack.delivered[1:]
    began = day(BREACH_BEGINS).strftime("%Y-%m-%d")
    assert began == "2026-03-11"
    assert f"still failing since {began}" in reminder.text

    run_day(project, RECOVERED)
    replies = slack.delivered[2:]
    assert len(replies) == 2 and all(f"failing since {began}" in str(r.blocks) for r in replies)
    rows = episodes(project)
    assert list(rows.state) == ["resolved", "resolved"]
    assert list(rows.resolved_at) == [day(RECOVERED)] * 2  # the first window that no longer breaches
    assert list(rows.last_seen_at) == [day(RECOVERED - 1)] * 2


def test_the_report_marks_the_window_where_the_breach_began(make_project):
    project = project_with(make_project, ISSUE)
    run_day(project, FIRST_RUN)
    backfill(project, 0, FIRST_RUN - 1)

    with project.connect() as con:
        [monitor] = build_monitors(report_data.load(con), [MonitorInfo("leads", None, None, None)])
    [check] = monitor.checks
    opened = [m for m in check.markers if m.css.startswith("opened")]
    x_of_day = epoch_seconds(pd.Series([day(BREACH_BEGINS)]))[0]
    assert opened and all(m.x == x_of_day for m in opened)
    assert x_of_day < max(line.x.max() for line in check.lines)  # not at the right edge


# -- any order, the same episodes -----------------------------------------------------------------


def test_a_backfill_in_reverse_order_gives_the_episodes_of_one_in_order(make_project):
    in_order = project_with(make_project, TWO_EPISODES)
    backfill(in_order, 0, len(TWO_EPISODES) - 1)
    reverse = project_with(make_project, TWO_EPISODES)
    for d in reversed(range(len(TWO_EPISODES))):
        backfill(reverse, d, d)

    rows = episodes(in_order)
    assert timeline_of(episodes(reverse)) == timeline_of(rows)
    overall = rows[rows.segment_key.isna()]
    assert list(overall.opened_at) == [day(3), day(9)]
    assert list(overall.resolved_at.isna()) == [False, True] and overall.resolved_at.iloc[0] == day(7)
    assert list(overall.severity) == ["fail", "fail"] and list(overall.state) == ["resolved", "open"]
    assert list(overall.last_seen_at) == [day(6), day(10)]


def test_a_rerun_that_now_breaches_joins_the_episodes_around_it(make_project):
    project = project_with(make_project, TWO_EPISODES)
    backfill(project, 0, len(TWO_EPISODES) - 1)
    before = episodes(project)
    newer = before[before.opened_at == day(9)]

    # The ok days 7 and 8 are corrected: they drifted too. Re-running them joins the two episodes.
    fixed = TWO_EPISODES[:7] + [FAIL, FAIL] + TWO_EPISODES[9:]
    project.load("events", events(fixed))
    backfill(project, 7, 8)

    rows = episodes(project)
    assert len(rows) == 2  # one episode per fingerprint
    assert list(rows.opened_at) == [day(3)] * 2 and list(rows.state) == ["open", "open"]
    assert list(rows.last_seen_at) == [day(10)] * 2
    assert sorted(rows.alert_id) == sorted(newer.alert_id)  # the newer rows carry on


# -- rows written when episode times were window ends ----------------------------------------------


def test_the_migration_moves_window_ends_to_window_starts_once(make_project):
    project = project_with(make_project, TWO_EPISODES)
    backfill(project, 0, len(TWO_EPISODES) - 1)
    # The rows as an older driftline wrote them: every time the end of its window (a day later).
    project.execute(
        "update driftline_alerts set opened_at = opened_at + interval 1 day, last_seen_at = last_seen_at + interval 1 day,"
        " resolved_at = resolved_at + interval 1 day, notified_at = notified_at + interval 1 day",
        "drop table if exists driftline_migrations",
    )

    with project.connect() as con:
        ResultStore(con).ensure_tables()
        ResultStore(con).ensure_tables()  # a second time moves nothing

    overall = episodes(project).query("segment_key.isna()", engine="python")
    assert list(overall.opened_at) == [day(3), day(9)]
    assert list(overall.last_seen_at) == [day(6), day(10)]
    assert overall.resolved_at.iloc[0] == day(7) and pd.isna(overall.resolved_at.iloc[1])
    assert list(overall.notified_at) == [day(5), day(9)]  # the escalation, and the opening


# -- a verdict that waited for its labels -----------------------------------------------------------

LATE_LABELS = """
    name: late
    source: {table: scored, timestamp: ts}
    model:
      task: binary_classification
      score: score
      labels: {table: outcomes, key: lead_id, column: converted, delay: 2d}
    schedule: {every: 1d}
    reference: {start: 2026-02-01, end: 2026-02-08}
    min_rows: 1
    checks:
      - performance: {metric: accuracy, fail: 0.5}
"""


def test_a_breach_known_once_its_labels_matured_is_announced(make_project, slack):
    """Every lead scores 0.9 and none converts: accuracy 0, a fail, but only once the labels of
    a day are mature (2 days after it ends). Until then the day is not on the check's timeline,
    so its verdict is news when it comes, although later days were evaluated before it."""
    ts = [START + d * DAY + timedelta(hours=h) for d in range(3) for h in range(0, 24, 2)]
    scored = pd.DataFrame({"lead_id": range(len(ts)), "ts": ts, "score": 0.9})
    outcomes = pd.DataFrame({"lead_id": range(len(ts)), "converted": 0})
    settings = {"notify": {"slack": {"token": slack.token, "channel": "#ml", "base_url": slack.base_url}}}
    project = make_project(monitors={"late": LATE_LABELS}, tables={"scored": scored, "outcomes": outcomes}, settings=settings)

    run_day(project, 0)
    run_day(project, 1)
    assert episodes(project).empty and not slack.delivered  # days 0 and 1 wait for their labels
    run_day(project, 2)  # day 0's labels are mature: it is evaluated again, and fails

    rows = episodes(project)
    assert list(rows.opened_at) == [day(0)] and list(rows.severity) == ["fail"]
    [message] = slack.delivered
    assert "1 failing" in message.text
