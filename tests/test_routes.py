"""Alert routes beyond Slack, end to end: a small DuckDB project, real runs, and real deliveries
to local receivers (tests/route_receivers.py): a webhook receiver that checks every signature
and keeps the idempotency keys it took, a Teams endpoint that checks the Adaptive Card, and an
SMTP server (aiosmtpd).

The story (tests/alert_story.py): days 0-4 ok, 5-8 warn, 9-10 fail, 11-12 ok, so the monitor's
two series (overall, region=eu) each open one episode on day 5, are recalled on day 8 (cooldown
3d), escalate on day 9 and resolve on day 11.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import signal
import subprocess
import sys
import uuid
from datetime import datetime

import pandas as pd
import pytest
from alert_story import DAY, FAIL, OK, START, WARN, events, story_monitor
from route_receivers import HookReceiver, MailReceiver, hang, hold, lost_answer, self_signed_tls, status

from driftline import api, cli

SECRET = "s3cret-for-tests"
STORY = [OK] * 5 + [WARN] * 4 + [FAIL] * 2 + [OK] * 2
REPORT = "https://reports.example.com/report.html"
ROUTES = """      cooldown: 3d
      routes:
        - webhook: retrain
          min_severity: fail
          when: opened
        - webhook: audit
        - teams: ml-oncall
        - email: oncall
"""


@pytest.fixture
def hooks(no_proxy):
    with HookReceiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def mail():
    with MailReceiver() as receiver:
        yield receiver


def routed_project(make_project, hooks, mail, monkeypatch, routes=ROUTES, table="events", **settings):
    """The story's project (its events in ``table``), its receivers at the local servers, and
    further project ``settings``; the secret comes from ${ENV}."""
    monkeypatch.setenv("RETRAIN_SECRET", SECRET)
    notify = {
        "webhooks": {
            "retrain": {"url": hooks.url("webhook", "retrain"), "secret": "${RETRAIN_SECRET}", "timeout": 2},
            "audit": {"url": hooks.url("webhook", "audit"), "secret": "${RETRAIN_SECRET}", "timeout": 2},
        },
        "teams": {"ml-oncall": {"webhook_url": hooks.url("teams", "ml-oncall"), "timeout": 2}},
        "email": {"oncall": {"smtp": mail.url, "from": "driftline@example.com", "to": ["ml-oncall@example.com", "lead@example.com"], "timeout": 2}},
    }
    monitor = story_monitor(routes, header="    owner: growth-ml\n").replace("table: events", f"table: {table}")
    tables = {"events": events(STORY)} if table == "events" else {}
    return make_project(monitors={"leads": monitor}, tables=tables, settings={"report_url": REPORT, "notify": notify, **settings})


def run_day(project, day: int) -> api.RunSummary:
    """A scheduled run just after day ``day`` ended."""
    return api.run(project.root, at=START + (day + 1) * DAY)


def alert_ids(project) -> list[str]:
    return list(project.query("select alert_id from driftline_alerts order by segment_key nulls first").alert_id)


def psi(current_a: float, reference_a: float = OK) -> float:
    """PSI of the two categories "a" and "b", by hand (SPEC §6: sum of (c - r) ln(c / r))."""
    pairs = [(current_a, reference_a), (1 - current_a, 1 - reference_a)]
    return sum((c - r) * math.log(c / r) for c, r in pairs)


def day(n: int) -> str:
    return (START + n * DAY).isoformat()


# -- the lifecycle, route by route ---------------------------------------------------------------


def test_each_route_hears_what_it_asked_for_signed_and_once(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch)
    for n in range(5, 13):
        summary = run_day(project, n)
        assert all(note.status == "sent" for note in summary.notifications), summary.notifications
    overall, eu = alert_ids(project)

    # The action: one request per episode, on the day it first reached fail (the escalation).
    assert hooks.keys["retrain"] == [f"{overall}:opened", f"{eu}:opened"]
    retrain = [t for t in hooks.taken if t.path == "/webhook/retrain"]
    for taken in retrain:
        body = taken.body
        assert body["transition"] == "opened" and body["episode"]["severity"] == "fail"
        assert body["window"] == {"start": day(9), "end": day(10)}
        assert body["episode"]["opened_at"] == day(5)  # the episode began as a warning
        assert body["episode"]["value"] == pytest.approx(psi(FAIL), rel=1e-3)
        assert body["episode"]["report_url"] == f"{REPORT}#leads-drift_psi"
        assert body["monitor"]["owner"] == "growth-ml"
        assert taken.headers["Idempotency-Key"] == body["idempotency_key"]
        mac = hmac.new(SECRET.encode(), taken.raw, hashlib.sha256).hexdigest()  # the receiver checked it too
        assert taken.headers["X-Driftline-Signature"] == f"sha256={mac}"

    # Every transition, in order, per episode.
    expected = ["opened", "reminder-2026-03-09", "escalated", "resolved"]
    assert hooks.keys["audit"] == [f"{a}:{t}" for t in expected for a in (overall, eu)]
    assert hooks.bad_signatures == [] and hooks.duplicates == []

    # Teams: one card per run that had news, naming both series.
    cards = [t.body["attachments"][0]["content"] for t in hooks.taken if t.path == "/teams/ml-oncall"]
    assert hooks.card_problems == [] and len(cards) == 4
    assert [len(c["body"][2]["facts"]) for c in cards] == [2, 2, 2, 2]
    assert cards[0]["body"][0]["text"] == "leads: 2 opened (warn)"
    assert cards[2]["body"][0]["text"] == "leads: 2 escalated (fail)"

    # Email: one per run with news, to every recipient, naming every alert.
    assert len(mail.messages) == 4
    assert mail.envelopes[0] == ("driftline@example.com", ["ml-oncall@example.com", "lead@example.com"])
    first = mail.messages[0]
    assert first["Subject"] == "[driftline] leads: 2 opened (warn)"
    text = first.get_content()
    assert "drift_psi on c: psi" in text and "drift_psi on c (region=eu): psi" in text
    assert f"{psi(WARN):.4g}" in text  # the warn day's psi, by hand

    rows = project.query("select notify_status, payload from driftline_alerts")
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()


def test_an_action_fires_once_per_episode_across_runs_and_reruns(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          min_severity: fail
          when: opened
""")
    for n in (5, 9, 10, 9, 10, 11, 12):  # the fail days run twice; the episode stays one
        run_day(project, n)
    overall, eu = alert_ids(project)
    assert hooks.keys["retrain"] == [f"{overall}:opened", f"{eu}:opened"]
    assert hooks.requests == 2 and hooks.duplicates == []


# -- outages, lost answers, refusals -------------------------------------------------------------


def test_receivers_down_then_up_get_each_change_exactly_once(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch)
    hooks.stop()
    mail.stop()
    down = run_day(project, 5)
    assert {note.status for note in down.notifications} == {"retry"}
    assert any("could not reach email oncall" in note.error for note in down.notifications)
    assert list(project.query("select notify_status from driftline_alerts").notify_status) == ["pending", "pending"]

    hooks.start()
    mail.start()
    up = run_day(project, 6)  # a quiet day: only what waited goes out
    assert {note.status for note in up.notifications} == {"sent"}
    overall, eu = alert_ids(project)
    assert hooks.keys["audit"] == [f"{overall}:opened", f"{eu}:opened"]
    assert len(mail.messages) == 1 and "region=eu" in mail.messages[0].get_content()
    assert hooks.duplicates == [] and "retrain" not in hooks.keys

    run_day(project, 7)
    assert len(mail.messages) == 1 and len(hooks.keys["audit"]) == 2  # nothing sent twice
    rows = project.query("select notify_status, payload, notify_attempts from driftline_alerts")
    assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()


def test_a_lost_answer_is_sent_again_and_the_receiver_takes_it_once(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          when: opened
""")
    hooks.script(lost_answer())  # the receiver takes the first change, its answer never arrives
    first = run_day(project, 5)
    assert [note.status for note in first.notifications] == ["retry"]
    overall, eu = alert_ids(project)
    assert hooks.keys["retrain"] == [f"{overall}:opened"]
    sent_first = hooks.taken[0].raw

    second = run_day(project, 6)
    assert [note.status for note in second.notifications] == ["sent", "sent"]
    assert hooks.duplicates == [f"{overall}:opened"]  # the same change again, recognised by its key
    assert hooks.keys["retrain"] == [f"{overall}:opened", f"{eu}:opened"]
    assert hooks.taken[0].raw == sent_first and hooks.bad_signatures == []


# How long a killed run may take to reach the receiver (a busy machine): a bound, not a timing.
PATIENCE = 120.0


def test_a_run_killed_before_the_answer_arrives_is_taken_once_by_its_key(make_project, hooks, mail, monkeypatch, tmp_path):
    """SIGKILL while the receiver holds its answer: the change was taken, driftline never wrote
    the outcome; the next run sends it again under the same key and the receiver keeps one."""
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          when: opened
""")
    hooks.script(hold())
    run = "import sys; from driftline import api; api.run(sys.argv[1], at=sys.argv[2])"
    process = subprocess.Popen([sys.executable, "-c", run, str(project.root), (START + 6 * DAY).isoformat()])
    try:
        assert hooks.holding.wait(PATIENCE), "the run never reached the receiver"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=PATIENCE) == -signal.SIGKILL
    finally:
        hooks.release.set()
        if process.poll() is None:
            process.kill()
    overall, eu = alert_ids(project)
    assert hooks.keys["retrain"] == [f"{overall}:opened"]  # taken, but the run died before the answer
    assert list(project.query("select notify_status from driftline_alerts").notify_status) == ["pending", "pending"]

    run_day(project, 5)
    assert hooks.duplicates == [f"{overall}:opened"]  # sent again, recognised
    assert hooks.keys["retrain"] == [f"{overall}:opened", f"{eu}:opened"]
    assert list(project.query("select notify_status from driftline_alerts").notify_status) == ["sent", "sent"]


def test_a_receiver_slower_than_its_timeout_gets_the_change_on_the_next_run(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          when: opened
""")
    hooks.script(hang(3))  # the receiver's timeout is 2 s
    [note] = run_day(project, 5).notifications
    assert note.status == "retry" and "could not reach webhook retrain" in note.error and "timed out" in note.error
    run_day(project, 6)
    overall, eu = alert_ids(project)
    assert hooks.keys["retrain"] == [f"{overall}:opened", f"{eu}:opened"] and hooks.duplicates == []


def test_a_server_error_is_retried_and_a_refusal_is_not(make_project, hooks, mail, monkeypatch, capsys):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          when: opened
""")
    hooks.script(status(503))
    assert [note.status for note in run_day(project, 5).notifications] == ["retry"]
    hooks.script(status(404), status(404))
    notes = run_day(project, 6).notifications
    assert [note.status for note in notes] == ["failed", "failed"]
    assert "webhook retrain refused the alert: HTTP 404" in notes[0].error
    assert hooks.url("webhook", "retrain") not in notes[0].error  # a URL may carry a token
    run_day(project, 7)
    assert hooks.requests == 3 and "retrain" not in hooks.keys
    rows = project.query("select notify_status from driftline_alerts")
    assert list(rows.notify_status) == ["failed", "failed"]


# -- configuration ------------------------------------------------------------------------------


def test_an_unknown_receiver_is_a_located_error_with_a_close_match(make_project, hooks, mail, monkeypatch, capsys):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - email: oncall
        - webhook: retrian
""")
    assert cli.main(["validate", "--project", str(project.root)]) == 3
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "retrian" in line]
    assert "monitors/leads.yml:" in line and "(did you mean 'retrain'?)" in line


def test_channel_and_routes_together_are_refused(make_project, hooks, mail, monkeypatch, capsys):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      channel: "#x"
      routes:
        - webhook: retrain
""")
    assert cli.main(["validate", "--project", str(project.root)]) == 3
    assert "name the channel in routes" in capsys.readouterr().err


def test_a_body_template_shapes_the_request(make_project, hooks, mail, monkeypatch):
    """GitHub's repository_dispatch: the standard body as client_payload, an event_type of ours."""
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - webhook: retrain
          when: opened
""")
    settings = (project.root / "driftline_project.yml").read_text()
    template = "      body: {event_type: 'retrain-{monitor}-{severity}', client_payload: '{alert}'}\n"
    settings = settings.replace("      timeout: 2\n", "      timeout: 2\n" + template, 1)
    (project.root / "driftline_project.yml").write_text(settings)
    run_day(project, 5)
    body = hooks.taken[0].body
    assert body["event_type"] == "retrain-leads-warn"
    assert body["client_payload"]["transition"] == "opened" and len(body["client_payload"]) <= 10
    assert datetime.fromisoformat(body["client_payload"]["window"]["start"]) == START + 5 * DAY
    assert json.loads(hooks.taken[0].raw) == body


# -- Slack as one route among others ------------------------------------------------------------


def test_a_slack_route_keeps_slack_and_hears_from_its_own_severity(make_project, hooks, mail, slack, monkeypatch):
    """`- slack: "#growth-ml"` posts as `alerts.channel` did; with min_severity fail, the warn
    days are not posted and the escalation is announced as the episode's opening."""
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      cooldown: 3d
      routes:
        - slack: "#growth-ml"
          min_severity: fail
        - webhook: audit
""")
    settings = (project.root / "driftline_project.yml").read_text()
    slack_settings = f"  slack: {{token: {slack.token}, channel: '#ml-alerts', base_url: '{slack.base_url}'}}\n"
    (project.root / "driftline_project.yml").write_text(settings.replace("notify:\n", "notify:\n" + slack_settings, 1))
    for n in range(5, 9):
        run_day(project, n)
    assert slack.delivered == [] and len(hooks.keys["audit"]) == 4  # opened, then a reminder
    run_day(project, 9)  # warn → fail
    [message] = slack.delivered
    assert message.channel == "#growth-ml" and "escalated" not in message.text and "2 failing" in message.text
    run_day(project, 11)  # resolved: in the thread of that message
    assert [m.thread_ts for m in slack.delivered[1:]] == [message.ts, message.ts]


def test_email_upgrades_with_starttls_before_it_logs_in(make_project, hooks, no_proxy, monkeypatch, tmp_path):
    pytest.importorskip("cryptography", reason="makes the test server's certificate")
    tls, certificate = self_signed_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # the client trusts the test certificate, and only it
    monkeypatch.setenv("SMTP_PASSWORD", "right")
    with MailReceiver(login=("driftline", "right"), tls=tls) as guarded:
        project = routed_project(make_project, hooks, guarded, monkeypatch, routes="""      routes:
        - email: oncall
""")
        settings = (project.root / "driftline_project.yml").read_text()
        secure = "      starttls: true\n      user: driftline\n      password: ${SMTP_PASSWORD}\n"
        (project.root / "driftline_project.yml").write_text(settings.replace("      from: driftline@example.com\n", "      from: driftline@example.com\n" + secure, 1))
        assert [note.status for note in run_day(project, 5).notifications] == ["sent"]
        assert len(guarded.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # a local test server
def test_email_logs_in_with_credentials_from_the_environment(make_project, hooks, no_proxy, monkeypatch):
    monkeypatch.setenv("SMTP_USER", "driftline")
    monkeypatch.setenv("SMTP_PASSWORD", "right")
    with MailReceiver(login=("driftline", "right")) as guarded:
        project = routed_project(make_project, hooks, guarded, monkeypatch, routes="""      routes:
        - email: oncall
""")
        settings = (project.root / "driftline_project.yml").read_text()
        login = "      user: ${SMTP_USER}\n      password: ${SMTP_PASSWORD}\n"
        (project.root / "driftline_project.yml").write_text(settings.replace("      from: driftline@example.com\n", "      from: driftline@example.com\n" + login, 1))
        assert [note.status for note in run_day(project, 5).notifications] == ["sent"]
        assert len(guarded.messages) == 1

        monkeypatch.setenv("SMTP_PASSWORD", "wrong")
        notes = run_day(project, 9).notifications  # the escalation
        assert [note.status for note in notes] == ["failed"] and "login refused" in notes[0].error, notes[0].error
        assert "wrong" not in notes[0].error and len(guarded.messages) == 1


def test_a_dry_run_shows_route_messages_and_leaves_them_for_the_next_run(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch)
    preview = api.run(project.root, at=START + 6 * DAY, dry_run=True)
    shown = [note.text.splitlines()[0] for note in preview.notifications]
    assert shown == ["to webhook audit", "to webhook audit", "to teams ml-oncall", "to email oncall"]
    assert {note.status for note in preview.notifications} == {"preview"}
    assert hooks.requests == 0 and mail.messages == []
    run_day(project, 5)
    assert len(hooks.keys["audit"]) == 2 and len(mail.messages) == 1 and hooks.duplicates == []


def test_one_email_and_one_card_name_every_alert_of_the_run(make_project, hooks, mail, monkeypatch):
    """Eight regions drift together: nine alerts (overall and each region), all of them in the
    one email and the one card of the run, none left out as "+N more"."""
    regions = [f"r{i}" for i in range(8)]
    frames = [events(STORY).assign(region=region) for region in regions]
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - email: oncall
        - teams: ml-oncall
""")
    project.load("events", pd.concat(frames, ignore_index=True))
    run_day(project, 5)
    [email] = mail.messages
    text = email.get_content()
    assert email["Subject"] == "[driftline] leads: 9 opened (warn)"
    assert all(f"(region={region})" in text for region in regions) and "drift_psi on c: psi" in text
    assert "more" not in text
    [card] = [t.body["attachments"][0]["content"] for t in hooks.taken]
    assert len(card["body"][2]["facts"]) == 9


def test_more_alerts_than_a_card_holds_make_several_cards(make_project, hooks, mail, monkeypatch):
    from driftline.notify.teams import TeamsRoute

    monkeypatch.setattr(TeamsRoute, "max_alerts", 4)  # 40 in use; 4 keeps the project small
    regions = [f"r{i}" for i in range(8)]
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      routes:
        - teams: ml-oncall
""")
    project.load("events", pd.concat([events(STORY).assign(region=region) for region in regions], ignore_index=True))
    run_day(project, 5)
    cards = [t.body["attachments"][0]["content"] for t in hooks.taken]
    assert [len(card["body"][2]["facts"]) for card in cards] == [4, 4, 1] and hooks.card_problems == []
    named = " ".join(fact["value"] for card in cards for fact in card["body"][2]["facts"])
    assert all(f"(region={region})" in named for region in regions)


def test_a_receiver_with_a_mistake_is_a_located_error(make_project, hooks, mail, monkeypatch, capsys):
    project = routed_project(make_project, hooks, mail, monkeypatch)
    settings = (project.root / "driftline_project.yml").read_text()
    settings = settings.replace("      timeout: 2\n", "      timeout: 2\n      body: {event_type: 'retrain-{severty}'}\n", 1)
    settings = settings.replace(mail.url, "smtp//127.0.0.1")
    (project.root / "driftline_project.yml").write_text(settings)
    assert cli.main(["validate", "--project", str(project.root)]) == 3
    err = capsys.readouterr().err
    [body] = [line for line in err.splitlines() if "severty" in line]
    assert "driftline_project.yml:" in body and "(did you mean 'severity'?)" in body
    [smtp] = [line for line in err.splitlines() if "smtp//" in line]
    assert "driftline_project.yml:" in smtp and "expected smtp://host:port" in smtp


@pytest.mark.postgres
def test_routes_on_postgres_wait_out_an_outage_and_deliver_once(make_project, hooks, mail, postgres_url, monkeypatch):
    """The same outbox on PostgreSQL: the route notices wait in payload through an outage."""
    import ibis

    schema = f"driftline_routes_{uuid.uuid4().hex[:8]}"
    con = ibis.connect(postgres_url)
    try:
        con.create_database(schema)
        con.create_table("events", events(STORY), database=schema)
        routes = """      cooldown: 3d
      routes:
        - webhook: audit
        - email: oncall
"""
        project = routed_project(
            make_project, hooks, mail, monkeypatch, routes, table=f"{schema}.events",
            connection=postgres_url, results={"schema": schema},
        )
        hooks.stop()
        mail.stop()
        assert {note.status for note in run_day(project, 5).notifications} == {"retry"}
        hooks.start()
        mail.start()
        run_day(project, 6)
        rows = con.table("driftline_alerts", database=schema).to_pandas().sort_values("segment_key", na_position="first")
        assert hooks.keys["audit"] == [f"{a}:opened" for a in rows.alert_id] and len(mail.messages) == 1
        assert list(rows.notify_status) == ["sent", "sent"] and rows.payload.isna().all()
    finally:
        con.raw_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        con.disconnect()


def test_a_route_removed_from_the_monitor_drops_what_waited_for_it(make_project, hooks, mail, monkeypatch):
    project = routed_project(make_project, hooks, mail, monkeypatch, routes="""      cooldown: 3d
      routes:
        - webhook: audit
""")
    hooks.stop()
    run_day(project, 5)
    assert list(project.query("select notify_status from driftline_alerts").notify_status) == ["pending", "pending"]
    hooks.start()
    project.write_monitor("leads", story_monitor("      cooldown: 3d\n      routes:\n        - email: oncall\n"))
    assert run_day(project, 6).notifications == []  # nothing new for email; nothing left for audit
    rows = project.query("select notify_status, payload from driftline_alerts")
    assert list(rows.notify_status) == ["suppressed", "suppressed"] and rows.payload.isna().all()
    assert hooks.requests == 0 and mail.messages == []
