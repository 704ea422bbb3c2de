"""The alert outbox: notifications wait in ``driftline_alerts`` until Slack, and every other route
of the monitor (webhook, Teams, email: ``alerts.routes``), has them.

Nothing is sent twice, and nothing is dropped without a word:

1. A run queues what its episodes have to tell (``notify_status = pending``; the notices in
   ``payload``) and commits that together with the episodes, in one transaction, before anything
   is sent.
2. Then it delivers every pending notice of the monitor — its own and those earlier runs could
   not deliver — claiming each message before it is posted (``sending``, see *Crashes*), and
   records each outcome, message by message: ``sent`` with Slack's ``ts``;
   ``retry`` (Slack down, timed out, answered 5xx) keeps the notice pending for the next run;
   ``failed`` (a refused token, an unknown channel) is reported once and not tried again.

**Giving up.** A notice Slack failed to take :data:`MAX_DELIVERY_ATTEMPTS` times (one try per run
at most) is given up: it leaves the outbox and the episode is ``failed``, as after a permanent
error. A rate limit Slack still imposes after slack-sdk waited out its ``Retry-After`` is not a
failure (Slack is up and asked us to slow down): the notice stays pending without counting
towards giving up, and the run tries nothing more on Slack. The last delivery error is kept in
``payload`` (``error``) until a message about the episode gets through.

``notify_attempts`` counts every call to Slack about the episode (its opening, reminders,
escalation and resolution, retries included), so a stuck notification shows as a growing count;
the failed tries of each notice still waiting are counted in ``payload`` (``failures``).

**Crashes.** With a bot token delivery is exactly once, also when a run is killed mid-delivery.
Before posting, the run *claims* the message: its episodes' notices move into a claim (a message id
of its own, a uuid, since one message groups several episodes; the wall-clock time; the channel
and thread) and the episodes are committed as ``sending``. The message is posted with Slack message
metadata carrying that id, and its outcome written as above. A run that finds a claim (the run
that made it was killed) asks Slack before anything else (:meth:`SlackNotifier.find
<driftline.notify.slack.SlackNotifier.find>`: the channel's history, or the thread's replies for a
resolution, from the claim time): found, the message is recorded as sent with its ``ts``; absent,
the post never reached Slack and the notices are pending again, to be posted (a notice queued
meanwhile merges into the one that came back). The lookup trusts that Slack is done with the
killed run's request by then (it answers within seconds; the next run comes later): a request
Slack still processed after the lookup would show twice. When Slack cannot be asked now, the claim
waits for the next run; when it cannot be asked at all (a missing scope, an unknown channel), the
message is posted again rather than lost. An incoming webhook cannot be asked: its messages are not claimed,
and a crash between its POST and the write of the outcome sends that message again on the next
run: webhook delivery is at least once.

**Payload.** One row per episode holds at most two notices: an *announcement* (the episode's line
in the monitor's run message: new, escalated or reminder) and a *resolution* (a reply in the
thread of the message that announced it). ``payload`` holds them as JSON — the
:class:`~driftline.notify.messages.Breach` to show and the window it was seen in — rather than a
rendered message, because one Slack message groups the announcements of many episodes: the
message is rendered at delivery from the pending rows (with the monitor's current owner, runbook
and report link). Notices merge: a newer announcement replaces a pending one with the latest
numbers but keeps the stronger kind (an unsent *new* stays *new*).

**Order.** Announcements go first, one message per monitor and channel; then resolutions, each in
the thread of the episode's first delivered message (``slack_ts``), or as a normal message when
there is none (the announcement failed, was suppressed, or went through a webhook, which cannot
thread). A resolution waits while its own announcement is still pending.

**Routes beyond Slack.** Which changes of an episode each route hears is decided as they are
queued (:func:`driftline.notify.routing.told`); they wait in ``payload`` (``routes``, per route in
order; ``route_errors``, the last error of each) and are delivered after Slack's, by
:class:`_RouteCourier`, with Slack's rules for retries and giving up, and without claims: a webhook
receiver recognises a change sent again by its idempotency key; Teams and SMTP cannot be asked, so
a crash between a send and the write of its outcome sends that message again. ``notify_status`` is
``pending`` while any route waits, else the outcome of the last delivery.

**Modes.** ``send``: Slack is configured, deliver. ``print``: no Slack in the project
(``notify.slack`` missing, or neither a token nor a webhook): messages are returned for the
caller to print, and stored as ``suppressed``. ``preview`` (``--dry-run``): messages are
rendered and returned, and stay pending for the next run to send. ``silent`` (``--no-notify``,
and ``backfill`` by default): nothing is queued; the episode's new notices are ``suppressed``, and
an episode that resolves in silence drops an announcement nobody has seen yet. Routes other than
Slack are delivered in ``send`` and ``print`` mode, rendered in ``preview``, and hear nothing in
``silent``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from driftline.episode import Episode
from driftline.notify import routing
from driftline.notify.messages import Breach, MonitorRun, SlackMessage, render_resolution, render_run_message, render_text
from driftline.notify.routing import RoutedAlert, RouteMessage
from driftline.notify.slack import DeliveryResult, Lookup, SlackNotifier, SlackSettings
from driftline.spec.models import Monitor, Route
from driftline.windows import Window

if TYPE_CHECKING:
    from driftline.project import Project
    from driftline.store import ResultStore

PENDING, SENT, FAILED, SUPPRESSED = "pending", "sent", "failed", "suppressed"
SENDING = "sending"  # a message is (or was, when a run crashed) on its way to Slack
# The statuses of an episode with something left to do in the outbox.
WAITING = (PENDING, SENDING)
RETRY, PREVIEW_STATUS = "retry", "preview"
SEND, PRINT, PREVIEW, SILENT = "send", "print", "preview", "silent"

# Seconds to wait for Slack's answer to one message before leaving it for the next run.
DELIVERY_TIMEOUT = 10.0
# Transient failures (5xx, timeout, unreachable) of one notice, one run each, before giving up.
MAX_DELIVERY_ATTEMPTS = 5
# Which pending announcement wins a merge: one nobody has seen yet stays "new".
_KIND_STRENGTH = {"new": 0, "escalated": 1, "reminder": 2}


@dataclass(frozen=True)
class Notice:
    """One thing to tell about an episode, the window (or windows) it was seen in, and how many
    times Slack failed to take it so far."""

    breach: Breach
    window: Window
    failures: int = 0


@dataclass(frozen=True)
class Claim:
    """A notice on its way to Slack, in the message ``message_id`` (one message may group the
    notices of several episodes). It is committed before the post, so that a run finding it
    knows the post may have reached Slack, and looks before posting again."""

    message_id: str  # in the message's Slack metadata, to find it again
    at: datetime  # the wall clock (UTC) just before the post: Slack's ts are wall-clock times
    part: str  # announce | resolution
    notice: Notice  # out of the pending notices while it is on its way
    channel: str | None  # as posted; None for the default channel
    thread_ts: str | None  # the thread a resolution was posted in


@dataclass(frozen=True)
class RouteNotice:
    """One change of an episode waiting for a route other than Slack (see
    :mod:`driftline.notify.routing` for the transitions)."""

    transition: str
    notice: Notice


@dataclass
class Pending:
    """An episode's notices waiting in the outbox: for Slack, at most one announcement and one
    resolution, the notice on its way, if any, and why the last delivery failed, if it did; for
    every other route (by :func:`~driftline.notify.routing.route_key`), its waiting changes, in
    order, and why its last delivery failed."""

    announce: Notice | None = None
    resolution: Notice | None = None
    error: str | None = None
    claim: Claim | None = None
    routes: dict[str, list[RouteNotice]] = field(default_factory=dict)
    route_errors: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether Slack notices wait to be sent (one on its way is not waiting)."""
        return self.announce is not None or self.resolution is not None

    def to_json(self) -> str | None:
        if not self and self.error is None and self.claim is None and not self.routes and not self.route_errors:
            return None
        notices = {"announce": _notice_json(self.announce), "resolution": _notice_json(self.resolution)}
        routes = {key: [{"transition": n.transition, **_notice_json(n.notice)} for n in waiting] for key, waiting in self.routes.items()}
        return json.dumps({**notices, "error": self.error, "claim": _claim_json(self.claim), "routes": routes, "route_errors": self.route_errors})

    @classmethod
    def from_json(cls, text: str | None) -> Pending:
        data = json.loads(text) if text else {}
        notices = _notice_of(data.get("announce")), _notice_of(data.get("resolution"))
        routes = {key: [RouteNotice(n["transition"], _notice_of(n)) for n in waiting] for key, waiting in (data.get("routes") or {}).items()}
        return cls(*notices, data.get("error"), _claim_of(data.get("claim")), routes, data.get("route_errors") or {})


@dataclass(frozen=True)
class Notification:
    """One message a run sent, or would send, and how that ended for the alerts ``alert_ids``.

    ``status``: ``sent``, ``retry`` (still pending, ``error`` says why and which attempt it was),
    ``failed`` (``error`` says what to fix, or that driftline gave up after
    :data:`MAX_DELIVERY_ATTEMPTS`), ``suppressed`` (no Slack configured: to be printed) or
    ``preview`` (``--dry-run``). A failed message that ends differently for the alerts it groups
    (one given up, another to be retried) gives one record per outcome.
    """

    monitor: str
    message: SlackMessage | RouteMessage
    status: str
    alert_ids: tuple[str, ...]
    error: str | None = None

    @property
    def text(self) -> str:
        """The message as plain text, its first line saying where it goes (see
        :func:`~driftline.notify.messages.render_text`)."""
        return render_text(self.message) if isinstance(self.message, SlackMessage) else self.message.text


# -- configuration ------------------------------------------------------------------------------


def mode_for(project: Project, notify: bool, dry_run: bool) -> str:
    """send, print, preview or silent; see the module docstring."""
    if dry_run:
        return PREVIEW
    if not notify:
        return SILENT
    return SEND if slack_settings(project) is not None else PRINT


def slack_settings(project: Project) -> SlackSettings | None:
    """The project's Slack settings, or None when it has no way to post."""
    slack = project.settings.notify.slack
    if slack is None or not (slack.token or slack.webhook_url):
        return None
    return SlackSettings(
        token=slack.token, webhook_url=slack.webhook_url, channel=slack.channel,
        base_url=slack.base_url, timeout=DELIVERY_TIMEOUT,
    )


# -- queueing -----------------------------------------------------------------------------------


def queue(episode: Episode, notice: Notice, mode: str, routes: list[Route], min_severity: str) -> None:
    """Put ``notice`` in the episode's outbox for each of ``routes`` that hears of it (see
    :func:`~driftline.notify.routing.told`; ``min_severity`` is the monitor's), or, in silent
    mode, suppress it."""
    pending = Pending.from_json(episode.payload)
    for route in routes:
        told = routing.told(route, notice.breach, min_severity, notice.window.start)
        if route.kind == "slack":
            pending = _queue_for_slack(episode, pending, notice, told, mode, route.target or None)
        elif told is not None and mode != SILENT:
            transition, breach = told
            key = routing.route_key(route)
            pending.routes[key] = _merged_route(pending.routes.get(key, []), RouteNotice(transition, replace(notice, breach=breach)))
    episode.payload = pending.to_json()
    # A change no route hears leaves the status of the last delivery as it was.
    episode.notify_status = _status(pending, SUPPRESSED if mode == SILENT else episode.notify_status)


def _queue_for_slack(episode: Episode, pending: Pending, notice: Notice, told: tuple[str, Breach] | None, mode: str, channel: str | None) -> Pending:
    resolves = notice.breach.kind == "resolved"
    if mode == SILENT:
        if resolves:
            pending.announce = None  # over before anyone was told: nothing left to say
        return pending
    if told is None:
        return pending
    episode.channel = channel
    return _merged(pending, replace(notice, breach=told[1]))


def _merged_route(waiting: list[RouteNotice], notice: RouteNotice) -> list[RouteNotice]:
    """A route's waiting changes with ``notice`` added: a newer reminder replaces a waiting one
    (its failed tries still count), the other changes queue up in order."""
    reminder = routing.kind_of(notice.transition) == routing.REMINDER
    for i, earlier in enumerate(waiting):
        if earlier.transition == notice.transition or (reminder and routing.kind_of(earlier.transition) == routing.REMINDER):
            newer = RouteNotice(notice.transition, replace(notice.notice, failures=earlier.notice.failures))
            return waiting[:i] + [newer] + waiting[i + 1:]
    return waiting + [notice]


def _status(pending: Pending, otherwise: str) -> str:
    """``sending`` while a message is on its way to Slack, ``pending`` while notices wait for any
    route, else ``otherwise``."""
    if pending.claim is not None:
        return SENDING
    return PENDING if pending or pending.routes else otherwise


def _merged(pending: Pending, notice: Notice) -> Pending:
    if notice.breach.kind == "resolved":
        return replace(pending, resolution=notice)
    earlier = pending.announce
    if earlier is not None:
        kind = min(earlier.breach.kind, notice.breach.kind, key=_KIND_STRENGTH.__getitem__)
        window = Window(earlier.window.start, notice.window.end)
        notice = Notice(replace(notice.breach, kind=kind), window, earlier.failures)  # still the same undelivered news
    return replace(pending, announce=notice)


# -- delivery -----------------------------------------------------------------------------------


def deliver(store: ResultStore, episodes: Iterable[Episode], monitor: Monitor, project: Project, mode: str) -> list[Notification]:
    """Send (print, or preview) every pending notice of ``episodes``; record each outcome.

    Messages a crashed run left on their way (``sending``) are settled first: found in Slack,
    they are recorded as sent; not found, their notices are pending again and go out below.
    """
    if mode == SILENT:
        return []
    waiting = list(episodes)
    courier = _Courier(store, monitor, project, mode)
    courier.recover(waiting)
    for channel, group in _by_channel(e for e in waiting if _pending(e).announce):
        courier.announce(group, channel)
    for episode in waiting:
        pending = _pending(episode)
        announced = pending.announce is None and pending.claim is None
        if pending.resolution and (announced or mode == PREVIEW):
            courier.resolve(episode)
    return courier.records + _RouteCourier(store, monitor, project, mode).deliver(waiting)


class _Courier:
    """Renders pending notices into messages, sends them and writes each outcome back.

    With a bot token each message is claimed before it is posted (see :meth:`_claim`); a webhook
    cannot be asked afterwards whether a post arrived, so its messages are not claimed: a crash
    between its POST and the write of the outcome sends that message again (at least once).
    """

    def __init__(self, store: ResultStore, monitor: Monitor, project: Project, mode: str):
        self.store, self.monitor, self.project, self.mode = store, monitor, project, mode
        self.notifier = SlackNotifier(slack_settings(project)) if mode == SEND else None
        self.claims = self.notifier is not None and self.notifier.can_look_up
        self.records: list[Notification] = []
        # After a transient failure (or a rate limit) Slack is left alone for the rest of this run:
        # the other messages stay pending too, instead of each waiting out its own timeout.
        self.slack_down = False

    def announce(self, episodes: list[Episode], channel: str | None) -> None:
        """One message with the announcements of ``episodes``."""
        notices = [_pending(e).announce for e in episodes]
        self._dispatch(self._announcement(notices, channel), episodes, "announce")

    def resolve(self, episode: Episode) -> None:
        """The resolution, in the thread of the episode's first delivered message if any."""
        notice = _pending(episode).resolution
        self._dispatch(self._resolution(notice, episode.channel, episode.slack_ts), [episode], "resolution")

    def recover(self, episodes: list[Episode]) -> None:
        """Settle the messages a crashed run claimed but did not record: look each up in Slack
        by its id; found, it is sent (with its ts); absent, its notices are pending again."""
        if self.mode == PREVIEW:
            return  # a dry run asks Slack nothing; the claims wait for a run that sends
        for group in _by_claim(episodes):
            claim = _pending(group[0]).claim
            message = self._claimed_message(group, claim)
            found = self._look_up(claim)
            if found.status == "found":
                self._record(message, group, DeliveryResult(SENT, ts=found.ts))
            elif found.status == "retry":
                error = f"could not check whether Slack has a message a crashed run posted: {found.error}"
                self.records.append(Notification(self.monitor.name, message, RETRY, _ids(group), error))
                self.slack_down = True
                return
            else:  # absent: the post never reached Slack; unknown: post again rather than lose it
                for episode in group:
                    _release(episode)
                self.store.save_alerts([e.row() for e in group])

    def _look_up(self, claim: Claim) -> Lookup:
        if not self.claims:  # a webhook, or no Slack configured any more: nothing to ask
            return Lookup("unknown", error="no bot token to look messages up with")
        return self.notifier.find(claim.channel, claim.message_id, claim.at, claim.thread_ts)

    def _announcement(self, notices: list[Notice], channel: str | None) -> SlackMessage:
        run = self._run(Window(min(n.window.start for n in notices), max(n.window.end for n in notices)))
        return render_run_message(run, [n.breach for n in notices], channel or "")

    def _resolution(self, notice: Notice, channel: str | None, thread_ts: str | None) -> SlackMessage:
        return render_resolution(self._run(notice.window), notice.breach, channel or "", thread_ts)

    def _claimed_message(self, episodes: list[Episode], claim: Claim) -> SlackMessage:
        """The message of a claim, rendered again (for the record of what was sent)."""
        if claim.part == "announce":
            return self._announcement([_pending(e).claim.notice for e in episodes], claim.channel)
        return self._resolution(claim.notice, claim.channel, claim.thread_ts)

    def _run(self, window: Window) -> MonitorRun:
        m = self.monitor
        return MonitorRun(m.name, m.description, m.owner, m.runbook, window.start, window.end, self.project.settings.report_url)

    def _dispatch(self, message: SlackMessage, episodes: list[Episode], part: str) -> None:
        if self.mode == PREVIEW:
            self.records.append(Notification(self.monitor.name, message, PREVIEW_STATUS, _ids(episodes)))
            return
        if self.slack_down:
            return
        message_id = self._claim(message, episodes, part)
        result = self.notifier.send(message, message_id) if self.notifier else DeliveryResult(SUPPRESSED)
        self.slack_down = result.status == RETRY
        self._record(message, episodes, result)

    def _claim(self, message: SlackMessage, episodes: list[Episode], part: str) -> str:
        """Move each episode's notice into a claim on one new message id; with a bot token,
        commit the claims (``sending``) before the post, so that a crash during it leaves a
        trace the next run looks up instead of posting blindly again."""
        message_id = uuid.uuid4().hex
        now = datetime.now(timezone.utc)
        for episode in episodes:
            pending = _pending(episode)
            notice = getattr(pending, part)
            setattr(pending, part, None)
            pending.claim = Claim(message_id, now, part, notice, message.channel or None, message.thread_ts)
            episode.payload = pending.to_json()
            episode.notify_status = _status(pending, PENDING)
        if self.claims:
            self.store.save_alerts([e.row() for e in episodes])
        return message_id

    def _record(self, message: SlackMessage, episodes: list[Episode], result: DeliveryResult) -> None:
        """Write the outcome of the claimed message to its episodes, and report it."""
        outcomes: dict[tuple[str, str | None], list[str]] = {}
        for episode in episodes:
            outcomes.setdefault(_settle(episode, result), []).append(episode.alert_id)
        self.store.save_alerts([e.row() for e in episodes])
        for (status, error), alert_ids in outcomes.items():
            self.records.append(Notification(self.monitor.name, message, status, tuple(alert_ids), error))


class _RouteCourier:
    """Sends the changes waiting for each route other than Slack, route by route, and writes each
    outcome back: a webhook gets one request per change, Teams and email one message with all
    the changes waiting for them.

    Nothing is claimed: a webhook receiver recognises a change sent again by its idempotency key
    (exactly once, where the receiver keeps the keys); Teams and SMTP cannot be asked what they
    took, so a crash between a send and the write of its outcome sends that message again (at
    least once)."""

    def __init__(self, store: ResultStore, monitor: Monitor, project: Project, mode: str):
        self.store, self.monitor, self.project, self.mode = store, monitor, project, mode
        self.routes = {routing.route_key(r): r for r in routing.routes_for(monitor, project) if r.kind != "slack"}
        self.records: list[Notification] = []

    def deliver(self, episodes: list[Episode]) -> list[Notification]:
        if self.mode != PREVIEW:
            self._forget_unrouted(episodes)
        for key, route in self.routes.items():
            waiting = [(e, n) for e in episodes for n in _pending(e).routes.get(key, ())]
            if waiting:
                self._send(key, route, waiting)
        return self.records

    def _send(self, key: str, route: Route, waiting: list[tuple[Episode, RouteNotice]]) -> None:
        sender = _sender(route, self.project)
        size = sender.max_alerts or len(waiting)
        for batch in (waiting[i:i + size] for i in range(0, len(waiting), size)):
            episodes = list({e.alert_id: e for e, _ in batch}.values())
            message = sender.render(self._run([n for _, n in batch]), [_routed(e, n) for e, n in batch])
            if self.mode == PREVIEW:
                self.records.append(Notification(self.monitor.name, message, PREVIEW_STATUS, _ids(episodes)))
                continue
            result = sender.send(message)
            outcomes: dict[tuple[str, str | None], list[str]] = {}
            for episode, notice in batch:
                outcomes.setdefault(_settle_route(episode, key, notice, result), []).append(episode.alert_id)
            self.store.save_alerts([e.row() for e in episodes])
            for (status, error), alert_ids in outcomes.items():
                self.records.append(Notification(self.monitor.name, message, status, tuple(dict.fromkeys(alert_ids)), error))
            if result.status == RETRY:
                return  # the receiver is down: the rest wait for the next run instead of each timing out

    def _forget_unrouted(self, episodes: list[Episode]) -> None:
        """Drop the changes waiting for routes the monitor no longer has: nobody would send them."""
        changed = []
        for episode in episodes:
            pending = _pending(episode)
            gone = [key for key in {**pending.routes, **pending.route_errors} if key not in self.routes]
            if gone:
                for key in gone:
                    pending.routes.pop(key, None)
                    pending.route_errors.pop(key, None)
                episode.payload = pending.to_json()
                episode.notify_status = _status(pending, episode.notify_status if episode.notify_status not in WAITING else SUPPRESSED)
                changed.append(episode)
        if changed:
            self.store.save_alerts([e.row() for e in changed])

    def _run(self, notices: list[RouteNotice]) -> MonitorRun:
        m = self.monitor
        start, end = min(n.notice.window.start for n in notices), max(n.notice.window.end for n in notices)
        return MonitorRun(m.name, m.description, m.owner, m.runbook, start, end, self.project.settings.report_url)


def _sender(route: Route, project: Project) -> Any:
    """The sender of a route other than Slack (imported here: a run without such routes needs none)."""
    receiver = routing.receiver_of(route, project)
    if route.kind == "webhook":
        from driftline.notify.webhook import WebhookRoute

        return WebhookRoute(route.target, receiver)
    if route.kind == "teams":
        from driftline.notify.teams import TeamsRoute

        return TeamsRoute(route.target, receiver)
    from driftline.notify.email import EmailRoute

    return EmailRoute(route.target, receiver)


def _routed(episode: Episode, notice: RouteNotice) -> RoutedAlert:
    window = notice.notice.window
    return RoutedAlert(episode.alert_id, notice.transition, notice.notice.breach, window.start, window.end)


def _settle_route(episode: Episode, key: str, sent: RouteNotice, result: DeliveryResult) -> tuple[str, str | None]:
    """Write the outcome of one change sent to the route ``key``; returns its status and the error to report."""
    episode.notify_attempts += 1
    pending = _pending(episode)
    waiting = pending.routes.get(key, [])
    failures = sent.notice.failures + (1 if result.status == RETRY and not result.rate_limited else 0)
    status, error, report = _verdict(result, failures)
    if status == RETRY:  # still waiting, one failure more
        again = replace(sent, notice=replace(sent.notice, failures=failures))
        waiting = [again if n.transition == sent.transition else n for n in waiting]
    else:
        waiting = [n for n in waiting if n.transition != sent.transition]
    if waiting:
        pending.routes[key] = waiting
    else:
        pending.routes.pop(key, None)
    if error is None:
        pending.route_errors.pop(key, None)
    else:
        pending.route_errors[key] = error
    episode.payload = pending.to_json()
    episode.notify_status = _status(pending, status)
    return status, report


def _settle(episode: Episode, result: DeliveryResult) -> tuple[str, str | None]:
    """Write the outcome of the episode's claimed notice; returns its status and the error to report."""
    if result.status != SUPPRESSED:
        episode.notify_attempts += 1
    pending = _pending(episode)
    claim, pending.claim = pending.claim, None
    notice = claim.notice
    if result.status == RETRY and not result.rate_limited:
        notice = replace(notice, failures=notice.failures + 1)
    status, pending.error, report = _verdict(result, notice.failures)
    if status == RETRY:
        _restore(pending, claim.part, notice)
    elif claim.part == "announce" and result.ts and not episode.slack_ts:
        episode.slack_ts = result.ts  # the first message people saw: resolutions thread under it
    episode.payload = pending.to_json()
    episode.notify_status = _status(pending, status)
    return status, report


def _release(episode: Episode) -> None:
    """Give up a claim whose message never reached Slack: its notice is pending again."""
    pending = _pending(episode)
    claim, pending.claim = pending.claim, None
    _restore(pending, claim.part, claim.notice)
    episode.payload = pending.to_json()
    episode.notify_status = _status(pending, PENDING)


def _restore(pending: Pending, part: str, notice: Notice) -> None:
    """Put a notice that did not get through back among the pending ones. A newer notice queued
    meanwhile merges into it, as if the first had never left: an unsent *new* stays *new*."""
    newer = getattr(pending, part)
    setattr(pending, part, notice)
    if newer is not None:
        setattr(pending, part, getattr(_merged(pending, newer), part))


def _verdict(result: DeliveryResult, failures: int) -> tuple[str, str | None, str | None]:
    """What ``result`` means for a notice Slack has failed to take ``failures`` times, this
    attempt included: its status, the error to keep (None once delivered) and the one to report."""
    if result.status != RETRY:
        return result.status, result.error, result.error
    if result.rate_limited:
        return RETRY, result.error, f"{result.error}; will retry on the next run"
    if failures < MAX_DELIVERY_ATTEMPTS:
        return RETRY, result.error, f"{result.error}; attempt {failures} of {MAX_DELIVERY_ATTEMPTS}, will retry on the next run"
    gave_up = f"{result.error}; gave up after {MAX_DELIVERY_ATTEMPTS} attempts"
    return FAILED, gave_up, gave_up


def _by_channel(episodes: Iterable[Episode]) -> list[tuple[str | None, list[Episode]]]:
    groups: dict[str | None, list[Episode]] = {}
    for episode in episodes:
        groups.setdefault(episode.channel, []).append(episode)
    return list(groups.items())


def _by_claim(episodes: Iterable[Episode]) -> list[list[Episode]]:
    """The episodes with a claim, one group per claimed message."""
    groups: dict[str, list[Episode]] = {}
    for episode in episodes:
        claim = _pending(episode).claim
        if claim is not None:
            groups.setdefault(claim.message_id, []).append(episode)
    return list(groups.values())


def _pending(episode: Episode) -> Pending:
    return Pending.from_json(episode.payload)


def _ids(episodes: Iterable[Episode]) -> tuple[str, ...]:
    return tuple(e.alert_id for e in episodes)


# -- payload JSON -------------------------------------------------------------------------------


def _notice_json(notice: Notice | None) -> dict[str, Any] | None:
    if notice is None:
        return None
    breach = asdict(notice.breach)
    breach["opened_at"] = _iso(breach["opened_at"])
    window = [_iso(notice.window.start), _iso(notice.window.end)]
    return {"breach": breach, "window": window, "failures": notice.failures}


def _notice_of(data: dict[str, Any] | None) -> Notice | None:
    if data is None:
        return None
    breach = dict(data["breach"])
    breach["opened_at"] = _moment(breach.get("opened_at"))
    start, end = (_moment(t) for t in data["window"])
    return Notice(Breach(**breach), Window(start, end), data.get("failures", 0))


def _claim_json(claim: Claim | None) -> dict[str, Any] | None:
    if claim is None:
        return None
    fields = {"message_id": claim.message_id, "at": _iso(claim.at), "part": claim.part}
    return {**fields, "notice": _notice_json(claim.notice), "channel": claim.channel, "thread_ts": claim.thread_ts}


def _claim_of(data: dict[str, Any] | None) -> Claim | None:
    if data is None:
        return None
    notice = _notice_of(data["notice"])
    return Claim(data["message_id"], _moment(data["at"]), data["part"], notice, data.get("channel"), data.get("thread_ts"))


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
