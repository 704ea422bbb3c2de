"""The Microsoft Teams route: one Adaptive Card per outbox message, through an incoming webhook.

A Teams webhook (the classic connector or a Workflows "post to a channel when a webhook request
is received") takes ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}``. The card names every alert of
the message: a headline, the monitor's description, owner and window, one fact per alert, and
buttons to the runbook and the report. A webhook cannot be asked what it posted, so a run killed
between the POST and the write of its outcome posts the card again: delivery is at least once.
"""

from __future__ import annotations

import json
from typing import Any

from driftline.notify.messages import MonitorRun
from driftline.notify.receivers import TeamsReceiver
from driftline.notify.routing import RoutedAlert, RouteMessage, alert_line, headline, intro, report_link
from driftline.notify.slack import DeliveryResult
from driftline.notify.webhook import post

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.4 is what Teams renders on every client (desktop, web, mobile) today.
CARD_VERSION = "1.4"


class TeamsRoute:
    """Sends the alerts of one message to one named Teams webhook."""

    # Per message: Teams refuses a message over 28 KB; forty facts stay well under it (about
    # 250 bytes each), and a run with more alerts sends several cards.
    max_alerts = 40

    def __init__(self, name: str, receiver: TeamsReceiver):
        self.name, self.receiver = name, receiver

    def render(self, run: MonitorRun, alerts: list[RoutedAlert]) -> RouteMessage:
        title = headline(run, alerts)
        body = {"type": "message", "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card(run, alerts, title)}]}
        text = "\n".join([f"to teams {self.name}", title, *(alert_line(a) for a in alerts)])
        return RouteMessage(f"teams {self.name}", text, json.dumps(body).encode("utf-8"))

    def send(self, message: RouteMessage) -> DeliveryResult:
        headers = {"Content-Type": "application/json", "User-Agent": "driftline"}
        return post(self.receiver.webhook_url, message.content, headers, self.receiver.timeout, message.channel)


def card(run: MonitorRun, alerts: list[RoutedAlert], title: str) -> dict[str, Any]:
    """The Adaptive Card of a message about ``alerts``."""
    worst = "attention" if any(a.breach.severity == "fail" and not a.transition.startswith("resolved") for a in alerts) else "warning"
    facts = [{"title": f"{a.breach.severity.upper()} {a.transition}", "value": _fact(run, a)} for a in alerts]
    content: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [
            {"type": "TextBlock", "text": title, "size": "Large", "weight": "Bolder", "color": worst, "wrap": True},
            {"type": "TextBlock", "text": intro(run), "isSubtle": True, "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    actions = [("Runbook", run.runbook), ("Report", f"{run.report_url}#{alerts[0].breach.anchor}" if run.report_url else None)]
    links = [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in actions if url and url.startswith(("http://", "https://"))]
    if links:
        content["actions"] = links
    return content


def _fact(run: MonitorRun, alert: RoutedAlert) -> str:
    """The alert's line without its leading severity and transition (the fact's title has them);
    linked to its chart when the report's address is known (Adaptive Cards take Markdown links)."""
    line = alert_line(alert).split(" · ", 1)[1]
    link = report_link(run, alert.breach)
    return f"{line} [chart]({link})" if link else line
