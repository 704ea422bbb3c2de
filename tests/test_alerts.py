"""Alert episodes and their delivery, end to end: a small DuckDB project, real runs, and the real
slack-sdk client talking HTTP to the local fake Slack (tests/slack_server.py).

The project's one feature ``c`` takes two values, "a" and "b", in exact daily proportions, so the
PSI of every day is known in advance: 50/50 is ok, 70/30 is a warn (0.17), 80/20 a fail (0.62).
"""

from __future__ import annotations

import contextlib
import uuid

import pandas as pd
import pytest
from alert_story import DAY, FAIL, OK, START, WARN, events, story_monitor
from slack_server import FakeSlack, hang, rate_limited, server_error

from driftline import api, cli, outbox

RUNBOOK = "https://wiki.example.com/runbooks/leads"
REPORT = "https://reports.example.com/report.html"

MONITOR = story_monitor(
    '      channel: "#growth-ml"\n      min_severity: MIN_SEVERITY\n      cooldown: 3d\n',
    header=f'    description: Lead scoring\n    owner: "<!subteam^S0123> @growth-ml"\n    runbook: {RUNBOOK}\n',
)

# Day by day (from START): five quiet days, a warn that lasts, escalation, recovery.
STORY = [OK] * 5 + [WARN] * 4 + [FAIL] * 2 + [OK] * 2


# The `slack` fake server fixture and the proxy clean-up live in conftest.py.


def leads_project(make_project, slack: FakeSlack | None = None, token: str | None = None, min_severity="warn", story=STORY, **slack_options):
    """The project; Slack settings point at the fake server when one is given."""
    settings = {"report_url": REPORT}
    if slack is not None:
        config = {"token": token or slack.token, "channel": "#ml-alerts", "base_url": slack.base_url, **slack_options}
        settings["notify"] = {"slack": config}
    return make_project(
        monitors={"leads": MONITOR.replace("MIN_SEVERITY", min_severity)},
        tables={"events": events(story)},
        settings=settings,
    )


def backfill_days(project, first: int, last: int) -> None:
    """Backfill days ``first`` to ``last`` (silently, as backfills are by default)."""
    api.backfill(START + first * DAY, START + (last + 1) * DAY, project=project.root, at=START + 60 * DAY)


def run_day(project, day: int, **options) -> api.RunSummary:
    """A scheduled run just after day ``day`` ended: it evaluates that day's window."""
    return api.run(project.root, at=START + (day + 1) * DAY, **options)


def episodes(project) -> pd.DataFrame:
    return project.query("select * from driftline_alerts order by opened_at, segment_key nulls first")


# -- the episode lifecycle ----------------------------------------------------------------------


def test_an_episode_opens_reminds_escalates_and_resolves_in_its_thread(make_project, slack):
    project = leads_project(make_project, slack)
    backfill_days(project, 3, 4)
    assert episodes(project).empty

    opened = run_day(project, 5)  # the drift starts: warn
    [message] = slack.delivered
    assert [n.status for n in opened.notifications] == ["sent"]
    assert message.channel == "#growth-ml"  # the monitor's channel beats the project's
    assert "2 warning" in message.text  # overall and region=eu, grouped in one message
    assert "<!subteam^S0123>" in message.text  # the owner is mentioned
    [actions] = [b for b in message.blocks if b["type"] == "actions"]
    assert [e["url"] for e in actions["elements"]] == [RUNBOOK, f"{REPORT}#leads-drift_psi"]
    rows = episodes(project)
    assert list(rows.state) == ["open", "open"]
    assert list(rows.opened_at) == [pd.Timestamp(START + 5 * DAY)] * 2  # the drift day's window start
    assert list(rows.notify_status) == ["sent", "sent"] and list(rows.notify_attempts) == [1, 1]
    assert list(rows.slack_ts) == [message.ts] * 2

    run_day(project, 6)
    run_day(project, 7)
    assert len(slack.delivered) == 1  # within the 3-day cooldown: quiet

    run_day(project, 8)  # three days after the first message: one reminder
    reminder = slack.delivered[-1]
    assert len(slack.delivered) == 2 and "still warning since 2026-03-06" in reminder.text  # day 5
    assert reminder.thread_ts is None

    run_day(project, 9)  # warn → fail: at once, cooldown or not
    escalation = slack.delivered[-1]
    assert len(slack.delivered) == 3 and "escalated to fail" in escalation.text
    assert list(episodes(project).severity) == ["fail", "fail"]

    run_day(project, 10)
    assert len(slack.delivered) == 3

    resolved = run_day(project, 11)  # back to normal: resolved, in the first message's thread
    replies = slack.delivered[3:]
    assert len(replies) == 2 and {r.thread_ts for r in replies} == {message.ts}
    assert all(r.text.startswith("Resolved: leads") for r in replies)
    assert [n.status for n in resolved.notifications] == ["sent", "sent"]
    rows = episodes(project)
    assert list(rows.state) == ["resolved", "resolved"]
    assert list(rows.resolved_at) == [pd.Timestamp(START + 11 * DAY)] * 2  # the recovered day's start
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()

    run_day(project, 12)
    assert len(slack.delivered) == 5  # nothing more to say


def test_a_backfill_gives_the_same_episodes_every_time(make_project):
    project = leads_project(make_project, story=[OK, WARN, FAIL, OK])

    for _ in range(2):
        backfill_days(project, 0, 3)

    rows = episodes(project)
    assert len(rows) == 2  # overall and region=eu; no duplicates from the second pass
    assert list(rows.opened_at) == [pd.Timestamp(START + 1 * DAY)] * 2  # the WARN day
    assert list(rows.resolved_at) == [pd.Timestamp(START + 3 * DAY)] * 2  # the OK day after FAIL
    assert list(rows.severity) == ["fail", "fail"]
    assert list(rows.notify_status) == ["suppressed", "suppressed"]
    assert rows.fingerprint.nunique() == 2 and rows.alert_id.nunique() == 2


def test_min_severity_fail_ignores_warnings(make_project, slack):
    project = leads_project(make_project, slack, min_severity="fail")
    backfill_days(project, 5, 8)  # four days of warnings

    assert episodes(project).empty
    run_day(project, 9)
    assert len(episodes(project)) == 2
    assert "2 failing" in slack.delivered[0].text


# -- delivery -----------------------------------------------------------------------------------


def test_a_server_error_is_delivered_once_on_the_next_run(make_project, slack):
    project = leads_project(make_project, slack)
    slack.script(server_error(500))

    first = run_day(project, 5)
    [note] = first.notifications
    assert note.status == "retry" and "HTTP 500" in note.error
    rows = episodes(project)
    assert list(rows.notify_status) == ["pending", "pending"] and list(rows.notify_attempts) == [1, 1]
    assert slack.delivered == []

    second = run_day(project, 6)  # nothing new to say, but the outbox is not empty
    assert [n.status for n in second.notifications] == ["sent"]
    [message] = slack.delivered
    assert "2 warning" in message.text
    rows = episodes(project)
    assert list(rows.notify_status) == ["sent", "sent"] and list(rows.notify_attempts) == [2, 2]

    run_day(project, 7)
    assert len(slack.delivered) == 1


def test_a_rate_limit_is_waited_out_within_the_run(make_project, slack):
    project = leads_project(make_project, slack)
    slack.script(rate_limited(retry_after=1))

    summary = run_day(project, 5)

    assert [n.status for n in summary.notifications] == ["sent"]
    assert [r.answer for r in slack.received] == ["http 429", "ok"]
    assert len(slack.delivered) == 1


def test_a_hanging_slack_times_out_and_delivers_on_the_next_run(make_project, slack, monkeypatch):
    monkeypatch.setattr(outbox, "DELIVERY_TIMEOUT", 0.5)
    project = leads_project(make_project, slack)
    slack.script(hang(seconds=3))

    first = run_day(project, 5)
    assert [n.status for n in first.notifications] == ["retry"]
    assert "no answer within 0.5 s" in first.notifications[0].error
    assert slack.delivered == []

    run_day(project, 6)
    assert len(slack.delivered) == 1
    assert list(episodes(project).notify_status) == ["sent", "sent"]


def test_a_refused_token_fails_once_and_is_not_retried(make_project, slack, capsys):
    project = leads_project(make_project, slack, token="xoxb-revoked")

    first = run_day(project, 5)
    [note] = first.notifications
    assert note.status == "failed" and "invalid_auth" in note.error
    assert "xoxb-revoked" not in note.error
    assert list(episodes(project).notify_status) == ["failed", "failed"]
    cli.print_notifications(first.notifications)
    assert capsys.readouterr().err.count("could not be delivered") == 1

    second = run_day(project, 6)
    assert second.notifications == []
    assert len(slack.received) == 1  # not tried again


def test_a_full_outage_over_two_runs_delivers_everything_exactly_once(make_project, slack):
    story = [OK] * 5 + [WARN, FAIL, OK, OK]
    project = leads_project(make_project, slack, story=story)

    slack.script(server_error(503))
    run_day(project, 5)  # opens (warn)
    slack.script(server_error(503))
    run_day(project, 6)  # escalates (fail)
    assert slack.delivered == []
    assert len(slack.received) == 2  # one attempt per run: Slack is down, the rest waits

    third = run_day(project, 7)  # recovered, and Slack is back
    alert, *replies = slack.delivered
    assert "2 failing" in alert.text and "new" in alert.text  # nobody saw it open: still "new"
    assert len(replies) == 2 and {r.thread_ts for r in replies} == {alert.ts}
    assert [n.status for n in third.notifications] == ["sent", "sent", "sent"]
    rows = episodes(project)
    assert list(rows.state) == ["resolved", "resolved"]
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()

    run_day(project, 8)
    assert len(slack.delivered) == 3


def test_a_slack_that_keeps_failing_is_given_up_after_the_last_attempt(make_project, slack):
    tries = outbox.MAX_DELIVERY_ATTEMPTS
    assert tries == 5  # the documented default
    project = leads_project(make_project, slack, story=[OK] * 5 + [WARN] * (tries + 1))

    for attempt in range(1, tries):  # the reminder due on day 8 joins the undelivered alert, same count
        slack.script(server_error(500))
        [note] = run_day(project, 4 + attempt).notifications
        assert note.status == "retry" and note.error.endswith(f"attempt {attempt} of {tries}, will retry on the next run")
        rows = episodes(project)
        assert list(rows.notify_status) == ["pending"] * 2 and list(rows.notify_attempts) == [attempt] * 2

    slack.script(server_error(500))
    [note] = run_day(project, 4 + tries).notifications  # the last attempt fails too: give up
    assert note.status == "failed" and set(note.alert_ids) == set(episodes(project).alert_id)
    assert "HTTP 500" in note.error and note.error.endswith(f"gave up after {tries} attempts")
    rows = episodes(project)
    assert list(rows.notify_status) == ["failed"] * 2 and list(rows.notify_attempts) == [tries] * 2
    assert [outbox.Pending.from_json(p) for p in rows.payload] == [outbox.Pending(error=note.error)] * 2

    assert run_day(project, 5 + tries).notifications == []  # Slack is back; nothing left to send
    assert len(slack.received) == tries and slack.delivered == []


def test_an_unreachable_slack_is_given_up_and_the_run_says_so(make_project, slack, monkeypatch, capsys):
    monkeypatch.setattr(outbox, "MAX_DELIVERY_ATTEMPTS", 3)
    closed = slack.base_url
    slack.stop()  # nothing listens on its port any more: connection refused
    project = leads_project(make_project, slack, story=[OK] * 5 + [WARN] * 4, base_url=closed)

    def run(day: int) -> str:
        cli.main(["run", "--project", str(project.root), "--at", (START + (day + 1) * DAY).isoformat()])
        return capsys.readouterr().err

    def delivery(err: str) -> str:
        """The run's line about the alert's delivery (the summary table follows it)."""
        return next(line.strip() for line in err.splitlines() if line.startswith("alert for leads"))

    for attempt, day in ((1, 5), (2, 6)):
        err = run(day)
        assert "alert for leads not delivered yet: could not reach Slack (Connection refused)" in err
        assert delivery(err).endswith(f"attempt {attempt} of 3, will retry on the next run")
    assert list(episodes(project).notify_attempts) == [2, 2]
    last = run(7)
    assert "alert for leads could not be delivered: could not reach Slack" in last
    assert delivery(last).endswith("gave up after 3 attempts") and "will retry" not in last
    rows = episodes(project)
    assert list(rows.notify_status) == ["failed"] * 2 and list(rows.notify_attempts) == [3, 3]
    # Given up for good; but the reminder due once the cooldown has passed is news of its own.
    assert delivery(run(8)).endswith("attempt 1 of 3, will retry on the next run")


def test_a_rate_limit_does_not_count_towards_giving_up(make_project, slack, monkeypatch):
    monkeypatch.setattr(outbox, "MAX_DELIVERY_ATTEMPTS", 2)
    project = leads_project(make_project, slack, story=[OK] * 5 + [WARN] * 3)

    slack.script(server_error(500))
    assert [n.status for n in run_day(project, 5).notifications] == ["retry"]  # attempt 1 of 2
    slack.script(*[rate_limited(retry_after=0)] * 3)  # still limited after slack-sdk's 2 retries
    [note] = run_day(project, 6).notifications
    assert note.status == "retry" and "rate-limited" in note.error and "attempt" not in note.error
    assert list(episodes(project).notify_status) == ["pending", "pending"]

    [note] = run_day(project, 7).notifications
    assert note.status == "sent" and len(slack.delivered) == 1
    rows = episodes(project)
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()  # error cleared


def test_a_resolution_after_a_given_up_alert_has_its_own_attempts(make_project, slack, monkeypatch):
    monkeypatch.setattr(outbox, "MAX_DELIVERY_ATTEMPTS", 1)
    project = leads_project(make_project, slack, story=[OK] * 5 + [WARN, OK])

    slack.script(server_error(503))
    [note] = run_day(project, 5).notifications
    assert note.status == "failed" and "gave up after 1 attempts" in note.error

    resolved = run_day(project, 6)  # the drift is over and Slack is back

    assert [n.status for n in resolved.notifications] == ["sent", "sent"]
    replies = slack.delivered
    assert len(replies) == 2 and all(r.thread_ts is None for r in replies)  # no alert to thread under
    rows = episodes(project)
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()


def test_a_resolution_without_a_delivered_alert_is_a_normal_message(make_project, slack):
    project = leads_project(make_project, slack, story=[OK] * 5 + [WARN, OK])
    run_day(project, 5, notify=False)  # opens, nothing sent

    run_day(project, 6)

    replies = slack.delivered
    assert len(replies) == 2 and all(r.thread_ts is None for r in replies)
    assert all(r.text.startswith("Resolved: leads") for r in replies)


# -- modes --------------------------------------------------------------------------------------


def test_no_notify_stores_episodes_and_sends_nothing(make_project, slack):
    project = leads_project(make_project, slack)

    summary = run_day(project, 5, notify=False)

    assert summary.notifications == [] and slack.received == []
    rows = episodes(project)
    assert list(rows.state) == ["open", "open"]
    assert list(rows.notify_status) == ["suppressed", "suppressed"] and rows.payload.isna().all()


def test_dry_run_prints_and_keeps_the_messages_for_the_next_run(make_project, slack, capsys):
    project = leads_project(make_project, slack)

    code = cli.main(["run", "--project", str(project.root), "--at", (START + 6 * DAY).isoformat(), "--dry-run"])

    assert code == 1  # warn
    out = capsys.readouterr().out
    assert "would send:\nto #growth-ml" in out and "[warn] leads: 2 warning" in out
    assert slack.received == []
    assert list(episodes(project).notify_status) == ["pending", "pending"]

    summary = run_day(project, 6)
    assert [n.status for n in summary.notifications] == ["sent"]
    assert len(slack.delivered) == 1


def test_without_slack_alerts_are_returned_for_printing(make_project):
    project = leads_project(make_project)  # no notify: section

    summary = run_day(project, 5)

    [note] = summary.notifications
    assert note.status == "suppressed"
    assert "[warn] leads: 2 warning" in note.text and f"{REPORT}#leads-drift_psi" in note.text
    assert list(episodes(project).notify_status) == ["suppressed", "suppressed"]


def test_a_webhook_cannot_thread_so_resolutions_stand_alone(make_project, slack):
    project = leads_project(make_project, story=[OK] * 5 + [WARN, OK])
    project.root.joinpath("driftline_project.yml").write_text(
        "name: p\nconnection: duckdb://warehouse.duckdb\n"
        f"notify:\n  slack:\n    webhook_url: {slack.webhook_url}\n",
        encoding="utf-8",
    )

    run_day(project, 5)
    run_day(project, 6)

    alert, *replies = slack.delivered
    assert alert.endpoint == "webhook" and len(replies) == 2
    assert all(r.text.startswith("Resolved: leads") for r in replies)
    assert list(episodes(project).slack_ts.isna()) == [True, True]


# -- the demo -----------------------------------------------------------------------------------


def test_a_demo_backfill_opens_episodes_on_the_incident_day(tmp_path):
    demo = pytest.importorskip("driftline.demo")
    from driftline.demo_data import INCIDENT_AT, build_demo_warehouse

    directory = tmp_path / "demo"
    demo.prepare_project(directory)
    build_demo_warehouse(directory / "warehouse.duckdb", rows=30_000)

    summary = api.backfill(INCIDENT_AT - 3 * DAY, INCIDENT_AT + 2 * DAY, project=directory, monitors=["lead_scoring"],
                           at=INCIDENT_AT + 30 * DAY, notify=True)

    assert summary.notifications and all(n.status == "suppressed" for n in summary.notifications)  # no Slack: printed
    con = api.Workspace.open(directory).con
    alerts = con.table("driftline_alerts").to_pandas()
    visits = alerts[(alerts.column_name == "visits_7d") & alerts.segment_key.isna()]
    assert list(visits.opened_at) == [pd.Timestamp(INCIDENT_AT)]  # the incident day's window start
    assert (alerts.opened_at >= pd.Timestamp(INCIDENT_AT)).all()  # nothing before it
    assert "visits_7d" in summary.notifications[0].text


# -- PostgreSQL ---------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres_project(make_project, slack, postgres_url, days):
    """A project whose events and result tables live in a fresh PostgreSQL schema, dropped after;
    yields the project, a connection and the schema."""
    import ibis

    schema = f"driftline_alerts_{uuid.uuid4().hex[:8]}"
    con = ibis.connect(postgres_url)
    try:
        con.create_database(schema)
        con.create_table("events", events(days), database=schema)
        project = make_project(
            monitors={"leads": MONITOR.replace("MIN_SEVERITY", "warn").replace("table: events", f"table: {schema}.events")},
            settings={
                "connection": postgres_url,
                "results": {"schema": schema},
                "notify": {"slack": {"token": slack.token, "base_url": slack.base_url}},
            },
        )
        yield project, con, schema
    finally:
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.disconnect()


def test_episodes_and_delivery_on_postgres(make_project, slack, postgres_url):
    """The same outbox on PostgreSQL: a failed delivery stays pending, then goes exactly once."""
    with postgres_project(make_project, slack, postgres_url, [WARN, OK]) as (project, con, schema):
        slack.script(server_error(502))
        assert [n.status for n in run_day(project, 0).notifications] == ["retry"]
        run_day(project, 1)  # recovers; Slack is back

        alert, *replies = slack.delivered
        assert "2 warning" in alert.text and {r.thread_ts for r in replies} == {alert.ts}
        rows = con.table("driftline_alerts", database=schema).to_pandas()
        assert list(rows.state) == ["resolved", "resolved"]
        # A failed try and a sent alert, then the resolution: three calls about each episode.
        assert list(rows.notify_status) == ["sent", "sent"] and list(rows.notify_attempts) == [3, 3]


def test_a_given_up_alert_on_postgres(make_project, slack, postgres_url, monkeypatch):
    """Failures counted in the payload survive the round trip through PostgreSQL, up to giving up."""
    monkeypatch.setattr(outbox, "MAX_DELIVERY_ATTEMPTS", 2)
    with postgres_project(make_project, slack, postgres_url, [WARN, WARN]) as (project, con, schema):
        slack.script(server_error(500), server_error(500))
        assert [n.status for n in run_day(project, 0).notifications] == ["retry"]
        [note] = run_day(project, 1).notifications
        assert note.status == "failed" and note.error.endswith("gave up after 2 attempts")

        rows = con.table("driftline_alerts", database=schema).to_pandas()
        assert list(rows.notify_status) == ["failed", "failed"] and list(rows.notify_attempts) == [2, 2]
        assert all(outbox.Pending.from_json(p).error == note.error for p in rows.payload)
        assert slack.delivered == []


@pytest.fixture(autouse=True)
def _loopback_without_proxy(no_proxy):
    """Every test here talks to 127.0.0.1 directly, with or without the fake server."""
