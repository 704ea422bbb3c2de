"""The generic webhook route: one signed JSON POST per alert change (SPEC §5).

Each change of each episode is one request, so that its ``Idempotency-Key: <alert_id>:<transition>``
names exactly what it carries: a receiver that remembers the keys it took gets every change
exactly once, also when driftline sends it again (after a timeout, or a run killed between the
POST and the write of its outcome). With a ``secret``, ``X-Driftline-Signature: sha256=<hex>`` is
the HMAC-SHA256 of the raw body, for the receiver to check that the body is ours and unchanged.

The body is the standard alert object (:func:`alert_body`), or the receiver's own ``body:``
template with the alert's fields filled in, for endpoints that want a shape of their own
(GitHub's ``repository_dispatch``, Airflow's DAG runs). The body holds no wall-clock time: every
try of a change sends the same bytes.

Answers: 2xx is delivered; **409 Conflict** too (the receiver already has this change: Airflow's
answer to a ``dag_run_id`` it knows); 408, 429, 5xx, a timeout or no connection are tried again on
the next run; any other 4xx is a mistake another try will not fix (``failed``, saying why). The
URL is not put in errors: it may carry a token.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import urllib.error
import urllib.request
from typing import Any

from driftline.notify.messages import MonitorRun
from driftline.notify.receivers import WHOLE_ALERT, WebhookReceiver
from driftline.notify.routing import RoutedAlert, RouteMessage, alert_line, headline, report_link
from driftline.notify.slack import DeliveryResult

SIGNATURE_HEADER = "X-Driftline-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
BODY_VERSION = 1
# Answers that say "not now" rather than "never": the change is tried again on the next run.
_TRY_AGAIN = {408, 425, 429}


class WebhookRoute:
    """Sends alert changes to one named webhook receiver."""

    max_alerts = 1  # per message: the idempotency key names one change of one episode

    def __init__(self, name: str, receiver: WebhookReceiver):
        self.name, self.receiver = name, receiver

    def render(self, run: MonitorRun, alerts: list[RoutedAlert]) -> RouteMessage:
        [alert] = alerts
        standard = alert_body(run, alert)
        body = _filled(self.receiver.body, standard, _fields(alert, run)) if self.receiver.body else standard
        raw = json.dumps(body, sort_keys=True).encode("utf-8")
        text = f"to webhook {self.name}\n{headline(run, alerts)}\n{alert_line(alert)}"
        return RouteMessage(f"webhook {self.name}", text, {"body": raw, "headers": self.headers(raw, alert)})

    def headers(self, raw: bytes, alert: RoutedAlert) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "driftline", **self.receiver.headers}
        headers[IDEMPOTENCY_HEADER] = alert.idempotency_key
        if self.receiver.secret:
            headers[SIGNATURE_HEADER] = "sha256=" + signature(self.receiver.secret, raw)
        return headers

    def send(self, message: RouteMessage) -> DeliveryResult:
        content = message.content
        return post(self.receiver.url, content["body"], content["headers"], self.receiver.timeout, message.channel, conflict_is_delivered=True)


def signature(secret: str, raw: bytes) -> str:
    """The hex HMAC-SHA256 of ``raw`` with ``secret``: what ``X-Driftline-Signature`` carries after ``sha256=``."""
    return hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def alert_body(run: MonitorRun, alert: RoutedAlert) -> dict[str, Any]:
    """The standard JSON body of one alert change (SPEC §5). Ten keys at most at the top, so that
    it fits GitHub's ``client_payload`` as it is."""
    b = alert.breach
    return {
        "version": BODY_VERSION,
        "idempotency_key": alert.idempotency_key,
        "alert_id": alert.alert_id,
        "transition": alert.transition,
        "monitor": {"name": run.monitor, "description": run.description, "owner": run.owner, "runbook": run.runbook},
        "episode": {
            "check": b.check_name, "check_type": b.check_type, "metric": b.metric, "column": b.column_name,
            "segment_key": b.segment_key, "segment_value": b.segment_value, "severity": b.severity,
            "value": b.value, "threshold": b.threshold, "reference_value": b.reference_value,
            "opened_at": _iso(b.opened_at), "report_url": report_link(run, b),
        },
        "window": {"start": _iso(alert.window_start), "end": _iso(alert.window_end)},
    }


def post(url: str, raw: bytes, headers: dict[str, str], timeout: float, label: str, conflict_is_delivered: bool = False) -> DeliveryResult:
    """POST ``raw``; the outcome as the outbox acts on it (see the module docstring)."""
    request = urllib.request.Request(url, data=raw, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            return DeliveryResult("sent")
    except urllib.error.HTTPError as answer:
        detail = _snippet(answer)
        if conflict_is_delivered and answer.code == 409:
            return DeliveryResult("sent")
        if answer.code in _TRY_AGAIN or answer.code >= 500:
            return DeliveryResult("retry", error=f"{label} answered HTTP {answer.code}{detail}")
        return DeliveryResult("failed", error=f"{label} refused the alert: HTTP {answer.code}{detail}; check its url, headers and body")
    except (OSError, http.client.HTTPException) as problem:  # refused, reset, DNS, TLS, timeout
        reason = getattr(problem, "reason", None) or problem
        return DeliveryResult("retry", error=f"could not reach {label}: {reason}")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error to fix in the URL: urllib would follow it as a GET, without the body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _snippet(answer: urllib.error.HTTPError) -> str:
    try:
        text = answer.read(300).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f": {' '.join(text.split())[:200]}" if text else ""


def _fields(alert: RoutedAlert, run: MonitorRun) -> dict[str, str]:
    """What a body template may name (``receivers.TEMPLATE_FIELDS``), as text."""
    b = alert.breach
    values = {
        "alert_id": alert.alert_id, "transition": alert.transition, "idempotency_key": alert.idempotency_key,
        "monitor": run.monitor, "check": b.check_name, "column": b.column_name, "segment_key": b.segment_key,
        "segment_value": b.segment_value, "severity": b.severity, "value": b.value, "threshold": b.threshold,
        "opened_at": _iso(b.opened_at), "window_start": _iso(alert.window_start), "window_end": _iso(alert.window_end),
    }
    return {key: "" if value is None else str(value) for key, value in values.items()}


def _filled(template: Any, standard: dict[str, Any], fields: dict[str, str]) -> Any:
    """The template with ``"{alert}"`` replaced by the standard body and other strings formatted."""
    if isinstance(template, str):
        return standard if template == WHOLE_ALERT else template.format_map(fields)
    if isinstance(template, dict):
        return {key: _filled(value, standard, fields) for key, value in template.items()}
    if isinstance(template, list):
        return [_filled(item, standard, fields) for item in template]
    return template


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
