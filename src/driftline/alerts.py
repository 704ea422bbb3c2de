"""Alert episodes (SPEC §5, ``driftline_alerts``): when a breach opens one, when it is worth
another message, and when it is over.

A **fingerprint** names one series of results: monitor, check, column and segment. Its episodes
follow each other and never overlap, and they follow the **window timeline**, not the order in
which windows were evaluated: an episode opens at the ``window_start`` of its first breaching
window and resolves at the ``window_start`` of the first window after it that no longer
breaches. Each result of a fingerprint moves its latest episode on, window by window, in window
order:

=============================  ===================  ==========================================
result                         no open episode      open episode
=============================  ===================  ==========================================
warn/fail ≥ ``min_severity``   open it: *new*       severity rises (warn → fail): *escalated*,
                                                    at once; else, once ``cooldown`` has passed
                                                    since the last announcement: *reminder*
ok, or a breach below
``min_severity``               —                    resolve it: *resolved*
insufficient_data, error       —                    —
=============================  ===================  ==========================================

An episode's severity only goes up: fail → warn → fail is no new escalation, so a value that
hovers around the fail line does not send a message every window. The cooldown runs from the
last announcement (new, escalated or reminder), so an episode that stays open is recalled once
per cooldown.

Every time is a window time (the ``window_start`` of the result), never the wall clock, so a
backfill over history opens and resolves the same episodes every time it runs, in any order.

**Windows at the end of the timeline, and the others.** A fingerprint's *frontier* is the latest
window its episodes already account for: its latest ok, warn or fail result from before this
call, or the latest window its episode recorded. A result after it moves the episodes on by the
table above, and that is the only way to a message. A result at or before the frontier (a
backfill of earlier days, in any order; a re-run) rebuilds the fingerprint's episodes from its
stored results up to the frontier, silently: the table is replayed over that timeline, and each
rebuilt episode, newest first, takes over the row (id, Slack thread, notification state,
cooldown clock) of the newest stored episode of its fingerprint whose breaching windows overlap
its own. So an episode extends backwards when the windows before it breach too; two episodes
that a re-run joins become one (the newer row stays, the other is deleted); an episode that a
re-run splits keeps its row for the newer part, the older part becomes a new row; and a stored
episode that no longer matches any breach is deleted. Rebuilt episodes that take over no row
are ``suppressed``: history is not announced.

What the episodes' changes have to tell people is queued in the outbox (``driftline.outbox``)
and committed together with them, before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from driftline import outbox
from driftline.episode import Episode, plain_value
from driftline.judge import FAIL, OK, SEVERITY, WARN
from driftline.notify import routing
from driftline.notify.messages import Breach
from driftline.spec.models import Monitor
from driftline.windows import Window

OPEN, RESOLVED = "open", "resolved"
NEW, ESCALATED, REMINDER, RESOLVED_KIND = "new", "escalated", "reminder", "resolved"


def process_alerts(workspace: Any, monitor: Any, outcomes: list[Any], notify: bool, now: Any, dry_run: bool = False) -> list[outbox.Notification]:
    """Open, update and resolve a monitor's alert episodes from its evaluated windows, then
    deliver what is pending; returns what was sent (or, per mode, printed or previewed).

    ``notify=False`` stores episodes and sends nothing (``notify_status`` suppressed);
    ``dry_run`` renders every pending message without sending it, leaving it pending. ``now``
    is the run's clock; episodes use window times instead, so it does not enter them.
    """
    spec: Monitor = monitor.loaded.spec
    project, store = workspace.project, workspace.store
    mode = outbox.mode_for(project, notify, dry_run)
    evaluated = sorted((o for o in outcomes if o.status == "success"), key=lambda o: o.window.start)
    book = EpisodeBook(spec, [Episode.from_row(row) for row in store.alert_state(spec.name).to_dict("records")])
    frontiers = _frontiers(store, spec.name, book, [o.window.start for o in evaluated])

    def ahead(result: Mapping[str, Any], window: Window) -> bool:
        key = fingerprint(result)
        return key not in frontiers or window.start > frontiers[key]

    stale = {fingerprint(r) for o in evaluated for r in o.results if not ahead(r, o.window)}
    if stale:
        book = _rebuilt(store, spec, stale, frontiers)
    routes = routing.routes_for(spec, project)
    for outcome in evaluated:
        news = [r for r in outcome.results if ahead(r, outcome.window)]  # the others were rebuilt
        for event in book.observe_window(news, outcome.window, outcome.run_id):
            outbox.queue(event.episode, outbox.Notice(event.breach, outcome.window), mode, routes, spec.alerts.min_severity)
    store.save_alerts([episode.row() for episode in book.changed], removed=book.removed)
    return outbox.deliver(store, book.with_pending(), spec, project, mode)


def _frontiers(store: Any, monitor: str, book: EpisodeBook, evaluated: list[datetime]) -> dict[str, datetime]:
    """Per fingerprint, the latest window its episodes already account for (module docstring):
    its latest ok, warn or fail result from before this call (the windows evaluated now are
    stored already, so they are left out), or the latest window its episode recorded.

    Only judged results count: a window waiting for its labels is not on the timeline yet, so
    when they arrive its verdict is news, announced like any other."""
    frontiers = {episode.fingerprint: episode.horizon for episode in book.latest.values()}
    for row in _timeline(store.last_judged_windows(monitor, leaving_out=evaluated)):
        key = fingerprint(row)
        frontiers[key] = max(frontiers.get(key, row["window_start"]), row["window_start"])
    return frontiers


def _rebuilt(store: Any, spec: Monitor, stale: set[str], frontiers: dict[str, datetime]) -> EpisodeBook:
    """Every episode of the monitor, those of the ``stale`` fingerprints rebuilt from their stored
    results up to their frontier."""
    book = EpisodeBook(spec, [Episode.from_row(row) for row in store.alert_episodes(spec.name).to_dict("records")])
    timeline = _timeline(store.result_timeline(spec.name, max(frontiers[key] for key in stale)))
    book.rebuild([r for r in timeline if fingerprint(r) in stale and r["window_start"] <= frontiers[fingerprint(r)]])
    return book


def _timeline(results: Any) -> list[dict[str, Any]]:
    """Stored result rows as the plain dicts a run's results are (None, not NaN or NaT)."""
    return [{key: plain_value(value) for key, value in row.items()} for row in results.to_dict("records")]


# -- episodes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something worth telling about an episode, as a line of a Slack message."""

    episode: Episode
    breach: Breach


class EpisodeBook:
    """The latest episode of every fingerprint of one monitor, moved on result by result."""

    def __init__(self, monitor: Monitor, episodes: Iterable[Episode]):
        self.monitor = monitor
        self.episodes = {episode.alert_id: episode for episode in episodes}
        self.latest: dict[str, Episode] = {}
        for episode in sorted(self.episodes.values(), key=lambda e: e.opened_at):
            self.latest[episode.fingerprint] = episode
        self._changed: dict[str, Episode] = {}
        self.removed: list[str] = []

    @property
    def changed(self) -> list[Episode]:
        """Episodes opened or updated since the book was loaded."""
        return list(self._changed.values())

    def rebuild(self, timeline: list[dict[str, Any]]) -> None:
        """Replace the episodes of every fingerprint in ``timeline`` (stored results, in window
        order) with those the timeline gives, keeping the rows they overlap (module docstring)."""
        replay = EpisodeBook(self.monitor, [])
        for result in timeline:
            replay.observe(result, Window(result["window_start"], result["window_end"]), result["run_id"])
        for key in {fingerprint(result) for result in timeline}:
            rebuilt = sorted((e for e in replay.episodes.values() if e.fingerprint == key), key=lambda e: e.opened_at)
            self._take_over(key, rebuilt)

    def _take_over(self, key: str, rebuilt: list[Episode]) -> None:
        """Give each rebuilt episode of ``key``, newest first, the row of the newest stored
        episode it overlaps; a new row when there is none; delete the stored rows left over."""
        stored = sorted((e for e in self.episodes.values() if e.fingerprint == key), key=lambda e: e.opened_at)
        for episode in stored:
            del self.episodes[episode.alert_id]
        self.latest.pop(key, None)
        for new in reversed(rebuilt):
            row = next((old for old in reversed(stored) if _overlap(old, new)), None)
            if row is None:
                new.alert_id = self._free_id(key, new.opened_at, stored)
            else:
                stored.remove(row)
                _copy_timeline(new, row)
                new = row
            self.episodes[new.alert_id] = new
            self.latest.setdefault(key, new)
            self._touch(new)
        self.removed += [old.alert_id for old in stored]

    def _free_id(self, key: str, when: datetime, stored: list[Episode]) -> str:
        """The usual id of an episode opened at ``when``, unless a stored row has it already."""
        taken = set(self.episodes) | {e.alert_id for e in stored}
        alert_id, n = _digest(key, when.isoformat()), 0
        while alert_id in taken:
            n += 1
            alert_id = _digest(key, when.isoformat(), n)
        return alert_id

    def with_pending(self) -> list[Episode]:
        """Every known episode with a notification waiting in the outbox, oldest first."""
        waiting = [e for e in self.episodes.values() if e.notify_status in outbox.WAITING]
        return sorted(waiting, key=lambda e: (e.opened_at, e.alert_id))

    def observe_window(self, results: Iterable[Mapping[str, Any]], window: Window, run_id: str) -> list[Event]:
        """Move every fingerprint on by its result in ``window``; the events worth telling."""
        events = (self.observe(result, window, run_id) for result in results)
        return [event for event in events if event is not None]

    def observe(self, result: Mapping[str, Any], window: Window, run_id: str) -> Event | None:
        """Apply one result to its fingerprint's latest episode (see the module's table)."""
        key = fingerprint(result)
        latest = self.latest.get(key)
        when = window.start
        if latest is not None and when <= latest.horizon:
            return None  # a re-run of a window this episode already accounts for
        current = latest if latest is not None and latest.state == OPEN else None
        status = result["status"]
        if self._alerting(status):
            return self._breached(current, key, result, when, run_id)
        if status in (OK, WARN, FAIL) and current is not None:
            return self._resolve(current, result, when, run_id)
        return None

    def _alerting(self, status: str) -> bool:
        floor = SEVERITY[self.monitor.alerts.min_severity]
        return status in (WARN, FAIL) and SEVERITY[status] >= floor

    def _breached(self, episode: Episode | None, key: str, result: Mapping[str, Any], when: datetime, run_id: str) -> Event | None:
        status = result["status"]
        if episode is None:
            episode = self._open(key, result, when)
            kind = NEW
        elif SEVERITY[status] > SEVERITY[episode.severity]:
            episode.severity, episode.notified_at = status, when
            kind = ESCALATED
        elif when - (episode.notified_at or episode.opened_at) >= self.monitor.alerts.cooldown:
            episode.notified_at = when
            kind = REMINDER
        else:
            kind = None
        episode.last_seen_at, episode.value, episode.last_run_id = when, result["value"], run_id
        episode.message = describe(result, status)
        self._touch(episode)
        return Event(episode, breach_of(result, status, kind, episode)) if kind else None

    def _open(self, key: str, result: Mapping[str, Any], when: datetime) -> Episode:
        episode = Episode(
            alert_id=_digest(key, when.isoformat()), fingerprint=key, monitor=self.monitor.name,
            check_name=result["check_name"], column_name=result["column_name"],
            segment_key=result["segment_key"], segment_value=result["segment_value"],
            severity=result["status"], state=OPEN, opened_at=when, last_seen_at=when,
            resolved_at=None, last_run_id=None, value=None, message=None,
            notify_status=outbox.SUPPRESSED, notify_attempts=0, channel=None, slack_ts=None,
            notified_at=when, payload=None,
        )
        self.episodes[episode.alert_id] = self.latest[key] = episode
        return episode

    def _resolve(self, episode: Episode, result: Mapping[str, Any], when: datetime, run_id: str) -> Event:
        episode.state, episode.resolved_at, episode.last_run_id = RESOLVED, when, run_id
        self._touch(episode)
        return Event(episode, breach_of(result, episode.severity, RESOLVED_KIND, episode))

    def _touch(self, episode: Episode) -> None:
        self._changed[episode.alert_id] = episode


def _overlap(a: Episode, b: Episode) -> bool:
    """Whether the breaching windows of two episodes of one fingerprint overlap."""
    return a.opened_at <= b.last_seen_at and b.opened_at <= a.last_seen_at


def _copy_timeline(source: Episode, target: Episode) -> None:
    """What the window timeline says about an episode, from ``source`` onto the stored ``target``;
    the notification state of ``target`` (status, thread, cooldown clock, payload) stays."""
    for name in ("severity", "state", "opened_at", "last_seen_at", "resolved_at", "last_run_id", "value", "message"):
        setattr(target, name, getattr(source, name))


# -- what a result says -------------------------------------------------------------------------


def fingerprint(result: Mapping[str, Any]) -> str:
    """A fixed-length id of monitor, check, column and segment (their text is in their own columns)."""
    return _digest(*(result.get(key) for key in ("monitor", "check_name", "column_name", "segment_key", "segment_value")))


def breach_of(result: Mapping[str, Any], severity: str, kind: str, episode: Episode) -> Breach:
    """The message line for ``result`` (see :class:`~driftline.notify.messages.Breach`)."""
    return Breach(
        check_name=result["check_name"], check_type=result["check_type"], metric=result["metric"],
        column_name=result["column_name"], segment_key=result["segment_key"],
        segment_value=result["segment_value"], severity=severity, value=plain_value(result["value"]),
        threshold=threshold_text(result, severity), reference_value=_details(result).get("reference_value"),
        kind=kind, opened_at=episode.opened_at, anchor=f"{episode.monitor}-{result['check_name']}",
        explained_by=_details(result).get("explained_by"),
    )


def threshold_text(result: Mapping[str, Any], severity: str) -> str | None:
    """The line the value is judged against: the anomaly band when it decided (or is the only
    line), else the threshold of ``severity`` as written."""
    written = result["fail_threshold"] if severity == FAIL else result["warn_threshold"]
    details = _details(result)
    band = details.get("band") or {}
    if "lower" in band and (details.get("anomalous") or not written):
        return f"anomaly band [{band['lower']:.4g}, {band['upper']:.4g}]"
    return written


def describe(result: Mapping[str, Any], severity: str) -> str:
    """One plain line for the ``message`` column: ``fail drift_psi on x (region=a): psi 0.31 (threshold 0.25)``."""
    subject = result["check_name"]
    if result["column_name"]:
        subject += f" on {result['column_name']}"
    if result["segment_key"]:
        subject += f" ({result['segment_key']}={result['segment_value']})"
    value = plain_value(result["value"])
    shown = "n/a" if value is None else f"{value:.4g}"
    threshold = threshold_text(result, severity)
    return f"{severity} {subject}: {result['metric']} {shown}" + (f" (threshold {threshold})" if threshold else "")


def _details(result: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(result["details"]) if result.get("details") else {}


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode("utf-8")).hexdigest()[:32]
