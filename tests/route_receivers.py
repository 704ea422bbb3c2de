"""Local receivers for the alert routes beyond Slack, so that tests send over real HTTP and SMTP.

:class:`HookReceiver` is an HTTP server on 127.0.0.1 (a free port, kept across :meth:`stop` and
:meth:`start`, so a test can take it down and bring it back):

- ``POST /webhook/<name>`` takes a generic webhook request the way a careful receiver does: it
  checks ``X-Driftline-Signature`` against its own HMAC-SHA256 of the raw body with the shared
  secret (a mismatch is answered 401 and kept in :attr:`HookReceiver.bad_signatures`), and keeps
  the ``Idempotency-Key`` of every change it took, per webhook name: a key it already has is
  answered 200 and counted in :attr:`HookReceiver.duplicates`, not taken again;
- ``POST /teams/<name>`` takes a Teams incoming-webhook message and checks the Adaptive Card's
  shape (:func:`card_problem`); a bad card is answered 400 with the problem, as Teams does.

Each request takes the next scripted reply (``ok`` once there is none): ``status(n)`` answers
HTTP n without taking the request; ``hang(s)`` waits s seconds, then answers 503 without taking it
(longer than the sender's timeout: it gave up already); ``lost_answer()`` takes it, then drops the
connection without answering (the sender cannot know it arrived); ``hold()`` takes it, sets
:attr:`HookReceiver.holding` and answers 200 only once the test sets :attr:`HookReceiver.release`
(a test kills the sender in between).

:class:`MailReceiver` is an SMTP server (aiosmtpd) in a thread that keeps every message it takes.

>>> with HookReceiver(secret="s3cret") as hooks:
...     hooks.url("webhook", "retrain").startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
# The Adaptive Card element types a driftline card may use, and the fields each needs.
_CARD_ELEMENTS = {"TextBlock": ("text",), "FactSet": ("facts",)}


@dataclass(frozen=True)
class Taken:
    """A request a receiver took: its path, headers and raw body."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> dict:
        return json.loads(self.raw)


def status(code: int) -> tuple[str, int]:
    return ("status", code)


def lost_answer() -> tuple[str, int]:
    return ("lost", 0)


def hang(seconds: int) -> tuple[str, int]:
    return ("hang", seconds)


def hold() -> tuple[str, int]:
    return ("hold", 0)


class HookReceiver:
    """A webhook and Teams receiver; see the module docstring."""

    def __init__(self, secret: str):
        self.secret = secret.encode("utf-8")
        self.taken: list[Taken] = []  # every change taken once (webhook) or card (Teams)
        self.keys: dict[str, list[str]] = {}  # per webhook name, the idempotency keys taken, in order
        self.duplicates: list[str] = []  # keys sent again after they were taken
        self.bad_signatures: list[bytes] = []
        self.card_problems: list[str] = []
        self.requests = 0
        self._replies: deque[tuple[str, int]] = deque()
        self.holding, self.release = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.start()

    def url(self, kind: str, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{kind}/{name}"

    def script(self, *replies: tuple[str, int]) -> None:
        self._replies.extend(replies)

    def start(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: a sender now finds the port closed (connection refused)."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take(self, handler: BaseHTTPRequestHandler) -> tuple[int, str]:
        """What to answer to one request (the body is read already)."""
        raw, path = handler.raw, handler.path
        headers = {k: v for k, v in handler.headers.items()}
        with self._lock:
            self.requests += 1
            reply = self._replies.popleft() if self._replies else ("ok", 200)
            if reply[0] == "status":
                return reply[1], "scripted"
            if reply[0] == "hang":
                return -reply[1], "too late"
            if path.startswith("/teams/"):
                problem = card_problem(json.loads(raw))
                if problem:
                    self.card_problems.append(problem)
                    return 400, problem
                self.taken.append(Taken(path, headers, raw))
            else:
                expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(headers.get("X-Driftline-Signature", ""), expected):
                    self.bad_signatures.append(raw)
                    return 401, "bad signature"
                key, taken = headers["Idempotency-Key"], self.keys.setdefault(path.rsplit("/", 1)[-1], [])
                if key in taken:
                    self.duplicates.append(key)
                else:
                    taken.append(key)
                    self.taken.append(Taken(path, headers, raw))
            return {"lost": 0, "hold": 1}.get(reply[0], 200), "ok"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                self.raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code, text = receiver._take(self)
                if code < 0:  # hang: answer (503) only after the sender stopped waiting
                    time.sleep(-code)
                    code = 503
                if code == 1:  # hold: taken; answered once the test has killed the sender
                    receiver.holding.set()
                    receiver.release.wait()
                    code = 200
                if code == 0:  # taken, but the answer is lost on the way back
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                body = text.encode("utf-8")
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def card_problem(message: dict) -> str | None:
    """What is wrong with a Teams webhook message carrying an Adaptive Card, or None."""
    if message.get("type") != "message" or not isinstance(message.get("attachments"), list):
        return "expected {type: message, attachments: [...]}"
    [attachment] = message["attachments"]
    if attachment.get("contentType") != ADAPTIVE_CARD:
        return f"attachment contentType must be {ADAPTIVE_CARD}"
    card = attachment.get("content") or {}
    if card.get("type") != "AdaptiveCard" or not str(card.get("version", "")).startswith("1."):
        return "content must be an AdaptiveCard with a 1.x version"
    for element in card.get("body", []):
        needs = _CARD_ELEMENTS.get(element.get("type"))
        if needs is None or any(not element.get(field) for field in needs):
            return f"unknown or incomplete card element {element!r}"
        if element["type"] == "FactSet" and not all({"title", "value"} <= set(f) for f in element["facts"]):
            return "each fact needs a title and a value"
    for action in card.get("actions", []):
        if action.get("type") != "Action.OpenUrl" or not str(action.get("url", "")).startswith("http"):
            return f"bad action {action!r}"
    return None


class MailReceiver:
    """An SMTP server (aiosmtpd) on 127.0.0.1 in a thread, keeping every message it takes;
    :meth:`stop` and :meth:`start` take it down and bring it back on the same port. With
    ``login=(user, password)`` it wants an AUTH LOGIN/PLAIN with those; with ``tls`` (a server
    SSL context) it wants STARTTLS before anything else, login included."""

    def __init__(self, login: tuple[str, str] | None = None, tls=None):
        self.login, self.tls = login, tls
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = _free_port()
        self._controller = None
        self.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
                receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                receiver.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
                return "250 Message accepted for delivery"

        options = {}
        if self.login is not None:
            options = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": self.tls is not None}
        if self.tls is not None:
            options.update(tls_context=self.tls, require_starttls=True)
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        given = (auth_data.login.decode(), auth_data.password.decode())
        return AuthResult(success=given == self.login, handled=False)  # False: the server answers 535

    def __enter__(self) -> MailReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def self_signed_tls(directory) -> tuple:
    """A server SSL context with a self-signed certificate for 127.0.0.1, and the certificate's
    path (for a client to trust it, e.g. through SSL_CERT_FILE)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
