"""The email route: one email per outbox message, over SMTP, naming every alert in it.

``smtp://host:port`` connects in plain text, upgraded with STARTTLS when ``starttls: true``;
``smtps://host:port`` speaks TLS from the first byte. With ``user`` and ``password`` it logs in
(after STARTTLS, never in the clear unless the URL says so). Each email's ``Message-ID`` is derived
from the alert changes it carries, so that a copy sent again after a crash between the SMTP
transaction and the write of its outcome can be recognised by mail clients: SMTP cannot be asked
what it took, delivery is at least once.

Outcomes: accepted (for at least one recipient) is sent; a 4xx answer, a dropped connection, a
timeout or no connection is tried again on the next run; a 5xx answer (an unknown recipient, a
refused login, no STARTTLS) is ``failed``, saying what to fix.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import urlsplit

from driftline.notify.messages import MonitorRun
from driftline.notify.receivers import EmailReceiver
from driftline.notify.routing import RoutedAlert, RouteMessage, alert_line, headline, intro, report_link
from driftline.notify.slack import DeliveryResult

SUBJECT_PREFIX = "[driftline]"


class EmailRoute:
    """Sends the alerts of one message to one named email receiver."""

    max_alerts = None  # per message: one email names every alert waiting for it

    def __init__(self, name: str, receiver: EmailReceiver):
        self.name, self.receiver = name, receiver

    def render(self, run: MonitorRun, alerts: list[RoutedAlert]) -> RouteMessage:
        email = EmailMessage()
        email["Subject"] = f"{SUBJECT_PREFIX} {headline(run, alerts)}"
        email["From"] = self.receiver.from_
        email["To"] = ", ".join(self.receiver.to)
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id(alerts)
        email.set_content(body_text(run, alerts))
        text = "\n".join([f"to email {self.name}", headline(run, alerts), *(alert_line(a) for a in alerts)])
        return RouteMessage(f"email {self.name}", text, email)

    def send(self, message: RouteMessage) -> DeliveryResult:
        label, r = message.channel, self.receiver
        url = urlsplit(r.smtp)
        secure = url.scheme == "smtps"
        connect = smtplib.SMTP_SSL if secure else smtplib.SMTP
        try:
            with connect(url.hostname, url.port or (465 if secure else 25), timeout=r.timeout) as server:
                if r.starttls and not secure:
                    server.starttls(context=ssl.create_default_context())
                if r.user:
                    server.login(r.user, r.password or "")
                server.send_message(message.content)
            return DeliveryResult("sent")
        except smtplib.SMTPRecipientsRefused as refused:
            who = ", ".join(refused.recipients)
            return DeliveryResult("failed", error=f"{label}: the server refused every recipient ({who}); check `to`")
        except smtplib.SMTPAuthenticationError as refused:
            return DeliveryResult("failed", error=f"{label}: login refused ({refused.smtp_code}); check user and password")
        except smtplib.SMTPNotSupportedError:
            return DeliveryResult("failed", error=f"{label}: the server does not offer STARTTLS (or login); check `starttls` and the URL")
        except smtplib.SMTPResponseException as answer:
            said = f"{label} answered {answer.smtp_code} {_text(answer.smtp_error)}"
            if 400 <= answer.smtp_code < 500:
                return DeliveryResult("retry", error=said)
            return DeliveryResult("failed", error=f"{said}; check the receiver's settings")
        except (OSError, smtplib.SMTPException) as problem:  # refused, reset, timeout, disconnected
            return DeliveryResult("retry", error=f"could not reach {label}: {problem}")


def body_text(run: MonitorRun, alerts: list[RoutedAlert]) -> str:
    """The email's text: the headline, the monitor, then every alert, each with its chart's link."""
    lines = [headline(run, alerts), intro(run), ""]
    for alert in alerts:
        lines.append(f"- {alert_line(alert)}")
        link = report_link(run, alert.breach)
        if link:
            lines.append(f"  {link}")
    if run.runbook:
        lines += ["", f"Runbook: {run.runbook}"]
    return "\n".join(lines) + "\n"


def message_id(alerts: list[RoutedAlert]) -> str:
    """The same for every try of the same alert changes."""
    digest = hashlib.sha256("\n".join(a.idempotency_key for a in alerts).encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@driftline>"


def _text(error: bytes | str) -> str:
    text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
    return " ".join(text.split())[:200]
