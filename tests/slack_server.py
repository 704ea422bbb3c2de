"""A local stand-in for Slack, so that tests run the real slack-sdk client over real HTTP.

It serves the endpoints driftline uses, on 127.0.0.1 and a free port:

- ``POST /api/chat.postMessage`` (Web API; JSON or form body; ``Authorization: Bearer <token>``),
  answering like Slack: HTTP 200 with ``{"ok": true, "channel": <id>, "ts": ...}`` or
  ``{"ok": false, "error": ...}``. It keeps the message's ``metadata``; ``ts`` are wall-clock
  times, as Slack's are;
- ``GET /api/conversations.list`` (channel ids and names, paged with ``cursor``),
  ``GET /api/conversations.history`` (a channel's messages, newest first, after ``oldest``) and
  ``GET /api/conversations.replies`` (a thread: its parent, then the replies, oldest first), which
  want a channel *id* and show each message's ``metadata`` (``event_type``, ``event_payload``)
  only when ``include_all_metadata`` is set, like Slack;
- ``POST /hooks/...`` (an incoming webhook), answering ``ok`` or an HTTP error whose body is the
  error code.

Every channel name exists (it gets an id the first time it is named). Each request takes the next
scripted :class:`Reply` meant for its method (``ok`` once there is none), so a test can inject a
500, a 429 with Retry-After, a hang longer than the client's timeout, a dropped connection or a
Slack error code, hold a request until the test has killed the client (:func:`hold`), or act
right after answering (:func:`answer_then`); then check :attr:`FakeSlack.delivered` to prove a
message arrived exactly once. Like Slack, it rejects a wrong token and messages that break Block
Kit's limits.

>>> with FakeSlack() as slack:
...     slack.script(server_error(500))
...     slack.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlsplit

WEB_API_PREFIX = "/api/"
WEBHOOK_PREFIX = "/hooks/"


# --------------------------------------------------------------------------------------------
# Scripted replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    kind: str  # ok | http | hang | drop | slack_error | hold
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0  # for hang: how long to keep the client waiting
    error: str | None = None  # for slack_error: the Slack error code
    method: str | None = None  # only for requests of this method (chat.postMessage...); None: any
    post: bool = False  # for hold: post the message before holding the answer back
    gate: threading.Event = field(default_factory=threading.Event, compare=False)  # for hold
    then: Callable[[], None] | None = field(default=None, compare=False)  # for ok: run after answering

    def release(self) -> None:
        """Let a held request go: its connection closes without an answer."""
        self.gate.set()


OK = Reply("ok")


def http_error(status: int, body: str = "", headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """Answer with this HTTP status and body, whatever the request."""
    return Reply("http", status=status, body=body, headers=headers)


def server_error(status: int = 500) -> Reply:
    """A 5xx from Slack's edge, with an HTML body as real load balancers send."""
    return http_error(status, "<html><body>Internal Server Error</body></html>")


def rate_limited(retry_after: int = 1) -> Reply:
    """HTTP 429 with a Retry-After header, as Slack rate-limits."""
    body = json.dumps({"ok": False, "error": "ratelimited"})
    return http_error(429, body, (("Retry-After", str(retry_after)),))


def hang(seconds: float) -> Reply:
    """Read the request, then answer nothing for ``seconds`` and close the connection."""
    return Reply("hang", seconds=seconds)


def drop() -> Reply:
    """Read the request, then close the connection without answering (the message may be posted)."""
    return Reply("drop")


def hold(method: str = "chat.postMessage", post: bool = False) -> Reply:
    """Read a request of ``method``, post the message first if ``post``, then answer nothing
    until :meth:`Reply.release` (or the server stops), and close the connection: a test kills the
    client meanwhile. Without ``post`` the message never reaches "Slack"."""
    return Reply("hold", method=method, post=post)


def answer_then(action: Callable[[], None], method: str = "chat.postMessage") -> Reply:
    """Answer a request of ``method`` as usual, then, once the answer is written, run ``action``."""
    return Reply("ok", method=method, then=action)


def slack_error(code: str, webhook_status: int = 400) -> Reply:
    """A Slack error: ``{"ok": false, "error": code}`` from the Web API, HTTP 4xx from a webhook."""
    return Reply("slack_error", status=webhook_status, error=code)


# --------------------------------------------------------------------------------------------
# What the server saw
# --------------------------------------------------------------------------------------------


@dataclass
class Received:
    """One request, and whether the server accepted (that is, "posted") its message."""

    endpoint: str  # chat.postMessage | webhook
    channel: str | None
    text: str | None
    blocks: list | None
    thread_ts: str | None
    authorization: str | None
    answer: str  # ok, or what went wrong: http 500, hang, invalid_auth, invalid_blocks...
    ts: str | None = None
    channel_id: str | None = None
    metadata: dict | None = None  # {"event_type": ..., "event_payload": {...}}, as posted

    @property
    def delivered(self) -> bool:
        return self.answer == "ok"


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class FakeSlack:
    """The fake Slack; use as a context manager (or call start() and stop())."""

    token: str = "xoxb-test-token-123"
    webhook_path: str = "/hooks/T000/B000/webhooksecret"
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._last_ts = 0.0
        self._channels: dict[str, str] = {}  # name (without #) -> id
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        # Loopback only, port chosen by the OS: nothing outside this machine can reach it.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging requests, stop serving and close the socket."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- what tests use ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """For ``WebClient(base_url=...)`` / ``notify.slack.base_url``."""
        return f"http://127.0.0.1:{self._server.server_port}{WEB_API_PREFIX}"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{self.webhook_path}"

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next requests, in order; afterwards every request gets ``ok``."""
        with self._lock:
            self._script.extend(replies)

    @property
    def delivered(self) -> list[Received]:
        """The messages the server accepted, in order."""
        with self._lock:
            return [r for r in self.received if r.delivered]

    # -- used by the request handler --------------------------------------------------------

    def next_reply(self, method: str) -> Reply:
        """The first scripted reply meant for ``method`` (or for any method), else ``ok``."""
        with self._lock:
            for reply in self._script:
                if reply.method in (None, method):
                    self._script.remove(reply)
                    return reply
            return OK

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def next_ts(self) -> str:
        """The wall-clock time, unique to the microsecond, as Slack's message timestamps."""
        with self._lock:
            self._last_ts = max(time.time(), self._last_ts + 1e-6)
            return f"{self._last_ts:.6f}"

    def channel_id(self, channel: str) -> str:
        """The id of a channel named by id or name (every name exists: it gets one now)."""
        with self._lock:
            if channel in self._channels.values():
                return channel
            name = channel.lstrip("#")
            return self._channels.setdefault(name, f"C{len(self._channels) + 1:010d}")

    def channels(self) -> list[dict]:
        with self._lock:
            return [{"id": id_, "name": name, "is_archived": False} for name, id_ in self._channels.items()]

    def known_channel(self, channel_id: str) -> bool:
        with self._lock:
            return channel_id in self._channels.values()

    def wait_for(self, gate: threading.Event) -> None:
        """Wait until ``gate`` is set or the server stops."""
        while not (gate.is_set() or self._stopping.is_set()):
            gate.wait(0.05)

    def wait(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        self._stopping.wait(seconds)


def _handler_for(slack: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(_SlackHandler):
        fake = slack

    return Handler


class _SlackHandler(BaseHTTPRequestHandler):
    fake: FakeSlack

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        """Keep test output clean."""

    def do_POST(self) -> None:
        payload = self._payload()
        if self.path.startswith(WEB_API_PREFIX + "chat.postMessage"):
            self._post_message(payload)
        elif self.path.startswith(WEBHOOK_PREFIX):
            self._webhook(payload)
        else:
            self._read_method(payload)

    def do_GET(self) -> None:
        """Web API methods that read: slack-sdk sends their arguments in the query string."""
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        self._read_method(query)

    # -- posting ----------------------------------------------------------------------------

    def _post_message(self, payload: dict) -> None:
        reply = self.fake.next_reply("chat.postMessage")
        received = self._received("chat.postMessage", payload)
        if reply.kind == "hold":
            self._hold(reply, received, payload)
            return
        if self._answered_by_script(reply, received):
            return
        error = (
            reply.error
            or self._auth_problem()
            or ("channel_not_found" if not payload.get("channel") else None)
            or block_kit_problem(payload.get("text"), payload.get("blocks"))
        )
        # Record before answering: the client (and the test) may look as soon as it has the answer.
        if error:
            received.answer = error
            self.fake.record(received)
            self._send(200, json.dumps({"ok": False, "error": error}))
        else:
            self._accept(received, payload)
            message = {"text": payload.get("text"), "ts": received.ts, "metadata": received.metadata}
            body = {"ok": True, "channel": received.channel_id, "ts": received.ts, "message": message}
            self._send(200, json.dumps(body))
        if reply.then is not None:
            reply.then()

    def _accept(self, received: Received, payload: dict) -> None:
        """Post the message: it gets its ts and shows in the channel's history."""
        received.answer, received.ts = "ok", self.fake.next_ts()
        if received.endpoint == "chat.postMessage":
            received.channel_id = self.fake.channel_id(payload["channel"])
            metadata = payload.get("metadata")
            received.metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        self.fake.record(received)

    def _hold(self, reply: Reply, received: Received, payload: dict) -> None:
        """Post (or not), then keep the client waiting until released, and answer nothing."""
        if reply.post:
            self._accept(received, payload)
            received.answer = "ok"  # posted: the client just never hears so
        else:
            received.answer = "held"
            self.fake.record(received)
        self.fake.wait_for(reply.gate)
        self.close_connection = True

    def _webhook(self, payload: dict) -> None:
        reply = self.fake.next_reply("webhook")
        received = self._received("webhook", payload)
        if reply.kind == "hold":
            self._hold(reply, received, payload)
            return
        if self._answered_by_script(reply, received):
            return
        if self.path != self.fake.webhook_path:
            error, status = "no_service", 404
        elif reply.error:
            error, status = reply.error, reply.status
        else:
            error, status = block_kit_problem(payload.get("text"), payload.get("blocks")), 400
        if error:
            received.answer = error
            self.fake.record(received)
        else:
            self._accept(received, payload)
        self._send(status if error else 200, error or "ok", content_type="text/html")
        if reply.then is not None:
            reply.then()

    # -- reading ----------------------------------------------------------------------------

    def _read_method(self, args: dict) -> None:
        """conversations.list, .history and .replies; anything else is unknown_method."""
        method = urlsplit(self.path).path[len(WEB_API_PREFIX):]
        readers = {
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
        }
        if not self.path.startswith(WEB_API_PREFIX) or method not in readers:
            self._send(404, json.dumps({"ok": False, "error": "unknown_method"}))
            return
        reply = self.fake.next_reply(method)
        received = Received(method, args.get("channel"), None, None, args.get("ts"), self.headers.get("Authorization"), "")
        if reply.kind == "hold":
            self._hold(reply, received, args)
            return
        if self._answered_by_script(reply, received):
            return
        error = reply.error or self._auth_problem()
        if not error and method != "conversations.list" and not self.fake.known_channel(args.get("channel", "")):
            error = "channel_not_found"  # like Slack: these methods want the channel's id, not its name
        received.answer = error or "ok"
        self.fake.record(received)
        if error:
            self._send(200, json.dumps({"ok": False, "error": error}))
        else:
            self._send(200, json.dumps(readers[method](args)))

    def _conversations_list(self, args: dict) -> dict:
        return _page(self.fake.channels(), "channels", args)

    def _conversations_history(self, args: dict) -> dict:
        """Top-level messages after ``oldest``, newest first; a thread's parent shows its thread_ts."""
        parents = {r.thread_ts for r in self._posted(args["channel"]) if r.thread_ts}
        shown = [r for r in self._posted(args["channel"]) if r.thread_ts is None and _after(r.ts, args)]
        messages = [_message(r, args, r.ts if r.ts in parents else None) for r in reversed(shown)]
        return _page(messages, "messages", args)

    def _conversations_replies(self, args: dict) -> dict:
        """The thread of ``ts``: its parent first, then the replies after ``oldest``, oldest first."""
        posted = self._posted(args["channel"])
        parent = [_message(r, args, r.ts) for r in posted if r.ts == args.get("ts") and r.thread_ts is None]
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        replies = [_message(r, args, r.thread_ts) for r in posted if r.thread_ts == args["ts"] and _after(r.ts, args)]
        return _page(parent + replies, "messages", args)

    def _posted(self, channel_id: str) -> list[Received]:
        return [r for r in self.fake.delivered if r.endpoint == "chat.postMessage" and r.channel_id == channel_id]

    # -- helpers ----------------------------------------------------------------------------

    def _answered_by_script(self, reply: Reply, received: Received) -> bool:
        """Handle the failure replies that do not depend on the request: HTTP errors and hangs."""
        if reply.kind == "http":
            received.answer = f"http {reply.status}"
            self.fake.record(received)
            self._send(reply.status, reply.body, headers=reply.headers)
            return True
        if reply.kind in ("hang", "drop"):
            received.answer = reply.kind
            self.fake.record(received)
            self.fake.wait(reply.seconds)
            self.close_connection = True  # answer nothing at all
            return True
        return False

    def _payload(self) -> dict:
        """The request body, JSON or form-encoded (where blocks is a JSON string)."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8") if length else ""
        if "json" in (self.headers.get("Content-Type") or ""):
            return json.loads(raw or "{}")
        payload = {key: values[0] for key, values in parse_qs(raw).items()}
        if isinstance(payload.get("blocks"), str):
            payload["blocks"] = json.loads(payload["blocks"])
        return payload

    def _received(self, endpoint: str, payload: dict) -> Received:
        return Received(
            endpoint=endpoint,
            channel=payload.get("channel"),
            text=payload.get("text"),
            blocks=payload.get("blocks"),
            thread_ts=payload.get("thread_ts"),
            authorization=self.headers.get("Authorization"),
            answer="",
        )

    def _auth_problem(self) -> str | None:
        authorization = self.headers.get("Authorization")
        if not authorization:
            return "not_authed"
        if authorization != f"Bearer {self.fake.token}":
            return "invalid_auth"
        return None

    def _send(
        self, status: int, body: str, headers=(), content_type: str = "application/json"
    ) -> None:
        data = body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first


def _after(ts: str, args: dict) -> bool:
    return float(ts) > float(args.get("oldest") or 0)


def _message(received: Received, args: dict, thread_ts: str | None) -> dict:
    """A message as conversations.history and .replies show it."""
    message = {"type": "message", "text": received.text, "ts": received.ts, "bot_id": "B0FAKE"}
    if thread_ts:
        message["thread_ts"] = thread_ts
    if received.metadata and args.get("include_all_metadata") in ("1", "true", True):
        message["metadata"] = received.metadata
    return message


def _page(items: list, key: str, args: dict) -> dict:
    """One page of ``items`` (``limit`` of them from the ``cursor``), and the next cursor."""
    start = int(args.get("cursor") or 0)
    limit = int(args.get("limit") or 100)
    end = start + limit
    more = end < len(items)
    body = {"ok": True, key: items[start:end], "response_metadata": {"next_cursor": str(end) if more else ""}}
    if key == "messages":
        body["has_more"] = more
    return body


# --------------------------------------------------------------------------------------------
# Slack's limits, as the real API enforces them
# --------------------------------------------------------------------------------------------


def block_kit_problem(text: str | None, blocks: list | None) -> str | None:
    """The error code Slack would answer for this text and these blocks, or None."""
    if not text and not blocks:
        return "no_text"
    if text and len(text) > 40_000:
        return "msg_too_long"
    if not blocks:
        return None
    if len(blocks) > 50:
        return "invalid_blocks"
    if _text_length(blocks) > 12_000:  # observed, undocumented: msg_blocks_too_long
        return "msg_blocks_too_long"
    action_ids = []
    for block in blocks:
        if _block_problem(block):
            return "invalid_blocks"
        action_ids += [e.get("action_id") for e in block.get("elements", []) if e.get("action_id")]
    return "invalid_blocks" if len(action_ids) != len(set(action_ids)) else None


def _block_problem(block: dict) -> bool:
    kind = block.get("type")
    if kind == "header":
        return not 0 < len(block["text"]["text"]) <= 150 or block["text"]["type"] != "plain_text"
    if kind == "section":
        return not 0 < len(block["text"]["text"]) <= 3000
    if kind == "context":
        elements = block["elements"]
        return not 0 < len(elements) <= 10 or any(len(e.get("text", "")) > 3000 for e in elements)
    if kind == "actions":
        elements = block["elements"]
        return not 0 < len(elements) <= 25 or any(_button_problem(e) for e in elements)
    return kind != "divider"


def _button_problem(button: dict) -> bool:
    url = button.get("url", "")
    return (
        button.get("type") != "button"
        or not 0 < len(button["text"]["text"]) <= 75
        or len(url) > 3000
        or not url.startswith(("http://", "https://"))
    )


def _text_length(value: object) -> int:
    """The characters of every ``text`` string in a block tree."""
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return sum(
            len(v) if k == "text" and isinstance(v, str) else _text_length(v)
            for k, v in value.items()
        )
    return 0
