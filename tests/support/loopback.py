"""An ASGI app served by uvicorn in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn

from tests.support.ports import free_port, wait_until


class LoopbackApp:
    """``with LoopbackApp(app) as served: served.url``; stops the server on exit."""

    def __init__(self, app: Any) -> None:
        self.app = app
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LoopbackApp:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout_s=30, what=f"uvicorn on {self.url}")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
