"""N simulated workers as coroutines on the asyncio load generator (benchmarks/_loadgen.py).

The same loop and ledger as tests/reliability/load_sim.py (create suggestion -> simulated
evaluation -> create observation, every acknowledged write recorded, certainly-open intervals
for the duplicate check), but 1,000 workers cost one event loop and ≈ 0.2 ms of client CPU per
request instead of 1,000 threads of `requests` (≈ 2.4 ms each) on the server's 2 cores.
Reconcile the result with ``tests.reliability.load_sim.reconcile``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._loadgen import Connection
from tests.reliability.load_sim import LoadConfig, LoadResult


class _Stop(Exception):
    pass


class AsyncWorkers:
    """``config.workers`` coroutines, one kept-alive connection each, against one experiment."""

    def __init__(self, url: str, token: str, experiment_id: str, config: LoadConfig) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._authorization = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
        self._base = f"/v1/experiments/{experiment_id}"
        self.config = config
        self.result = LoadResult()
        self._deadline = 0.0

    def run(self) -> LoadResult:
        """Run to the deadline (or the observation count); latencies, ledger, intervals."""
        return asyncio.run(self._run())

    async def _run(self) -> LoadResult:
        started = time.monotonic()
        self._deadline = started + self.config.duration_s
        await asyncio.gather(*(self._worker(n) for n in range(self.config.workers)))
        self.result.wall_s = time.monotonic() - started
        return self.result

    def _done(self) -> bool:
        return (
            time.monotonic() >= self._deadline
            or self.result.observations >= self.config.max_observations
        )

    async def _post(
        self, connection: Connection, path: str, body: dict[str, Any], what: str
    ) -> tuple[float, dict[str, Any]]:
        """One POST with bounded retries after transport errors, 429 and 5xx; (ms, body)."""
        last = ""
        for attempt in range(self.config.attempts):
            if attempt:
                self.result.retries += 1
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
            started = time.perf_counter()
            try:
                status, text = await asyncio.wait_for(
                    connection.request("POST", self._base + path, body),
                    self.config.request_timeout_s,
                )
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                last = f"{what}: {type(exc).__name__}"
                self.result.errors[last] += 1
                await connection.close()
                await connection.open()
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if status == 200:
                return elapsed, dict(json.loads(text))
            last = f"{what}: HTTP {status}"
            self.result.errors[last] += 1
            if status < 500 and status != 429:
                raise RuntimeError(f"POST {path} -> {status}: {text[:300]!r}")
        raise _Stop(last)

    async def _worker(self, number: int) -> None:
        connection = Connection(self._host, self._port, self._authorization)
        await connection.open()
        try:
            await self._work(connection, number)
        except _Stop:
            return
        finally:
            await connection.close()

    async def _work(self, connection: Connection, number: int) -> None:
        rng = random.Random(self.config.seed * 100_003 + number)
        result = self.result
        if self.config.start_spread_s > 0:
            # Simulated boot: a fleet's instances come up over a spread, not in one instant.
            await asyncio.sleep(rng.uniform(0.0, self.config.start_spread_s))
        while not self._done():
            ms, suggestion = await self._post(
                connection, "/suggestions", {"metadata": {"worker": number}}, "create"
            )
            interval, body = result.opened(ms, suggestion)
            await self._evaluate(connection, interval.suggestion_id, body, rng)
            interval.closing = time.monotonic()
            ms, observation = await self._post(connection, "/observations", body, "observe")
            result.observed(ms, body, observation)

    async def _evaluate(
        self, connection: Connection, suggestion_id: str, body: dict[str, Any], rng: random.Random
    ) -> None:
        """The simulated evaluation of one suggestion (``body``: its observation to be)."""
        low, high = self.config.eval_s
        await asyncio.sleep(rng.uniform(low, high))
