"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for reliability tests.

Every request is forwarded to ``upstream`` unless a rule fires. Rules match on method and a path
regex and fire a bounded number of times (``times``) with a probability (seeded, so a failing test
replays). Fault kinds:

- ``status``: answer ``status`` (500, 502, 503, 429, ...) without forwarding;
- ``status_after_forward``: forward (the server applies the request), then answer ``status`` instead
  of the real response: the ambiguous case a client must survive;
- ``drop``: close the connection without forwarding and without an answer;
- ``reset``: TCP reset (SO_LINGER 0) without forwarding;
- ``reset_after_forward``: forward, then reset instead of answering (ambiguous);
- ``delay``: wait ``delay_s`` before forwarding;
- ``drop_param``: forward without the query parameter ``param`` (a server that ignores it).

``log`` records ``(method, path, fault or None, upstream status or None)`` per request, and
``arrivals`` the ``time.monotonic()`` at which each request arrived (same order).
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

KINDS = (
    "status",
    "status_after_forward",
    "drop",
    "reset",
    "reset_after_forward",
    "delay",
    "drop_param",
)
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
}


@dataclass
class Rule:
    """One fault: what to match, what to do, how often."""

    kind: str
    method: str | None = None
    path: str | None = None  # regex searched in the request path (with query)
    times: int | None = 1  # None = unlimited
    probability: float = 1.0
    status: int = 503
    delay_s: float = 0.0
    param: str = ""
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


class FaultProxy:
    """Reverse proxy with fault rules; start() returns its URL."""

    def __init__(self, upstream: str, seed: int = 0, timeout_s: float = 30.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream {upstream!r}: expected http://host:port")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.timeout_s = timeout_s
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str | None, int | None]] = []
        self.arrivals: list[float] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add(self, kind: str, **options: Any) -> Rule:
        """Add a rule (see the module docstring); returns it so tests can read ``fired``."""
        if kind not in KINDS:
            raise ValueError(f"fault kind {kind!r}: expected one of {KINDS}")
        rule = Rule(kind=kind, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (the proxy then forwards everything)."""
        with self._lock:
            self.rules.clear()

    def faults_fired(self) -> int:
        with self._lock:
            return sum(1 for entry in self.log if entry[2] is not None)

    def _choose(self, method: str, path: str) -> Rule | None:
        with self._lock:
            self.arrivals.append(time.monotonic())
            for rule in self.rules:
                if rule.matches(method, path) and self._rng.random() < rule.probability:
                    rule.fired += 1
                    return rule
        return None

    def _record(self, method: str, path: str, fault: str | None, status: int | None) -> None:
        with self._lock:
            self.log.append((method, path, fault, status))

    def start(self) -> str:
        proxy = self

        class Handler(_ProxyHandler):
            pass

        Handler.proxy = proxy
        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{int(self._server.server_address[1])}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _without_param(path: str, name: str) -> str:
    parts = urlsplit(path)
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    )
    return parts._replace(query=query).geturl()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # resets and drops are deliberate


class _ProxyHandler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _abort(self, reset: bool) -> None:
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
        self.close_connection = True

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.proxy
        conn = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=proxy.timeout_s
        )
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.reason, response.getheaders(), data
        finally:
            conn.close()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        method, path = self.command, self.path
        rule = self.proxy._choose(method, path)
        kind = rule.kind if rule else None
        if rule is not None and kind == "delay":
            time.sleep(rule.delay_s)  # the injected fault itself, not test synchronisation
        if rule is not None and kind == "drop_param":
            self.path = _without_param(self.path, rule.param)
        if rule is not None and kind in ("drop", "reset"):
            self.proxy._record(method, path, kind, None)
            self._abort(reset=kind == "reset")
            return
        if rule is not None and kind == "status":
            self.proxy._record(method, path, kind, None)
            self._reply(rule.status, "Injected", [], b'{"message":"injected fault"}')
            return
        try:
            status, reason, headers, data = self._forward(body)
        except OSError:
            self.proxy._record(method, path, "upstream_unreachable", None)
            self._reply(502, "Bad Gateway", [], b'{"message":"Bad Gateway","status":"502"}')
            return
        self.proxy._record(method, path, kind, status)
        if rule is not None and kind == "reset_after_forward":
            self._abort(reset=True)
            return
        if rule is not None and kind == "status_after_forward":
            self._reply(rule.status, "Injected", [], b'{"message":"injected fault"}')
            return
        self._reply(status, reason, headers, data)

    def _reply(self, status: int, reason: str, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() not in (
                "content-length",
                "date",
                "server",
            ):
                self.send_header(key, value)
        if not any(k.lower() == "content-type" for k, _ in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
