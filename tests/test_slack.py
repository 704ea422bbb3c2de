"""Slack alerts: rendering, and delivery through the real slack-sdk client to a local fake Slack.

Nothing is mocked: messages travel over HTTP to tests/slack_server.py, which answers like Slack
(or, when scripted, fails like Slack: 5xx, 429 + Retry-After, hangs, error codes).
"""

from __future__ import annotations

import doctest
import json
import re
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import slack_server
from slack_sdk import WebClient
from slack_server import (
    FakeSlack,
    block_kit_problem,
    drop,
    hang,
    http_error,
    rate_limited,
    server_error,
    slack_error,
)

from driftline.errors import ConfigError
from driftline.notify.messages import (
    Breach,
    MonitorRun,
    SlackMessage,
    render_resolution,
    render_run_message,
    render_text,
)
from driftline.notify import slack as slack_notify
from driftline.notify.slack import DeliveryResult, Lookup, SlackNotifier, SlackSettings

RUNBOOK = "https://wiki.example.com/runbooks/lead-scoring"
REPORT = "https://reports.example.com/growth/report.html"


# --------------------------------------------------------------------------------------------
# Fixtures and builders
# --------------------------------------------------------------------------------------------


# The `slack` fake server fixture and the proxy clean-up live in conftest.py.


def bot(slack: FakeSlack, **overrides) -> SlackNotifier:
    settings = SlackSettings(
        token=slack.token, base_url=slack.base_url, channel="#ml-alerts", timeout=2
    )
    return SlackNotifier(replace(settings, **overrides))


def webhook(slack: FakeSlack, **overrides) -> SlackNotifier:
    settings = SlackSettings(webhook_url=slack.webhook_url, timeout=2)
    return SlackNotifier(replace(settings, **overrides))


def a_run(**overrides) -> MonitorRun:
    run = MonitorRun(
        monitor="lead_scoring",
        description="Lead scoring model v3",
        owner="<!subteam^S0123ABC> @growth-ml",
        runbook=RUNBOOK,
        window_start=datetime(2026, 10, 3, tzinfo=timezone.utc),
        window_end=datetime(2026, 10, 4, tzinfo=timezone.utc),
        report_url=REPORT,
    )
    return replace(run, **overrides)


def a_breach(**overrides) -> Breach:
    breach = Breach(
        check_name="drift_psi",
        check_type="drift",
        metric="psi",
        column_name="company_size",
        segment_key="region",
        segment_value="EU",
        severity="fail",
        value=0.312,
        threshold="0.25",
        reference_value=0.021,
        kind="new",
        opened_at=datetime(2026, 10, 4, 6, 0, tzinfo=timezone.utc),
        anchor="lead_scoring-drift_psi",
    )
    return replace(breach, **overrides)


def a_message(channel: str = "#growth-ml") -> SlackMessage:
    return render_run_message(a_run(), [a_breach()], channel)


def all_text(blocks: list[dict]) -> str:
    """Everything a reader sees in the blocks, for assertions."""
    return json.dumps(blocks, ensure_ascii=False)


# --------------------------------------------------------------------------------------------
# Delivery with a bot token (chat.postMessage)
# --------------------------------------------------------------------------------------------


def test_bot_token_delivers_the_message_and_returns_its_ts(slack):
    result = bot(slack).send(a_message())

    assert result == DeliveryResult("sent", ts=slack.delivered[0].ts, error=None)
    [posted] = slack.received
    assert posted.authorization == f"Bearer {slack.token}"
    assert posted.channel == "#growth-ml"
    assert "lead_scoring" in posted.text and "<!subteam^S0123ABC>" in posted.text
    shown = all_text(posted.blocks)
    assert "<!subteam^S0123ABC> @growth-ml" in shown  # the owner is mentioned
    assert "drift_psi" in shown and "region=EU" in shown and "+0.291 since reference" in shown
    [actions] = [b for b in posted.blocks if b["type"] == "actions"]
    assert actions["elements"][0]["url"] == RUNBOOK
    assert actions["elements"][1]["url"] == f"{REPORT}#lead_scoring-drift_psi"


def test_message_without_channel_falls_back_to_the_default_channel(slack):
    result = bot(slack).send(replace(a_message(), channel=""))

    assert result.status == "sent"
    assert slack.delivered[0].channel == "#ml-alerts"


def test_resolution_is_posted_in_the_thread_of_the_alert(slack):
    notifier = bot(slack)
    opened = notifier.send(a_message())

    resolved = a_breach(kind="resolved", value=0.04)
    resolution = render_resolution(a_run(), resolved, "#growth-ml", opened.ts)
    result = notifier.send(resolution)

    assert result.status == "sent"
    alert, reply = slack.delivered
    assert reply.thread_ts == alert.ts
    assert reply.text.startswith("Resolved: lead_scoring")
    assert "now *0.04*" in all_text(reply.blocks)


def test_server_error_is_retried_on_the_next_run_and_delivered_once(slack):
    slack.script(server_error(500))
    notifier = bot(slack)

    first = notifier.send(a_message())
    assert first.status == "retry" and first.ts is None and not first.rate_limited
    assert "HTTP 500" in first.error
    assert "retry" not in first.error  # whether and when to try again is the outbox's decision
    assert len(slack.received) == 1 and slack.delivered == []  # slack-sdk did not retry by itself

    second = notifier.send(a_message())  # the next run
    assert second.status == "sent"
    assert len(slack.delivered) == 1


def test_rate_limit_is_retried_by_slack_sdk_after_retry_after(slack):
    slack.script(rate_limited(retry_after=1))

    started = time.monotonic()
    result = bot(slack).send(a_message())

    assert result.status == "sent"
    assert time.monotonic() - started >= 1  # Retry-After was honoured
    assert [r.answer for r in slack.received] == ["http 429", "ok"]
    assert len(slack.delivered) == 1


def test_rate_limit_beyond_the_allowed_retries_is_retried_next_run(slack):
    slack.script(rate_limited(1), rate_limited(1))

    result = bot(slack, max_rate_limit_retries=1).send(a_message())

    assert result.status == "retry" and result.rate_limited  # Slack is up: not a failure
    assert "rate-limited" in result.error and "1 retries" in result.error
    assert slack.delivered == []


def test_hanging_slack_is_a_retry_after_the_timeout(slack):
    slack.script(hang(seconds=10))
    notifier = bot(slack, timeout=1)

    started = time.monotonic()
    result = notifier.send(a_message())

    assert time.monotonic() - started < 3
    assert result.status == "retry"
    assert "no answer within 1 s" in result.error
    assert notifier.send(a_message()).status == "sent"
    assert len(slack.received) == 2 and len(slack.delivered) == 1


def test_dropped_connection_is_not_retried_at_once(slack):
    # Slack may have posted the message before the connection dropped: slack-sdk's default
    # handlers would post it again right away; the next run is the one place that retries.
    slack.script(drop())

    result = bot(slack).send(a_message())

    assert result.status == "retry"
    assert [r.answer for r in slack.received] == ["drop"]


def test_unreadable_retry_after_is_a_retry(slack):
    slack.script(http_error(429, '{"ok": false}', (("Retry-After", "soon"),)))

    result = bot(slack).send(a_message())

    assert result.status == "retry"
    assert len(slack.received) == 1


def test_unreachable_slack_is_a_retry(slack):
    base_url = slack.base_url
    slack.stop()

    result = bot(slack, base_url=base_url).send(a_message())

    assert result.status == "retry" and not result.rate_limited
    assert "could not reach Slack" in result.error


def test_invalid_token_fails_with_a_clear_message_without_the_token(slack):
    token = "xoxb-999-wrong-secret"

    result = bot(slack, token=token).send(a_message())

    assert result.status == "failed"
    assert "invalid_auth" in result.error and "notify.slack.token" in result.error
    assert token not in result.error and "wrong-secret" not in result.error
    assert "\n" not in result.error
    assert slack.delivered == []


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("channel_not_found", "#nowhere not found"),
        ("not_in_channel", "invite the bot to #nowhere"),
        ("is_archived", "#nowhere is archived"),
        ("invalid_blocks", "driftline bug"),
        ("something_new", "Slack refused the message for #nowhere (something_new)"),
    ],
)
def test_permanent_slack_errors_fail_and_say_what_to_do(slack, code, advice):
    slack.script(slack_error(code))

    result = bot(slack).send(a_message(channel="#nowhere"))

    assert result.status == "failed"
    assert advice in result.error
    assert slack.token not in result.error


def test_no_channel_at_all_fails_before_calling_slack(slack):
    result = bot(slack, channel=None).send(replace(a_message(), channel=""))

    assert result.status == "failed" and "alerts.channel" in result.error
    assert slack.received == []


def test_missing_token_and_webhook_is_a_configuration_error():
    with pytest.raises(ConfigError, match="token"):
        SlackNotifier(SlackSettings(channel="#ml-alerts"))


def test_settings_never_show_their_secrets():
    url = "https://hooks.slack.com/services/T/B/secret"
    shown = repr(SlackSettings(token="xoxb-secret", webhook_url=url))
    assert "secret" not in shown


# --------------------------------------------------------------------------------------------
# Finding a message again (after a crash), by the id in its metadata
# --------------------------------------------------------------------------------------------


def test_a_message_carries_its_id_in_slack_metadata(slack):
    bot(slack).send(a_message(), message_id="m-1")

    [posted] = slack.delivered
    assert posted.metadata == {"event_type": "driftline_alert", "event_payload": {"message_id": "m-1"}}


def test_a_posted_message_is_found_by_its_id_in_the_channel(slack):
    claimed = datetime.now(timezone.utc)
    bot(slack).send(a_message(), message_id="m-1")
    bot(slack).send(a_message(), message_id="m-2")

    found = bot(slack).find("#growth-ml", "m-1", claimed)  # a new client: the id of #growth-ml is looked up

    assert found == Lookup("found", ts=slack.delivered[0].ts)
    methods = [r.endpoint for r in slack.received[2:]]
    assert methods == ["conversations.list", "conversations.history"]


def test_a_reply_is_found_in_its_thread(slack):
    claimed = datetime.now(timezone.utc)
    notifier = bot(slack)
    opened = notifier.send(a_message(), message_id="m-1")
    resolution = render_resolution(a_run(), a_breach(kind="resolved"), "#growth-ml", opened.ts)
    notifier.send(resolution, message_id="m-2")

    assert notifier.find("#growth-ml", "m-2", claimed, thread_ts=opened.ts) == Lookup("found", ts=slack.delivered[1].ts)
    assert notifier.find("#growth-ml", "m-2", claimed).status == "absent"  # not in the channel's history
    assert slack.received[-2].endpoint == "conversations.replies"
    assert "conversations.list" not in [r.endpoint for r in slack.received]  # the post answered the id


def test_a_message_that_never_arrived_is_absent(slack):
    notifier = bot(slack)
    notifier.send(a_message(), message_id="m-1")

    assert notifier.find("#growth-ml", "m-9", datetime.now(timezone.utc)).status == "absent"


def test_messages_before_the_claim_are_not_read(slack):
    bot(slack).send(a_message(), message_id="m-1")

    later = datetime.now(timezone.utc) + timedelta(seconds=slack_notify.CLOCK_SKEW + 60)
    assert bot(slack).find("#growth-ml", "m-1", later).status == "absent"


def test_the_history_is_read_page_by_page(slack):
    claimed = datetime.now(timezone.utc)
    notifier = bot(slack)
    notifier.send(a_message(), message_id="first")
    for i in range(250):  # newer messages push it to the second page of 200
        notifier.send(replace(a_message(), blocks=[]), message_id=f"m-{i}")

    assert notifier.find("#growth-ml", "first", claimed) == Lookup("found", ts=slack.delivered[0].ts)
    assert [r.endpoint for r in slack.received[251:]] == ["conversations.history"] * 2


def test_slack_shows_metadata_only_when_asked(slack):
    bot(slack).send(a_message(), message_id="m-1")
    channel = slack.delivered[0].channel_id
    history = WebClient(token=slack.token, base_url=slack.base_url).conversations_history

    assert "metadata" not in history(channel=channel)["messages"][0]
    assert history(channel=channel, include_all_metadata=True)["messages"][0]["metadata"]["event_type"] == "driftline_alert"


def test_a_lookup_in_an_unknown_channel_or_without_scope_cannot_know(slack):
    claimed = datetime.now(timezone.utc)
    assert bot(slack).find("#nowhere", "m-1", claimed).status == "unknown"  # never named: no id

    bot(slack).send(a_message(), message_id="m-1")
    slack.script(slack_error("missing_scope"))
    found = bot(slack).find("#growth-ml", "m-1", claimed)
    assert found.status == "unknown" and "missing_scope" in found.error


def test_a_lookup_while_slack_is_down_is_a_retry(slack):
    bot(slack).send(a_message(), message_id="m-1")
    slack.script(server_error(503))

    found = bot(slack).find("#growth-ml", "m-1", datetime.now(timezone.utc))

    assert found.status == "retry" and "HTTP 503" in found.error


def test_a_webhook_cannot_look_messages_up(slack):
    notifier = webhook(slack)

    assert not notifier.can_look_up
    assert notifier.find("#growth-ml", "m-1", datetime.now(timezone.utc)).status == "unknown"


# --------------------------------------------------------------------------------------------
# Delivery through an incoming webhook
# --------------------------------------------------------------------------------------------


def test_webhook_delivers_text_and_blocks(slack):
    result = webhook(slack).send(a_message())

    assert result == DeliveryResult("sent", ts=None, error=None)
    [posted] = slack.delivered
    assert posted.endpoint == "webhook"
    assert posted.authorization is None  # the secret is the URL itself
    assert "lead_scoring" in posted.text and posted.blocks[0]["type"] == "header"


def test_webhook_resolution_is_a_normal_message_quoting_the_alert(slack):
    resolved = a_breach(kind="resolved")
    resolution = render_resolution(a_run(), resolved, "#growth-ml", "1760000001.000001")

    assert webhook(slack).send(resolution).status == "sent"

    [posted] = slack.delivered
    assert posted.thread_ts is None
    assert "> :red_circle: *drift_psi*" in all_text(posted.blocks)


def test_webhook_server_error_is_retried_on_the_next_run(slack):
    slack.script(server_error(503))
    notifier = webhook(slack)

    first = notifier.send(a_message())
    second = notifier.send(a_message())

    assert (first.status, second.status) == ("retry", "sent")
    assert "HTTP 503" in first.error
    assert len(slack.delivered) == 1


def test_webhook_hang_is_a_retry_after_the_timeout(slack):
    slack.script(hang(seconds=10))

    started = time.monotonic()
    result = webhook(slack, timeout=1).send(a_message())

    assert time.monotonic() - started < 3
    assert result.status == "retry"
    assert slack.delivered == []


def test_webhook_rate_limit_is_retried_by_slack_sdk(slack):
    slack.script(rate_limited(retry_after=1))

    result = webhook(slack).send(a_message())

    assert result.status == "sent"
    assert [r.answer for r in slack.received] == ["http 429", "ok"]


def test_webhook_rate_limit_beyond_the_allowed_retries_is_a_rate_limited_retry(slack):
    slack.script(rate_limited(retry_after=0))

    result = webhook(slack, max_rate_limit_retries=0).send(a_message())

    assert result.status == "retry" and result.rate_limited
    assert "rate-limited" in result.error
    assert slack.delivered == []


def test_removed_webhook_fails_without_showing_its_url(slack):
    slack.script(slack_error("no_service", webhook_status=404))

    result = webhook(slack).send(a_message())

    assert result.status == "failed"
    assert "no_service" in result.error and "notify.slack.webhook_url" in result.error
    assert slack.webhook_url not in result.error and "webhooksecret" not in result.error


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def test_breaches_are_listed_worst_first():
    breaches = [
        a_breach(check_name="null_rate", severity="warn", kind="new"),
        a_breach(check_name="roc_auc", severity="fail", kind="reminder",
                 opened_at=datetime(2026, 9, 28, tzinfo=timezone.utc)),
        a_breach(check_name="drift_psi", severity="fail", kind="escalated"),
    ]

    text = render_text(render_run_message(a_run(), breaches, "#growth-ml"))

    lines = [line for line in text.splitlines() if line.startswith(("[fail]", "[warn]"))]
    assert [line.split()[1] for line in lines[1:]] == ["drift_psi", "roc_auc", "null_rate"]
    assert "escalated to fail" in lines[1]
    assert "still failing since 2026-09-28" in lines[2]


def test_long_lists_are_capped_with_a_count_of_the_rest():
    breaches = [a_breach(column_name=f"feature_{i:02d}") for i in range(15)]

    message = render_run_message(a_run(), breaches, "#growth-ml", max_items=10)

    shown = all_text(message.blocks)
    assert shown.count("feature_") == 10
    assert "+5 more" in shown and "+5 more" in message.text
    assert f"<{REPORT}|see the report>" in shown


def test_two_hundred_breaches_stay_within_block_kit_limits_and_are_accepted(slack):
    nasty = "seg & <value> " * 20  # long, and full of characters mrkdwn treats as markup
    long_name = "x" * 150
    breaches = [
        a_breach(check_name=f"check_{i:03d}_{long_name}", segment_value=nasty)
        for i in range(200)
    ]

    run = a_run(description="d" * 5000)
    message = render_run_message(run, breaches, "#growth-ml", max_items=200)

    assert len(message.blocks) <= 50
    for block in message.blocks:
        if block["type"] in ("section", "header"):
            assert len(block["text"]["text"]) <= (3000 if block["type"] == "section" else 150)
    assert block_kit_problem(message.text, message.blocks) is None  # incl. ~12,000 chars in all
    assert "<value>" not in all_text(message.blocks)  # escaped, not markup
    [more] = [b for b in message.blocks if b["type"] == "context"]
    listed = all_text(message.blocks).count(":red_circle: *check_")
    assert 10 < listed < 200 and f"+{200 - listed} more" in more["elements"][0]["text"]
    assert bot(slack).send(message).status == "sent"  # the fake Slack checks the limits too


def test_render_text_reads_like_plain_text():
    breach = a_breach(segment_value="EU & UK")
    text = render_text(render_run_message(a_run(), [breach], "#growth-ml"))

    assert text.splitlines()[0] == "to #growth-ml"
    assert "[fail] lead_scoring: 1 failing" in text
    assert "Window: 2026-10-03 → 2026-10-04 UTC" in text
    assert "[fail] drift_psi · company_size · region=EU & UK — psi 0.312" in text
    assert f"[Open runbook: {RUNBOOK}]" in text
    assert "&amp;" not in text and "*" not in text and "<http" not in text


FAKE = "EU\n*fake* <http://x|click>"  # a segment value trying to start a line, be bold and link


def outside_code_spans(mrkdwn: str) -> str:
    """What Slack formats: the text without its code spans (whose contents it shows as written)."""
    return re.sub(r"`[^`\n]*`", "", mrkdwn)


def test_a_value_from_the_data_cannot_fake_a_line_or_a_link():
    breach = a_breach(segment_value=FAKE, column_name="size`\n_x_")
    message = render_run_message(a_run(report_url=None), [breach], "#growth-ml")

    headline, intro, line = [b["text"] for b in message.blocks if b["type"] == "section"]
    assert headline["type"] == "plain_text"  # Slack formats nothing there: no bold, no link
    assert "\n" not in headline["text"] and "&lt;http://x|click&gt;" in headline["text"]
    line = line["text"]  # the breach
    assert "\n" not in line and len(message.text.splitlines()) == 2  # summary and that breach
    for text in (line, message.text):
        assert "`region=EU\\n*fake* &lt;http://x|click&gt;`" in text  # shown as written, in a code span
        assert "`size'\\n_x_`" in text  # a backtick would have closed the span
        assert "fake" not in outside_code_spans(text) and "_x_" not in outside_code_spans(text)
        assert "<http://x" not in text
    preview = render_text(message).splitlines()
    assert preview[2] == "size`\\n_x_ drifted in EU\\n*fake* <http://x|click> since 4 Oct 06:00"  # the headline, on one line
    assert [p for p in preview[3:] if "fake" in p] == [
        "[fail] drift_psi · size'\\n_x_ · region=EU\\n*fake* <http://x|click> — psi 0.312 (threshold 0.25, +0.291 since reference) · new"
    ]


def test_the_headline_comes_first_and_says_what_since_when_and_how_much():
    """Two drifted columns and a precision drop in one segment; the resolved breach is left out.
    Drift (failing overall) comes before precision (failing in a segment only)."""
    since = datetime(2026, 9, 30, tzinfo=timezone.utc)
    breaches = [
        a_breach(check_name="precision", check_type="performance", metric="precision", column_name=None,
                 segment_value="latam", value=0.3288, reference_value=0.6403, threshold="{drop: 0.2}", opened_at=since),
        a_breach(column_name="industry", segment_key=None, segment_value=None, value=0.52, opened_at=since),
        a_breach(column_name="visits_7d", segment_key=None, segment_value=None, value=0.44, opened_at=since),
        a_breach(column_name="country", segment_key=None, segment_value=None, kind="resolved"),
    ]  # fmt: skip
    message = render_run_message(a_run(window_end=datetime(2026, 10, 29, tzinfo=timezone.utc)), breaches, "#ml")

    assert [b["type"] for b in message.blocks[:3]] == ["header", "section", "section"]
    assert message.blocks[1]["text"] == {
        "type": "plain_text", "emoji": False,
        "text": "2 features drifted since 30 Sep; precision in latam fell from 0.64 to 0.33",
    }  # fmt: skip


def test_a_resolution_shows_data_values_as_code_spans_too():
    message = render_resolution(a_run(), a_breach(segment_value=FAKE), "#growth-ml", "1.2")

    assert "\n" not in message.text
    assert message.text == "Resolved: lead_scoring · drift_psi on `company_size` (`region=EU\\n*fake* &lt;http://x|click&gt;`) — now 0.312"
    quote = message.blocks[0]["text"]["text"].splitlines()[1]
    assert quote.startswith("> ") and "fake" not in outside_code_spans(quote)


def test_a_runbook_that_is_not_a_link_is_shown_as_text():
    message = render_run_message(a_run(runbook="see the on-call page"), [a_breach()], "#growth-ml")

    assert "*Runbook:* see the on-call page" in all_text(message.blocks)
    buttons = [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [button["text"]["text"] for button in buttons] == ["View report"]


def test_fake_slack_servers_examples_run():
    """The suite's fake Slack server is not under src/: its examples are run here."""
    assert doctest.testmod(slack_server).failed == 0


@pytest.fixture(autouse=True)
def _loopback_without_proxy(no_proxy):
    """Every test here talks to 127.0.0.1 directly, with or without the fake server."""
