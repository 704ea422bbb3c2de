"""The named receivers of ``driftline_project.yml``'s ``notify:`` block (SPEC §2): generic webhooks,
Microsoft Teams incoming webhooks and email over SMTP. Monitors route their alerts to them by
name (``alerts.routes``, see :mod:`driftline.notify.routing`).

Only the settings live here, so that loading a project imports no network code.
"""

from __future__ import annotations

from string import Formatter
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from driftline.spec.models import Strict

# Seconds a receiver has to answer one message before it is left for the next run.
DEFAULT_TIMEOUT = 10.0

# What a webhook body template may name in ``{...}``; ``"{alert}"`` alone as a whole string is
# replaced by the standard alert object (SPEC §5), not by its text.
TEMPLATE_FIELDS = (
    "alert_id", "transition", "idempotency_key", "monitor", "check", "column", "segment_key",
    "segment_value", "severity", "value", "threshold", "opened_at", "window_start", "window_end",
)
WHOLE_ALERT = "{alert}"


class WebhookReceiver(Strict):
    url: str = Field(description="where alerts are POSTed as JSON")
    secret: str | None = Field(
        None, description="signs each body: X-Driftline-Signature: sha256=<HMAC-SHA256 of the raw body>; write it as ${ENV}",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="extra HTTP headers, e.g. Authorization")
    body: dict[str, Any] | None = Field(
        None,
        description='the body\'s shape when the receiver wants its own (GitHub, Airflow): strings may name '
        '{alert_id}, {transition}, {monitor}, {severity}...; the string "{alert}" stands for the whole standard body',
    )
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="seconds to wait for the answer")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return _http(url)

    @field_validator("body")
    @classmethod
    def _known_fields(cls, body: dict[str, Any] | None) -> dict[str, Any] | None:
        for text in _strings(body):
            if text == WHOLE_ALERT:
                continue
            try:
                unknown = [name for _, name, _, _ in Formatter().parse(text) if name is not None and name not in TEMPLATE_FIELDS]
            except ValueError as error:  # a lone { or }
                raise ValueError(f"body template {text!r}: {error}; write a literal brace as {{{{ or }}}}") from None
            if unknown:
                from driftline.spec.errors import did_you_mean

                hint = did_you_mean(unknown[0], TEMPLATE_FIELDS)
                raise ValueError(f"body template {text!r} names {{{unknown[0]}}}{hint}; it may name {', '.join(TEMPLATE_FIELDS)}, or be \"{{alert}}\"")
        return body


class TeamsReceiver(Strict):
    webhook_url: str = Field(description="the Teams incoming webhook (or Workflows) URL; a secret: write it as ${ENV}")
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="seconds to wait for the answer")

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return _http(url)


class EmailReceiver(Strict):
    smtp: str = Field(description="smtp://host:port (smtps://host:port for TLS from the first byte)")
    from_: str = Field(alias="from", description="the sender address")
    to: list[str] = Field(min_length=1, description="the recipients")
    starttls: bool = Field(False, description="upgrade an smtp:// connection with STARTTLS before logging in")
    user: str | None = Field(None, description="SMTP login, with password; write both as ${ENV}")
    password: str | None = Field(None, description="SMTP password")
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="seconds to wait for the server")

    @field_validator("smtp")
    @classmethod
    def _smtp_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"expected smtp://host:port or smtps://host:port, got {url!r}")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"the port of {url!r} is not a number") from None
        return url


def _http(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")  # not shown: the URL itself may be a secret
    return url


def _strings(value: Any):
    """Every string inside a body template, keys left out."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
