"""A real webhook receiver on loopback that verifies every request with ``standardwebhooks``.

Each path (``/a``, ``/b``...) is one receiving endpoint with its own secret and its own
script of answers; every request is recorded with its ``webhook-id``, whether its signature
verified, and its body. The receiver can be created before it listens (``down``), so a
sender meets a refused connection on that port until :meth:`Receiver.start`.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Answer:
    """What the receiver does with one request: wait ``sleep`` seconds, then answer; with
    ``trickle``, send the body one byte at a time, that many seconds apart."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"
    sleep: float = 0.0
    trickle: float = 0.0


@dataclass
class Received:
    path: str
    webhook_id: str | None
    verified: bool
    error: str | None
    body: str
    headers: dict[str, str]
    status: int  # what the receiver answered

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def free_port() -> int:
    """A free port below the ephemeral range: while nothing listens on it, a sender's own
    outgoing connections can never land on it (a TCP self-connect would occupy it)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low // 2), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.secrets: dict[str, str] = {}
        self.scripts: dict[str, deque[Answer]] = {}
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/a") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, secret: str) -> None:
        """Receive on ``path``, verifying with ``secret`` (whsec_...)."""
        with self.lock:
            self.secrets[path] = secret

    def script(self, path: str, *answers: Answer | int) -> None:
        """Answer the next requests on ``path`` so, in order; then 200."""
        with self.lock:
            self.scripts.setdefault(path, deque()).extend(
                a if isinstance(a, Answer) else Answer(status=a) for a in answers
            )

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    # -- lifecycle

    @property
    def up(self) -> bool:
        return self._server is not None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                receiver._handle(self, raw)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- one request

    def _handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body = raw.decode("utf-8", "replace")
        with self.lock:
            secret = self.secrets.get(path)
            script = self.scripts.get(path)
            answer = script.popleft() if script else Answer()
        error: str | None = None
        if secret is None:
            error = f"no secret for {path}"
        else:
            try:
                Webhook(secret).verify(raw, headers)
            except WebhookVerificationError as exc:
                error = str(exc) or type(exc).__name__
        record = Received(
            path=path,
            webhook_id=headers.get("webhook-id"),
            verified=error is None,
            error=error,
            body=body,
            headers=headers,
            status=answer.status,
        )
        with self.lock:
            self.received.append(record)
        if answer.sleep:
            time.sleep(answer.sleep)
        payload = answer.body.encode()
        try:
            handler.send_response(answer.status)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(payload)))
            handler.end_headers()
            if answer.trickle:
                for i in range(len(payload)):
                    handler.wfile.write(payload[i : i + 1])
                    handler.wfile.flush()
                    time.sleep(answer.trickle)
            else:
                handler.wfile.write(payload)
        except OSError:  # the sender gave up (timeout) and closed the connection
            pass
