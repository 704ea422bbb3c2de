"""A local stand-in for Slack, so that tests run the real slack-sdk client over real HTTP.

It serves the two endpoints driftline uses, on 127.0.0.1 and a free port:

- ``POST /api/chat.postMessage`` (Web API; JSON or form body; ``Authorization: Bearer <token>``),
  answering like Slack: HTTP 200 with ``{"ok": true, "ts": ...}`` or
  ``{"ok": false, "error": ...}``;
- ``POST /hooks/...`` (an incoming webhook), answering ``ok`` or an HTTP error whose body is the
  error code.

Each request takes the next scripted :class:`Reply` (``ok`` once the script is empty), so a test
can inject a 500, a 429 with Retry-After, a hang longer than the client's timeout, a dropped
connection or a Slack error code, then check :attr:`FakeSlack.delivered` to prove a message arrived exactly once. Like Slack,
it rejects a wrong token and messages that break Block Kit's limits.

>>> with FakeSlack() as slack:
...     slack.script(server_error(500))
...     slack.base_url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

WEB_API_PREFIX = "/api/"
WEBHOOK_PREFIX = "/hooks/"


# --------------------------------------------------------------------------------------------
# Scripted replies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    kind: str  # ok | http | hang | drop | slack_error
    status: int = 200
    body: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0  # for hang: how long to keep the client waiting
    error: str | None = None  # for slack_error: the Slack error code


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
        self._messages_posted = 0
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

    def next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else OK

    def record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def next_ts(self) -> str:
        with self._lock:
            self._messages_posted += 1
            return f"{1760000000 + self._messages_posted}.{self._messages_posted:06d}"

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
            self._send(404, json.dumps({"ok": False, "error": "unknown_method"}))

    # -- the two endpoints ------------------------------------------------------------------

    def _post_message(self, payload: dict) -> None:
        reply = self.fake.next_reply()
        received = self._received("chat.postMessage", payload)
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
            received.answer, received.ts = "ok", self.fake.next_ts()
            self.fake.record(received)
            message = {"text": payload.get("text")}
            body = {"ok": True, "channel": "C0123456789", "ts": received.ts, "message": message}
            self._send(200, json.dumps(body))

    def _webhook(self, payload: dict) -> None:
        reply = self.fake.next_reply()
        received = self._received("webhook", payload)
        if self._answered_by_script(reply, received):
            return
        if self.path != self.fake.webhook_path:
            error, status = "no_service", 404
        elif reply.error:
            error, status = reply.error, reply.status
        else:
            error, status = block_kit_problem(payload.get("text"), payload.get("blocks")), 400
        received.answer = error or "ok"
        self.fake.record(received)
        self._send(status if error else 200, error or "ok", content_type="text/html")

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
