"""A lean HTTP/1.1 load generator: N kept-alive connections driven by one asyncio loop.

``requests`` costs ≈ 2.4 ms of client CPU per call; 32 threads of it on this 2-core machine take
most of a core from the server under test. Real fleet clients run on their own machines, so the
throughput benchmark drives its 32 concurrent clients from this generator instead (≈ 0.2 ms CPU
per request), in its own process, and reports the `requests`-thread figure beside it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

TIMEOUT_S = 60.0

# (method, path, body) of one request; path includes /v1.
Request = tuple[str, str, dict[str, Any] | None]


@dataclass
class LoadResult:
    """What the concurrent phase achieved."""

    writes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


class Connection:
    """One kept-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int, authorization: str) -> None:
        self._host = host
        self._port = port
        self._authorization = authorization
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, bytes]:
        """(status, body) of one request on this connection."""
        assert self._reader is not None and self._writer is not None, "open() first"
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Authorization: {self._authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        self._writer.write(head + payload)
        headers = await self._reader.readuntil(b"\r\n\r\n")
        lines = headers.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return status, await self._reader.readexactly(length) if length else b""

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


async def _drive(
    connections: list[Connection], per_client: int, plan: Callable[[int, int], Request]
) -> LoadResult:
    await asyncio.gather(*(c.open() for c in connections))
    result = LoadResult()

    async def client(index: int, connection: Connection) -> None:
        for i in range(per_client):
            method, path, body = plan(index, i)
            began = time.perf_counter()
            try:
                status, text = await asyncio.wait_for(
                    connection.request(method, path, body), TIMEOUT_S
                )
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                await connection.close()
                await connection.open()
                continue
            if status != 200:
                result.errors.append(f"{method} {path} -> {status}: {text[:160]!r}")
                continue
            result.latencies.append((time.perf_counter() - began) * 1000)
            result.writes += 1

    began = time.perf_counter()
    await asyncio.gather(*(client(i, c) for i, c in enumerate(connections)))
    result.seconds = time.perf_counter() - began
    await asyncio.gather(*(c.close() for c in connections))
    return result


def run_load(
    base_url: str,
    token: str,
    clients: int,
    per_client: int,
    plan: Callable[[int, int], Request],
) -> LoadResult:
    """``clients`` connections each sending ``per_client`` requests ``plan(client, i)``."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    authorization = "Basic " + base64.b64encode(f"{token}:".encode()).decode()
    connections = [Connection(host, port, authorization) for _ in range(clients)]
    return asyncio.run(_drive(connections, per_client, plan))
