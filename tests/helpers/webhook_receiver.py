"""A real HTTP server that receives webhooks, for tests (http.server in a thread).

It checks nothing itself: it records every request (path, headers, body, when) and answers as
its script says per path - a status code, or a pause longer than the sender waits - so tests
check signatures, timestamps, ordering and retries on what a CRM would really have received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The server's address, what it received, and its script."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    # path -> answers to give in turn ("200", "500", "sleep:2"); the last one repeats.
    script: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _served: dict[str, int] = field(default_factory=dict)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next_answer(self, path: str) -> str:
        with self._lock:
            answers = self.script.get(path, ["200"])
            index = self._served.get(path, 0)
            self._served[path] = index + 1
            return answers[min(index, len(answers) - 1)]

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.path == path]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver on a free 127.0.0.1 port, stopped afterwards."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            answer = receiver.next_answer(self.path)
            receiver.record(
                Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
            )
            if answer.startswith("sleep:"):
                time.sleep(float(answer.split(":", 1)[1]))
                answer = "200"
            try:
                self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting (a timeout test)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
