"""Which of a monitor's routes hear of an episode's change, under which name, and in what words.

A monitor's ``alerts.routes`` (SPEC §5) name where its alerts go: a Slack channel, or a receiver
of the project's ``notify:`` block (``webhook``, ``teams``, ``email``). Without routes, alerts
go to Slack as they always did: the monitor's ``alerts.channel``, else the project's.

**Transitions.** Each route sees the episode from its own ``min_severity``: an episode *opens*
for a route when it first reaches that severity, so a warn episode escalating to fail is
``opened`` for a fail route and ``escalated`` for a warn route. The transitions are ``opened``,
``escalated``, ``reminder-<date>`` (the window of the reminder: an episode may be recalled many
times) and ``resolved``; a route with ``when: opened`` hears only ``opened``. Severity only goes up
within an episode (``driftline.alerts``), so ``opened`` happens at most once per episode and
route: that is what makes a route an *action* (trigger a retraining once per incident).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from driftline.errors import ConfigError
from driftline.notify.messages import Breach, MonitorRun
from driftline.spec.models import Monitor, Route

if TYPE_CHECKING:
    from driftline.project import NotifyConfig, Project
    from driftline.spec.loader import LoadedMonitor

OPENED, ESCALATED, REMINDER, RESOLVED = "opened", "escalated", "reminder", "resolved"
_RANK = {"warn": 1, "fail": 2}
# The project's receivers of each routed kind (its `notify:` key), by route kind.
RECEIVER_KEYS = {"webhook": "webhooks", "teams": "teams", "email": "email"}


@dataclass(frozen=True)
class RoutedAlert:
    """One episode's change as one route is told it."""

    alert_id: str
    transition: str  # opened | escalated | reminder-<date> | resolved
    breach: Breach
    window_start: datetime
    window_end: datetime

    @property
    def idempotency_key(self) -> str:
        """The same for every try of this change: a receiver that keeps it takes the change once."""
        return f"{self.alert_id}:{self.transition}"


@dataclass(frozen=True)
class RouteMessage:
    """A message for a route other than Slack, rendered and ready to send."""

    channel: str  # where it goes, as people read it: "webhook retrain", "email oncall"
    text: str  # the message as plain text: "to <channel>", the headline, one line per alert
    content: Any  # what the receiver sends: a JSON body (webhook, Teams) or an email


# -- configuration ------------------------------------------------------------------------------


def routes_for(monitor: Monitor, project: Project) -> list[Route]:
    """The monitor's routes; without ``alerts.routes``, Slack as before routes existed."""
    if monitor.alerts.routes is not None:
        return list(monitor.alerts.routes)
    slack = project.settings.notify.slack
    return [Route(slack=monitor.alerts.channel or (slack.channel if slack else None) or "")]


def route_key(route: Route) -> str:
    """The route's name in an episode's outbox payload: ``webhook:retrain``."""
    return f"{route.kind}:{route.target}"


def receiver_of(route: Route, project: Project) -> Any:
    """The project's settings of the receiver a (non-Slack) route names."""
    return getattr(project.settings.notify, RECEIVER_KEYS[route.kind])[route.target]


def unknown_receivers(notify: NotifyConfig, monitors: Iterable[LoadedMonitor]) -> list[ConfigError]:
    """A located error for every route naming a receiver the project does not have."""
    from driftline.spec.errors import did_you_mean

    problems = []
    for monitor in monitors:
        for i, route in enumerate(monitor.spec.alerts.routes or ()):
            if route.kind == "slack":
                continue
            key = RECEIVER_KEYS[route.kind]
            names = getattr(notify, key)
            if route.target not in names:
                known = f"; notify.{key} has {', '.join(names)}" if names else f"; add it under notify.{key} in driftline_project.yml"
                message = f"route {route.kind}: unknown receiver {route.target!r}{did_you_mean(route.target, names)}{known}"
                problems.append(ConfigError(message, monitor.positions.locate(("alerts", "routes", i, route.kind))))
    return problems


# -- which changes a route hears ----------------------------------------------------------------


def told(route: Route, breach: Breach, monitor_floor: str, window_start: datetime) -> tuple[str, Breach] | None:
    """The transition ``route`` hears for ``breach`` (an episode's change, see
    :class:`~driftline.notify.messages.Breach`), and the breach as the route tells it, or None.

    >>> from datetime import datetime
    >>> b = Breach("d", "drift", "psi", "c", None, None, "fail", 0.6, "0.25", None, "escalated", None, "a")
    >>> told(Route(webhook="retrain", min_severity="fail", when="opened"), b, "warn", datetime(2026, 3, 9))[0]
    'opened'
    >>> told(Route(webhook="retrain", when="opened"), b, "warn", datetime(2026, 3, 9)) is None
    True
    """
    floor = _RANK[route.min_severity or monitor_floor]
    if _RANK[breach.severity] < floor:
        return None  # below this route: it never heard the episode open, so it hears nothing of it
    # An escalation is warn → fail: it opens the episode for a route that ignores warnings.
    opens = breach.kind == "new" or (breach.kind == "escalated" and floor > _RANK["warn"])
    if opens:
        return OPENED, replace(breach, kind="new")
    if route.when == "opened":
        return None
    if breach.kind == "reminder":
        return f"{REMINDER}-{window_start:%Y-%m-%d}", breach
    return (ESCALATED if breach.kind == "escalated" else RESOLVED), breach


def kind_of(transition: str) -> str:
    """``reminder`` for ``reminder-2026-03-09``; the other transitions are their own kind."""
    return transition.split("-")[0]


# -- words for routes other than Slack ----------------------------------------------------------


def headline(run: MonitorRun, alerts: list[RoutedAlert]) -> str:
    """``leads: 2 opened (fail), 1 resolved`` — what a message about ``alerts`` says first."""
    counts: dict[str, list[str]] = {}
    for alert in alerts:
        counts.setdefault(kind_of(alert.transition), []).append(alert.breach.severity)
    parts = []
    for name in (OPENED, ESCALATED, REMINDER, RESOLVED):
        severities = counts.get(name)
        if severities:
            worst = max(severities, key=_RANK.__getitem__)
            parts.append(f"{len(severities)} {name}" + ("" if name == RESOLVED else f" ({worst})"))
    return f"{run.monitor}: " + ", ".join(parts)


def alert_line(alert: RoutedAlert) -> str:
    """One alert in plain words: ``FAIL opened · drift_psi on c (region=eu): psi 0.62 (threshold
    0.25), since 2026-03-06``."""
    b = alert.breach
    subject = b.check_name + (f" on {b.column_name}" if b.column_name else "")
    if b.segment_key:
        subject += f" ({b.segment_key}={b.segment_value})"
    value = "n/a" if b.value is None else f"{b.value:.4g}"
    line = f"{b.severity.upper()} {alert.transition} · {subject}: {b.metric} {value}"
    if b.threshold:
        line += f" (threshold {b.threshold})"
    if b.reference_value is not None:
        line += f", reference {b.reference_value:.4g}"
    if b.opened_at is not None:
        line += f", since {b.opened_at:%Y-%m-%d}"
    return line


def report_link(run: MonitorRun, breach: Breach) -> str | None:
    """The breach's chart in the report, when the project says where the report is."""
    return f"{run.report_url}#{breach.anchor}" if run.report_url else None


def intro(run: MonitorRun) -> str:
    """The monitor's description, owner and window, as one line."""
    window = f"window {run.window_start:%Y-%m-%d %H:%M} → {run.window_end:%Y-%m-%d %H:%M} UTC"
    return " · ".join(part for part in (run.description, f"owner {run.owner}" if run.owner else None, window) if part)
