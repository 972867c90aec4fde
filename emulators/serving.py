"""An emulator's HTTP server served from a daemon thread: start, stop, and ``with`` for both."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import TypeVar

Served = TypeVar("Served", bound="ThreadServed")


class ThreadServed:
    """Base of the emulators: subclasses build their server in ``start`` and hand it to
    :meth:`_serve`; :meth:`stop` releases the port."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving; returns the base URL."""
        raise NotImplementedError

    def _serve(self, server: ThreadingHTTPServer, name: str) -> None:
        """Serve ``server`` from a daemon thread (its request threads are daemons too)."""
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port (a second call does nothing)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self: Served) -> Served:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
