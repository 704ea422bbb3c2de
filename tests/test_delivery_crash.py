"""Slack delivery across crashes: a driftline run, in a process of its own, is killed with SIGKILL
at each step of delivering a message, then a normal run follows, and the fake Slack's record of
posted messages must hold every alert exactly once (bot token), or at least once (incoming
webhook).

The kills are timed by what the fake Slack (tests/slack_server.py) observes, not by a hook in
driftline: it holds a request until the test has killed the client, or kills it right after
answering. The killed runs are ``driftline.api.run`` in processes of their own. The steps of one
message:

``claimed``
    The claim is committed (``sending``) and the post has reached Slack, which holds it and never
    posts it: the post is lost with the process. The next run looks, finds nothing, posts.
``posted``
    Slack posted the message and holds back its answer: the next run finds the message by the id
    in its metadata and records its ts instead of posting again.
``answered``
    Slack answered and the process is killed at once, as the answer arrives: before the outcome
    is written (the database shows the claim still there) or, rarely, just after.
``looking up``
    After a ``posted`` crash, the next run is killed too, while it asks Slack
    (``conversations.history``, or ``conversations.replies`` for a thread) whether the message
    arrived.
``posting again``
    After a ``claimed`` crash, the next run looks, finds nothing, and is killed while posting again.

The project's one feature ``c`` takes "a" and "b"; a day at 70/30 warns (PSI 0.17) against the
50/50 reference week, so what each day says is known in advance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from alert_story import DAY, OK, START, WARN, events, story_monitor
from slack_server import FakeSlack, Received, Reply, answer_then, hold, server_error, slack_error

from driftline import api


MONITOR = story_monitor('      channel: "#growth-ml"\n      cooldown: 1d\n')

# How long a step may take to show (a run starting on a busy machine): a bound, not a timing.
PATIENCE = 120.0
# A run in a process of its own, started ahead with driftline imported (as a scheduler's worker
# would be), that runs ``driftline.api.run(project, at=...)`` when told on stdin.
WORKER = """
import sys
from driftline import api
project, at = sys.stdin.readline().split()
api.run(project, at=at)
"""


def a_project(make_project, story: list[float], slack_settings: dict):
    return make_project(monitors={"leads": MONITOR}, tables={"events": events(story, rows_per_day=60)}, settings={"notify": {"slack": slack_settings}})


def bot_token(slack: FakeSlack) -> dict:
    return {"token": slack.token, "channel": "#ml-alerts", "base_url": slack.base_url}


def at(day: int) -> datetime:
    """Just after day ``day`` ended: the run evaluates that day's window."""
    return START + (day + 1) * DAY


def alerts(project, columns: str) -> list[tuple]:
    """``columns`` of every row of driftline_alerts, read straight from the DuckDB file (no run
    holds it: the killed ones are dead)."""
    with duckdb.connect(str(project.warehouse), read_only=True) as con:
        return con.execute(f"select {columns} from driftline_alerts").fetchall()


def normal_run(project, day: int) -> None:
    """The run after a crash, at the same time: no new window, only the outbox to deliver."""
    api.run(project.root, at=at(day))


# -- killing a run at a step --------------------------------------------------------------------


class Killer:
    """Starts ``driftline run`` processes and kills them where the fake Slack says; counts the
    kills per step and what the database held after each."""

    def __init__(self, slack: FakeSlack, project, tmp_path: Path):
        self.slack, self.project, self.tmp_path = slack, project, tmp_path
        self.kills: Counter[str] = Counter()
        self.left: Counter[tuple[str, str]] = Counter()  # (step, notify_status) after the kill
        self.started = 0
        self.running: subprocess.Popen | None = None
        self.spare = self._worker()  # imports driftline while the test does other things

    def close(self) -> None:
        self.spare.kill()
        self.spare.wait()

    def kill_at(self, day: int, step: str, reply: Reply, shows: str, claims: bool = True) -> None:
        """Run day ``day`` in a process; once the fake Slack has a request of method ``shows``
        under ``reply`` (held), kill the process, then let the request go. ``claims``: the
        message was claimed before it was posted, so the database must show it ``sending``."""
        seen = len(self.slack.received)
        process = self._start(day)
        try:
            self._wait_for(lambda: any(r.endpoint == shows for r in self.slack.received[seen:]), process)
            process.send_signal(signal.SIGKILL)
            assert process.wait(timeout=PATIENCE) == -signal.SIGKILL
        finally:
            reply.release()
            if process.poll() is None:
                process.kill()
                process.wait()
        statuses = self._count(step)
        assert not claims or "sending" in statuses, (step, statuses)

    def kill_on_answer(self, day: int, step: str) -> None:
        """Run day ``day`` in a process killed as soon as Slack has answered its first post."""
        self.slack.script(answer_then(lambda: self.running.send_signal(signal.SIGKILL)))
        process = self._start(day)
        assert process.wait(timeout=PATIENCE) == -signal.SIGKILL, process.log.read_text()
        self._count(step)

    def _start(self, day: int) -> subprocess.Popen:
        """Tell the spare worker to run day ``day``; a new spare starts importing meanwhile."""
        process = self.running = self.spare  # known before it can reach Slack
        process.stdin.write(f"{self.project.root} {at(day).isoformat()}\n")
        process.stdin.close()
        self.spare = self._worker()
        return process

    def _worker(self) -> subprocess.Popen:
        self.started += 1
        path = self.tmp_path / f"run-{self.started}.log"
        with path.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=log, env=dict(os.environ), text=True,
            )
        worker.log = path  # what it wrote to stderr, to show when it ends unexpectedly
        return worker

    def _wait_for(self, condition, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + PATIENCE
        while not condition():
            assert process.poll() is None, f"the run ended before the step: {process.log.read_text()}"
            assert time.monotonic() < deadline, "the step did not show"
            time.sleep(0.02)

    def _count(self, step: str) -> set[str]:
        """Count the kill, and the episodes' notify_status it left; returns those statuses."""
        self.kills[step] += 1
        statuses = [status for (status,) in alerts(self.project, "notify_status")]
        for status in statuses:
            self.left[step, status] += 1
        return set(statuses)


def crash(killer: Killer, day: int, step: str, thread: bool) -> None:
    """Kill the run of day ``day`` at ``step`` (see the module docstring); ``thread``: the message
    is a reply in a thread, looked up with conversations.replies."""
    slack, label = killer.slack, ("resolution " if thread else "announcement ") + step
    if step == "answered":
        killer.kill_on_answer(day, label)
        return
    first = hold(post=step in ("posted", "looking up"))
    slack.script(first)
    killer.kill_at(day, label, first, "chat.postMessage")
    if step == "looking up":
        lookup = hold(method="conversations.replies" if thread else "conversations.history")
        slack.script(lookup)
        killer.kill_at(day, label, lookup, lookup.method)
    elif step == "posting again":
        again = hold()
        slack.script(again)
        killer.kill_at(day, label, again, "chat.postMessage")


STEPS = ["claimed", "posted", "answered", "looking up", "posting again"]
# The step each pair of days is killed at: the warn day's announcement, then the ok day's
# resolutions in its thread. Every step on both sides, then the single kills once more.
SCHEDULE = list(zip(STEPS, STEPS)) + [("answered", "answered"), ("posted", "claimed")]


# -- what Slack has ----------------------------------------------------------------------------


def posts(slack: FakeSlack) -> list[Received]:
    return [r for r in slack.delivered if r.endpoint == "chat.postMessage"]


def window_of(day: int) -> str:
    """How a message names the window of day ``day``."""
    return f"{START + day * DAY:%Y-%m-%d} → {START + (day + 1) * DAY:%Y-%m-%d} UTC"


def assert_delivered_once(project, slack: FakeSlack) -> None:
    """No message went out twice (by the id in its metadata), and the outbox is empty."""
    ids = Counter(r.metadata["event_payload"]["message_id"] for r in posts(slack))
    assert all(n == 1 for n in ids.values()), ids
    assert set(alerts(project, "notify_status, payload")) == {("sent", None)}


# -- the tests ----------------------------------------------------------------------------------


def test_every_message_is_posted_exactly_once_whatever_the_step_a_run_is_killed_at(make_project, slack, killer_for):
    project = a_project(make_project, [WARN, OK] * len(SCHEDULE), bot_token(slack))
    killer = killer_for(project)

    for pair, (announce_step, resolve_step) in enumerate(SCHEDULE):
        warn_day, ok_day = 2 * pair, 2 * pair + 1
        crash(killer, warn_day, announce_step, thread=False)  # killed announcing two new episodes
        normal_run(project, warn_day)

        [announcement] = [r for r in posts(slack) if r.thread_ts is None and window_of(warn_day) in r.text]
        assert "2 warning" in announcement.text  # overall and region=eu, in one message
        assert_delivered_once(project, slack)

        crash(killer, ok_day, resolve_step, thread=True)  # killed resolving them, in its thread
        normal_run(project, ok_day)

        replies = [r for r in posts(slack) if r.thread_ts == announcement.ts]
        assert len(replies) == 2 and len({r.text for r in replies}) == 2, (resolve_step, [r.text for r in replies])
        assert all(r.text.startswith("Resolved: leads") for r in replies)
        assert_delivered_once(project, slack)

    assert len(posts(slack)) == 3 * len(SCHEDULE)  # none lost, none twice
    report(killer)
    assert sum(killer.kills.values()) == 18


def test_a_lookup_slack_fails_waits_for_the_next_run_and_one_it_refuses_posts_again(make_project, slack, killer_for):
    """Slack down while a run asks: the claim stays for the next run, nothing is posted blindly.
    Slack refusing to answer (the bot lacks channels:read): the message is posted again rather
    than lost, the one duplicate the missing scope allows."""
    project = a_project(make_project, [WARN, OK], bot_token(slack))
    killer = killer_for(project)
    posted = hold(post=True)
    slack.script(posted)
    killer.kill_at(0, "posted", posted, "chat.postMessage")

    slack.script(server_error(503))  # the run's first call: conversations.list
    [note] = api.run(project.root, at=at(0)).notifications
    assert note.status == "retry" and "could not check whether Slack has" in note.error and "HTTP 503" in note.error
    assert set(alerts(project, "notify_status")) == {("sending",)}
    normal_run(project, 0)
    assert len(posts(slack)) == 1
    assert_delivered_once(project, slack)

    posted = hold(post=True)
    slack.script(posted)
    killer.kill_at(1, "posted", posted, "chat.postMessage")
    slack.script(slack_error("missing_scope"))  # the lookup's first call is refused
    normal_run(project, 1)
    announcement, *replies = posts(slack)
    assert {r.thread_ts for r in replies} == {announcement.ts}
    assert sorted(Counter(r.text for r in replies).values()) == [1, 2]  # the killed one twice, the other once


def test_a_webhook_cannot_be_asked_so_a_crash_after_its_post_repeats_the_message(make_project, slack, killer_for):
    """Incoming webhooks are at least once (SPEC §5): Slack posted, the process died before writing
    that down, and nothing can tell the next run that the message is already there."""
    project = a_project(make_project, [WARN], {"webhook_url": slack.webhook_url})
    killer = killer_for(project)
    posted = hold(method="webhook", post=True)
    slack.script(posted)

    killer.kill_at(0, "webhook posted", posted, "webhook", claims=False)
    normal_run(project, 0)

    first, second = slack.delivered
    assert first.text == second.text and "2 warning" in first.text
    assert set(alerts(project, "notify_status")) == {("sent",)}


def report(killer: Killer) -> None:
    """Kills per step, and the notify_status of the episodes each left behind (shown with -s)."""
    for step, kills in killer.kills.items():
        left = {status: n for (s, status), n in killer.left.items() if s == step}
        print(f"{step}: {kills} kills, episodes left {left}")


@pytest.fixture
def killer_for(slack, tmp_path):
    """A function giving the :class:`Killer` of a project; its spare process ends with the test."""
    made: list[Killer] = []

    def make(project) -> Killer:
        made.append(Killer(slack, project, tmp_path))
        return made[-1]

    yield make
    for killer in made:
        killer.close()


@pytest.fixture(autouse=True)
def _loopback_without_proxy(no_proxy):
    """The runs, in this process and in the killed ones, talk to 127.0.0.1 directly."""
