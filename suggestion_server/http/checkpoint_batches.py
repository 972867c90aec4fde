"""Group commit for checkpoint posts: one writer thread stores whatever posts are waiting in one
transaction (``services.checkpoints.create_checkpoints``) and answers each.

A fleet that reports progress posts several checkpoints per observation. Served one by one,
each pays a worker-thread hand-off and a transaction of its own, which cost more CPU than its
few statements; in one process the interpreter lock makes that CPU the limit. Here a post waits
only while the writer is busy with the batch before it: an idle writer takes a lone post at
once, so under light load nothing is delayed, and under heavy load the hand-offs and commits are
shared by a batch. Answers are those of one post at a time in arrival order (each post reads
what the ones before it wrote), so idempotence and the stopping decisions are unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from suggestion_server.services.checkpoints import CheckpointPost, create_checkpoints
from suggestion_server.services.context import ServerContext

log = logging.getLogger("suggestion_server.checkpoints")

# The most posts in one transaction: bounds how long the batch holds its run locks.
MAX_BATCH = 64

Outcome = dict[str, Any] | BaseException
_Waiting = tuple[CheckpointPost, "asyncio.Future[dict[str, Any]]", asyncio.AbstractEventLoop]


class CheckpointBatches:
    """The writer of one server process (``for_app`` makes it on first use)."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._waiting: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write, name="checkpoint-writer", daemon=True)
        self._thread.start()

    async def create(self, post: CheckpointPost) -> dict[str, Any]:
        """The post's answer, or its ``ApiError`` (or the database's error) raised."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._waiting.put((post, answer, loop))
        return await answer

    def _write(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            outcomes = self._outcomes([post for post, _, _ in batch])
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Outcome]]] = {}
            for (_, answer, loop), outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(loop, []).append((answer, outcome))
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # the loop closed (server shutting down): nobody waits
                    continue

    def _outcomes(self, posts: list[CheckpointPost]) -> list[Outcome]:
        """Each post's answer. A failure of the batch's transaction itself (not a refused post)
        is retried post by post once, so one post's trouble is not every post's."""
        try:
            return list(create_checkpoints(self.ctx, posts))
        except Exception as exc:
            if len(posts) == 1:
                return [exc]
            log.warning("checkpoint batch of %s failed (%s); posting one by one", len(posts), exc)
        outcomes: list[Outcome] = []
        for post in posts:
            try:
                outcomes.extend(create_checkpoints(self.ctx, [post]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes


def _settle(settled: list[tuple[asyncio.Future[dict[str, Any]], Outcome]]) -> None:
    for answer, outcome in settled:
        if answer.done():  # the request went away (client disconnected)
            continue
        if isinstance(outcome, BaseException):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)


_CREATED = threading.Lock()


def for_app(state: Any, ctx: ServerContext) -> CheckpointBatches:
    """The app's writer (``state``: the app's ``state``), started on the first checkpoint."""
    batches: CheckpointBatches | None = getattr(state, "checkpoint_batches", None)
    if batches is None:
        with _CREATED:
            batches = getattr(state, "checkpoint_batches", None)
            if batches is None:
                batches = CheckpointBatches(ctx)
                state.checkpoint_batches = batches
    return batches
