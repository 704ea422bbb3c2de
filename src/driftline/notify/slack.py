"""Deliver alert messages to Slack through slack-sdk, with outcomes the alert outbox can act on.

Alerts wait in ``driftline_alerts`` (``notify_status = pending``) until they are delivered, after
the run's results are committed. Every call of :meth:`SlackNotifier.send` ends in one of three
outcomes, which the caller writes back to that row:

``sent``
    Slack accepted the message. With a bot token, ``ts`` identifies it, so that the resolution
    can later be posted in its thread.
``retry``
    A transient problem: Slack answered 5xx, did not answer in time, could not be reached, or
    still rate-limited us after the allowed retries (``rate_limited``). Sending again later may
    work; whether and when is the caller's decision (the outbox, ``driftline.outbox``, tries
    again on later runs, a bounded number of times).
``failed``
    A permanent problem that another attempt will not fix (revoked token, unknown channel, bot
    not invited...). ``error`` says in one line what to do about it.

**Finding a message again.** With a bot token every message carries Slack message metadata
(``event_type`` :data:`METADATA_EVENT`, ``event_payload`` ``{"message_id": ...}``), so that the
outbox, after a crash that left it not knowing whether a post reached Slack, can ask
(:meth:`SlackNotifier.find`): ``conversations.history`` of the channel, or ``conversations.replies``
of the thread, from the time the post was claimed, with ``include_all_metadata``. Both need the
channel's id: a name such as ``#ml-alerts`` is resolved with ``conversations.list`` (ids that
chat.postMessage answered are remembered for the rest of the run). Reading needs the scopes
``channels:history`` and ``channels:read`` (``groups:`` for private channels) besides
``chat:write``. An incoming webhook cannot be asked: it posts, and that is all.

Only rate limits are retried here, by slack-sdk's own handler honouring ``Retry-After``: a 429
means Slack did not post the message, so posting again cannot duplicate it. A 5xx, a timeout or
a dropped connection may come *after* Slack posted the message, so those are left to the outbox,
which retries on later runs and counts attempts where everyone can see them. For the same
reason slack-sdk's default connection-error retry handler is replaced, not kept.

The token and the webhook URL are secrets: they never appear in an error, and slack-sdk's own
logging (whose debug lines contain the webhook URL) is silenced.
"""

from __future__ import annotations

import http.client
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from driftline.errors import ConfigError
from driftline.notify.messages import SlackMessage

# slack-sdk logs every failed request at ERROR (we report it once, in DeliveryResult.error) and,
# at DEBUG, the full webhook URL, which is a secret. It gets a logger of its own that stays quiet.
_SDK_LOGGER = logging.getLogger("driftline.notify.slack_sdk")
_SDK_LOGGER.setLevel(logging.CRITICAL)

# Errors raised while talking to Slack that say nothing about the message itself: no network,
# refused or reset connections, DNS failures, TLS errors, timeouts (socket.timeout is an OSError),
# and a connection closed half-way through the answer (http.client.HTTPException).
_NETWORK_ERRORS = (OSError, http.client.HTTPException)

# Web API error codes that are Slack's own trouble, not ours (https://api.slack.com/web#errors).
_TRANSIENT_API_ERRORS = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "rate_limited",
}
_TOKEN_ERRORS = {
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "team_access_not_granted",
    "not_allowed_token_type",
}
_MESSAGE_ERRORS = {
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "msg_blocks_too_long",
    "no_text",
    "too_many_attachments",
    "invalid_arguments",
    "invalid_payload",
}
_RESTRICTED_ERRORS = {
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "ekm_access_denied",
    "action_prohibited",
    "posting_to_general_channel_denied",
}
_OUR_BUG = "a driftline bug, please report it"
# The message metadata every post with a bot token carries, to be found again after a crash.
METADATA_EVENT = "driftline_alert"
# Slack's clock and ours may differ: a lookup reads from this many seconds before the claim.
CLOCK_SKEW = 300
# A channel id (public, private, direct message), as opposed to a name such as #ml-alerts.
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{6,}")
_GONE_WEBHOOK_ERRORS = {
    "no_service",
    "no_service_id",
    "no_active_hooks",
    "invalid_token",
    "no_team",
    "team_disabled",
}


@dataclass(frozen=True)
class SlackSettings:
    """``notify.slack`` of driftline_project.yml: a bot token, or an incoming webhook."""

    token: str | None = None
    webhook_url: str | None = None
    channel: str | None = None  # default channel, for messages that name none
    base_url: str | None = None  # Slack Web API base URL; None means Slack's own
    timeout: float = 10.0  # seconds to wait for Slack's answer to one request
    max_rate_limit_retries: int = 2  # 429s retried (after Retry-After) before giving up for now

    def __repr__(self) -> str:
        # Settings end up in error reports and debugger output: keep the secrets out.
        token = "***" if self.token else None
        webhook = "***" if self.webhook_url else None
        return (
            f"SlackSettings(token={token!r}, webhook_url={webhook!r}, channel={self.channel!r}, "
            f"base_url={self.base_url!r}, timeout={self.timeout!r}, "
            f"max_rate_limit_retries={self.max_rate_limit_retries!r})"
        )


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery attempt ended; see the module docstring for the three statuses."""

    status: str  # sent | retry | failed
    ts: str | None = None  # the message's ts when posted with a bot token, for threading
    error: str | None = None  # one line, never containing the token or the webhook URL
    # A retry because Slack asked us to slow down (429), not because it failed: Slack is up
    # and did not post the message, so the outbox does not count it towards giving up.
    rate_limited: bool = False


@dataclass(frozen=True)
class Lookup:
    """Whether Slack has a message: ``found`` (with its ``ts``), ``absent``, ``retry`` (Slack
    could not be asked now) or ``unknown`` (it cannot be asked at all: no channel id, a missing
    scope, a webhook); ``error`` says why for the last two."""

    status: str  # found | absent | retry | unknown
    ts: str | None = None
    error: str | None = None


class SlackNotifier:
    """Posts :class:`SlackMessage` objects with a bot token (preferred) or an incoming webhook.

    A bot token posts to the channel each message names and can reply in threads. An incoming
    webhook always posts to the one channel it was created for and cannot thread: resolutions
    are then posted as normal messages (they quote the alert they resolve).
    """

    def __init__(self, settings: SlackSettings):
        if not (settings.token or settings.webhook_url):
            raise ConfigError("notify.slack needs either `token` (a bot token) or `webhook_url`")
        self.settings = settings
        self._secrets = tuple(secret for secret in (settings.token, settings.webhook_url) if secret)
        rate_limits = RateLimitErrorRetryHandler(max_retry_count=settings.max_rate_limit_retries)
        retry_handlers = [rate_limits]  # and nothing else: see the module docstring
        self._web: WebClient | None = None
        self._webhook: WebhookClient | None = None
        if settings.token:
            options = {"base_url": settings.base_url} if settings.base_url else {}
            self._web = WebClient(
                token=settings.token,
                timeout=settings.timeout,
                logger=_SDK_LOGGER,
                retry_handlers=retry_handlers,
                **options,
            )
        else:
            self._webhook = WebhookClient(
                settings.webhook_url,
                timeout=settings.timeout,
                logger=_SDK_LOGGER,
                retry_handlers=retry_handlers,
            )

        self._channel_ids: dict[str, str] = {}  # channel name -> id, as Slack answered

    @property
    def can_look_up(self) -> bool:
        """Whether a posted message can be found again (a bot token; not a webhook)."""
        return self._web is not None

    def send(self, message: SlackMessage, message_id: str | None = None) -> DeliveryResult:
        """Post one message; never raises for anything Slack or the network does.

        ``message_id`` goes into the message's metadata (bot token only), for :meth:`find`.
        """
        if self._web is not None:
            result = self._post_with_token(message, message_id)
        else:
            result = self._post_to_webhook(message)
        return replace(result, error=self._redact(result.error))

    def find(self, channel: str | None, message_id: str, since: datetime, thread_ts: str | None = None) -> Lookup:
        """Look for the message posted with ``message_id`` at ``since`` or later, in ``channel``
        or, given ``thread_ts``, in that thread; never raises for anything Slack does."""
        if self._web is None:
            return Lookup("unknown", error="an incoming webhook cannot look messages up")
        channel = channel or self.settings.channel
        try:
            channel_id = self._channel_id(channel) if channel else None
            if channel_id is None:
                return Lookup("unknown", error=f"Slack channel {channel} not found (conversations.list)")
            ts = self._search(channel_id, message_id, since, thread_ts)
        except SlackApiError as error:
            result = self._api_failure(error.response, channel)
            status = "retry" if result.status == "retry" else "unknown"
            return Lookup(status, error=self._redact(result.error))
        except (*_NETWORK_ERRORS, ValueError) as error:
            return Lookup("retry", error=self._redact(f"could not reach Slack ({self._network_reason(error)})"))
        except SlackClientError as error:
            return Lookup("unknown", error=self._redact(f"could not read Slack: {_one_line(str(error))}"))
        return Lookup("found", ts=ts) if ts else Lookup("absent")

    # ----------------------------------------------------------------------------------------

    def _post_with_token(self, message: SlackMessage, message_id: str | None) -> DeliveryResult:
        """chat.postMessage; its ts is what a later resolution threads under."""
        channel = message.channel or self.settings.channel
        if not channel:
            return _failed("no Slack channel: set alerts.channel or notify.slack.channel")
        metadata = {"event_type": METADATA_EVENT, "event_payload": {"message_id": message_id}} if message_id else None
        try:
            response = self._web.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=message.thread_ts,
                metadata=metadata,
            )
        except SlackApiError as error:
            return self._api_failure(error.response, channel)
        except _NETWORK_ERRORS as error:
            return _retry(f"could not reach Slack ({self._network_reason(error)})")
        except ValueError:
            # slack-sdk parses a Retry-After header and 200 bodies without guarding them.
            return _retry("Slack sent an answer that could not be read")
        except SlackClientError as error:
            return _failed(f"could not post to Slack: {_one_line(str(error))}")
        if isinstance(response.get("channel"), str):
            self._channel_ids[channel.lstrip("#")] = response["channel"]
        return DeliveryResult("sent", ts=response.get("ts"))

    def _channel_id(self, channel: str) -> str | None:
        """The id of ``channel`` (an id already, or a name, with or without ``#``)."""
        if _CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.lstrip("#")
        if name not in self._channel_ids:
            pages = self._web.conversations_list(types="public_channel,private_channel", exclude_archived=True, limit=200)
            for page in pages:  # slack-sdk follows response_metadata.next_cursor
                for found in page.get("channels") or []:
                    self._channel_ids.setdefault(found.get("name"), found.get("id"))
        return self._channel_ids.get(name)

    def _search(self, channel_id: str, message_id: str, since: datetime, thread_ts: str | None) -> str | None:
        """The ts of the message carrying ``message_id``, reading the channel (or thread) from
        ``since`` on, page by page; None when it is not there."""
        oldest = f"{since.timestamp() - CLOCK_SKEW:.6f}"
        options = {"channel": channel_id, "oldest": oldest, "include_all_metadata": True, "limit": 200}
        if thread_ts:
            pages = self._web.conversations_replies(ts=thread_ts, **options)
        else:
            pages = self._web.conversations_history(**options)
        for page in pages:
            for posted in page.get("messages") or []:
                metadata = posted.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == METADATA_EVENT and payload.get("message_id") == message_id:
                    return posted.get("ts")
        return None

    def _post_to_webhook(self, message: SlackMessage) -> DeliveryResult:
        """An incoming webhook answers ``ok`` or an HTTP error whose body is the error code."""
        try:
            # No thread_ts: a webhook cannot reply in a thread.
            response = self._webhook.send(text=message.text, blocks=message.blocks)
        except _NETWORK_ERRORS as error:
            return _retry(f"could not reach the Slack webhook ({self._network_reason(error)})")
        except ValueError:
            return _retry("the Slack webhook sent an answer that could not be read")
        except SlackClientError as error:
            return _failed(f"could not post to the Slack webhook: {_one_line(str(error))}")
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult("sent")
        if status == 429:
            return _retry(self._still_rate_limited(response.headers, "the Slack webhook"), rate_limited=True)
        if status >= 500:
            return _retry(f"the Slack webhook answered HTTP {status}")
        return _failed(_explain_webhook_error(_error_code(response.body) or f"HTTP {status}"))

    def _api_failure(self, response, channel: str) -> DeliveryResult:
        """Sort a failed Web API call into retry-later and give-up."""
        data = response.data if isinstance(response.data, dict) else {}
        code = _error_code(data.get("error"))
        status = response.status_code
        if status == 429 or code in ("ratelimited", "rate_limited"):
            return _retry(self._still_rate_limited(response.headers, "Slack"), rate_limited=True)
        if status >= 500 or code in _TRANSIENT_API_ERRORS:
            detail = f"HTTP {status}" + (f", {code}" if code else "")
            return _retry(f"Slack had a temporary problem ({detail})")
        return _failed(_explain_api_error(code or f"HTTP {status}", channel))

    def _still_rate_limited(self, headers, who: str) -> str:
        retries = self.settings.max_rate_limit_retries
        wait = _header(headers, "Retry-After")
        asked = f", asked to wait {wait} s" if wait else ""
        return f"{who} still rate-limited the message after {retries} retries{asked}"

    def _network_reason(self, error: BaseException) -> str:
        """``no answer within 10 s``, ``Connection refused``...; URLError wraps it in .reason."""
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, TimeoutError):
            return f"no answer within {self.settings.timeout:g} s"
        if isinstance(reason, BaseException):
            text = getattr(reason, "strerror", None) or str(reason)
        else:
            text = str(reason)
        return _one_line(text) or type(error).__name__

    def _redact(self, error: str | None) -> str | None:
        """Belt and braces: whatever an error quotes, the secrets come out."""
        if error is None:
            return None
        for secret in self._secrets:
            error = error.replace(secret, "***")
        return error


# --------------------------------------------------------------------------------------------
# Error messages that say what to do next
# --------------------------------------------------------------------------------------------


def _explain_api_error(code: str, channel: str) -> str:
    """One line naming the problem, the channel and the fix."""
    if code in _TOKEN_ERRORS:
        return (
            f"Slack rejected the bot token ({code}) posting to {channel}: "
            "check notify.slack.token in driftline_project.yml (a bot token, xoxb-...)"
        )
    if code == "channel_not_found":
        return (
            f"Slack channel {channel} not found (channel_not_found): check alerts.channel or "
            f"notify.slack.channel; if {channel} is private, invite the bot to it"
        )
    if code == "not_in_channel":
        return (
            f"the bot is not a member of {channel} (not_in_channel): "
            f"invite the bot to {channel} (/invite @bot)"
        )
    if code == "is_archived":
        return (
            f"Slack channel {channel} is archived (is_archived): "
            "unarchive it or set another alerts.channel"
        )
    if code == "missing_scope":
        return (
            f"the bot token cannot post to {channel} (missing_scope): add the chat:write scope "
            "to the Slack app and reinstall it"
        )
    if code in _MESSAGE_ERRORS:
        return f"Slack refused the alert message for {channel} ({code}): {_OUR_BUG}"
    if code in _RESTRICTED_ERRORS:
        return f"the workspace does not let the bot post to {channel} ({code}): ask a Slack admin"
    return f"Slack refused the message for {channel} ({code})"


def _explain_webhook_error(code: str) -> str:
    """One line naming the problem with an incoming webhook and the fix."""
    if code in _GONE_WEBHOOK_ERRORS:
        return (
            f"the Slack incoming webhook was removed or disabled ({code}): create a new one and "
            "set notify.slack.webhook_url"
        )
    if code in ("channel_not_found", "channel_is_archived"):
        return (
            f"the Slack webhook's channel is gone or archived ({code}): create a webhook for "
            "another channel and set notify.slack.webhook_url"
        )
    if code in _MESSAGE_ERRORS:
        return f"the Slack webhook refused the alert message ({code}): {_OUR_BUG}"
    if code in _RESTRICTED_ERRORS:
        return f"the workspace does not let this webhook post ({code}): ask a Slack admin"
    return f"the Slack webhook refused the message ({code})"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _retry(problem: str, rate_limited: bool = False) -> DeliveryResult:
    return DeliveryResult("retry", error=_one_line(problem), rate_limited=rate_limited)


def _failed(error: str) -> DeliveryResult:
    return DeliveryResult("failed", error=_one_line(error))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error_code(value: object) -> str | None:
    """A Slack error code such as ``channel_not_found``; anything else (HTML, prose) is no code."""
    if isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", value.strip()):
        return value.strip()
    return None


def _header(headers, name: str) -> str | None:
    """A response header, whatever its case and whether slack-sdk stored it as a list."""
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            value = value[0] if isinstance(value, list) and value else value
            return _one_line(str(value))[:20] or None
    return None
