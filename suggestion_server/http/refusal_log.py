"""A refused request (401/403 about its token): one precise log line and one more in its
reason's count; the caller's answer is left exactly as it was.

The line names the reason, the token's id when the server knows it, the method and the route
template (never the path's values nor the token itself), so an operator can tell a stolen
value of a revoked token from a fleet still holding a rotated-out one.

Counts are added up in memory and written to the database at most once per ``FLUSH_S`` per
process (the first refusal after a quiet second at once), so a flood of bad tokens costs no
write per request; a process that stops loses at most its last second of counts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

from starlette.concurrency import run_in_threadpool

from suggestion_server.storage.database import Store
from suggestion_server.storage.refusals import add_refusals
from suggestion_server.wire.errors import ApiError

NO_TOKEN = "no_token"  # noqa: S105 (a reason: no Authorization header, 401)
FLUSH_S = 1.0

log = logging.getLogger("suggestion_server.auth")


class RefusalCounter:
    """One process's refusals not yet written, per reason, and the latest time of each."""

    def __init__(self, store: Store, flush_s: float = FLUSH_S) -> None:
        self._store = store
        self._flush_s = flush_s
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._last: dict[str, int] = {}
        self._flushed_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def add(self, reason: str, now: int) -> None:
        """Count one refusal; its write is scheduled on the running event loop."""
        with self._lock:
            self._pending[reason] += 1
            self._last[reason] = now
            if self._task is not None and not self._task.done():
                return
            delay = max(0.0, self._flushed_at + self._flush_s - time.monotonic())
            self._task = asyncio.get_running_loop().create_task(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        with self._lock:
            counts, last = self._pending, self._last
            self._pending, self._last = Counter(), {}
            self._flushed_at = time.monotonic()
        try:
            await run_in_threadpool(add_refusals, self._store, counts, last)
        except Exception as exc:  # the count is a figure for the page, never a reason to fail
            log.warning("%d refusals not counted: %s", sum(counts.values()), type(exc).__name__)


def _counter(app: Any) -> RefusalCounter:
    counter: RefusalCounter | None = getattr(app.state, "refusal_counter", None)
    if counter is None:
        counter = app.state.refusal_counter = RefusalCounter(app.state.context.store)
    return counter


def refuse(
    app: Any,
    error: ApiError,
    reason: str,
    token_id: int | None,
    method: str,
    route: str,
) -> ApiError:
    """Log and count the refusal (``app``: the FastAPI app; call it on the event loop);
    return ``error`` to raise."""
    token = "unknown" if token_id is None else str(token_id)
    log.warning(
        "refused %d: reason=%s token_id=%s route=%s %s",
        error.status,
        reason,
        token,
        method,
        route[:200],
    )
    _counter(app).add(reason, int(app.state.context.clock()))
    return error
