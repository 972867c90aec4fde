"""N simulated workers (threads, one requests session each) against a running suggestion server.

Each worker loops: create a suggestion, "evaluate" it (a short seeded pause: the simulated
training run), post its observation, until a deadline or a total observation count. Every write
the server acknowledges goes into a client-side ledger, reconciled with the server at the end.

Two invariants are checked from the client's side:

- **no duplicate open assignment**: a suggestion is certainly open on the server from the moment
  its create response arrived until its observation request was sent. Two suggestions with equal
  assignments whose certainly-open intervals overlap were handed out twice while open.
- **no lost observation**: every acknowledged observation is on the server with the same id,
  suggestion and value, and no suggestion has more than one observation.

Observation posts are retried with the identical body after an ambiguous failure (timeout, reset,
5xx): the server answers an identical retry with the existing observation, so a retry never
duplicates. Suggestion creates are retried too (a lost create only leaves an extra open
suggestion, which the reconciliation reports).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests

# A discrete space of 20^3 x 3 = 24,000 points: enough room for 1,000 open suggestions.
DISCRETE_PARAMETERS: list[dict[str, Any]] = [
    {"name": "a", "type": "int", "bounds": {"min": 1, "max": 20}},
    {"name": "b", "type": "int", "bounds": {"min": 1, "max": 20}},
    {"name": "c", "type": "int", "bounds": {"min": 1, "max": 20}},
    {"name": "d", "type": "categorical", "categorical_values": ["x", "y", "z"]},
]


@dataclass
class LoadConfig:
    """How much load: workers, a time bound, a count bound, the simulated evaluation time."""

    workers: int = 100
    duration_s: float = 20.0
    max_observations: int = 100_000
    eval_s: tuple[float, float] = (0.0, 0.05)
    start_spread_s: float = 0.0  # workers start uniformly over this long (a fleet's boot)
    request_timeout_s: float = 60.0
    attempts: int = 8  # per request, after transport errors and 5xx
    seed: int = 0
    health_only: bool = False  # baseline: each loop is two GET /health instead of the writes


@dataclass
class Interval:
    """When a suggestion was certainly open, as seen by the client."""

    suggestion_id: str
    assignment: tuple[Any, ...]
    opened: float
    closing: float | None = None  # None: still open at the end


@dataclass
class LoadResult:
    """Latencies (ms), the ledger and what went wrong."""

    create_ms: list[float] = field(default_factory=list)
    observe_ms: list[float] = field(default_factory=list)
    ledger: dict[str, tuple[str, float]] = field(default_factory=dict)  # sid -> (oid, value)
    intervals: list[Interval] = field(default_factory=list)
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def observations(self) -> int:
        return len(self.ledger)

    def opened(self, ms: float, suggestion: dict[str, Any]) -> tuple[Interval, dict[str, Any]]:
        """Record a created suggestion; returns its open interval and its observation body
        (the simulated evaluation's value: the sum of the numeric assignments)."""
        self.create_ms.append(ms)
        assignments = suggestion["assignments"]
        interval = Interval(
            str(suggestion["id"]), tuple(sorted(assignments.items())), time.monotonic()
        )
        self.intervals.append(interval)
        value = float(sum(v for v in assignments.values() if isinstance(v, (int, float))))
        body = {"suggestion": interval.suggestion_id, "values": [{"name": "y", "value": value}]}
        return interval, body

    def observed(self, ms: float, body: dict[str, Any], observation: dict[str, Any]) -> None:
        """Record an acknowledged observation in the ledger."""
        self.observe_ms.append(ms)
        self.ledger[str(body["suggestion"])] = (str(observation["id"]), body["values"][0]["value"])

    @property
    def throughput(self) -> float:
        """Acknowledged observations per second."""
        return self.observations / self.wall_s if self.wall_s else 0.0

    @property
    def requests_per_s(self) -> float:
        """Successful requests per second (creates and observations, or baseline GETs)."""
        done = len(self.create_ms) + len(self.observe_ms)
        return done / self.wall_s if self.wall_s else 0.0


def create_discrete_experiment(url: str, token: str, name: str = "load") -> str:
    """A TPE experiment on ``DISCRETE_PARAMETERS`` (no budget: the simulator bounds the run)."""
    body = {"name": name, "parameters": DISCRETE_PARAMETERS, "metrics": [{"name": "y"}]}
    response = httpx.post(f"{url}/v1/experiments", json=body, auth=(token, ""), timeout=60)
    response.raise_for_status()
    return str(response.json()["id"])


def duplicate_open_assignments(intervals: list[Interval], end: float) -> list[tuple[str, str]]:
    """Pairs of suggestion ids that were certainly open at the same time with equal assignments."""
    by_point: dict[tuple[Any, ...], list[Interval]] = {}
    for interval in intervals:
        by_point.setdefault(interval.assignment, []).append(interval)
    clashes = []
    for group in by_point.values():
        group.sort(key=lambda i: i.opened)
        for first, second in zip(group, group[1:]):
            first_end = end if first.closing is None else first.closing
            if second.opened < first_end:
                clashes.append((first.suggestion_id, second.suggestion_id))
    return clashes


class _Stop(Exception):
    pass


class LoadSimulator:
    """Runs ``config.workers`` concurrent workers (threads) against one experiment."""

    def __init__(self, url: str, token: str, experiment_id: str, config: LoadConfig) -> None:
        self.base = f"{url}/v1/experiments/{experiment_id}"
        self.url = url
        self.token = token
        self.config = config
        self.result = LoadResult()
        self._deadline = 0.0
        self._lock = threading.Lock()
        self.stop_requested = threading.Event()  # set from another thread to end the run early

    def run(self) -> LoadResult:
        """Run the workers to the deadline or the count; returns latencies and the ledger."""
        started = time.monotonic()
        self._deadline = started + self.config.duration_s
        # Small stacks: a thousand workers only ever hold a few frames each.
        previous = threading.stack_size(512 * 1024)
        try:
            threads = [
                threading.Thread(target=self._worker, args=(n,), daemon=True)
                for n in range(self.config.workers)
            ]
            for thread in threads:
                thread.start()
        finally:
            threading.stack_size(previous)
        bound = self.config.duration_s + self.config.attempts * (self.config.request_timeout_s + 3)
        for thread in threads:
            thread.join(timeout=max(1.0, started + bound - time.monotonic()))
        self.result.wall_s = time.monotonic() - started
        return self.result

    def _done(self) -> bool:
        return (
            self.stop_requested.is_set()
            or time.monotonic() >= self._deadline
            or self.result.observations >= self.config.max_observations
        )

    def _error(self, what: str) -> None:
        with self._lock:
            self.result.errors[what] += 1

    def _request(
        self, session: requests.Session, path: str, body: dict[str, Any], what: str
    ) -> tuple[float, dict[str, Any]]:
        """One POST with bounded retries on transport errors, 429 and 5xx; (ms, body)."""
        last = ""
        timeout = (min(10.0, self.config.request_timeout_s), self.config.request_timeout_s)
        for attempt in range(self.config.attempts):
            if attempt:
                with self._lock:
                    self.result.retries += 1
                # Bounded exponential backoff with jitter; the fault being waited out is real.
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.random())
            started = time.perf_counter()
            try:
                response = session.post(self.base + path, json=body, timeout=timeout)
            except requests.RequestException as exc:
                last = f"{what}: {type(exc).__name__}"
                self._error(last)
                continue
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                return elapsed, dict(response.json())
            last = f"{what}: HTTP {response.status_code}"
            self._error(last)
            if response.status_code < 500 and response.status_code != 429:
                raise RuntimeError(f"POST {path} -> {response.status_code}: {response.text}")
        raise _Stop(last)

    def _health_worker(self, session: requests.Session) -> None:
        """The baseline loop: the same request pattern against ``/health`` (no database)."""
        result = self.result
        while not self._done():
            for latencies in (result.create_ms, result.observe_ms):
                started = time.perf_counter()
                try:
                    response = session.get(f"{self.url}/health", timeout=(10, 60))
                except requests.RequestException as exc:
                    self._error(f"health: {type(exc).__name__}")
                    continue
                if response.status_code != 200:
                    self._error(f"health: HTTP {response.status_code}")
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

    def _worker(self, number: int) -> None:
        with requests.Session() as session:
            session.auth = (self.token, "")
            if self.config.health_only:
                self._health_worker(session)
                return
            try:
                self._work(session, number)
            except _Stop:
                return

    def _work(self, session: requests.Session, number: int) -> None:
        rng = random.Random(self.config.seed * 100_003 + number)
        result = self.result
        while not self._done():
            ms, suggestion = self._request(
                session, "/suggestions", {"metadata": {"worker": number}}, "create"
            )
            interval, body = result.opened(ms, suggestion)
            low, high = self.config.eval_s
            time.sleep(rng.uniform(low, high))  # the simulated evaluation
            interval.closing = time.monotonic()
            ms, observation = self._request(session, "/observations", body, "observe")
            result.observed(ms, body, observation)


def _paged(url: str, token: str, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following ``paging.before`` like the official client."""
    found: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": 1000}
    with httpx.Client(auth=(token, ""), timeout=60) as client:
        while True:
            response = client.get(f"{url}/v1{path}", params=query)
            response.raise_for_status()
            page = response.json()
            found.extend(page["data"])
            before = (page.get("paging") or {}).get("before")
            if not page["data"] or not before:
                return found
            query = {**params, "limit": 1000, "before": before}


def server_observations(url: str, token: str, experiment_id: str) -> list[dict[str, Any]]:
    """Every observation of the experiment."""
    return _paged(url, token, f"/experiments/{experiment_id}/observations")


def open_suggestions(url: str, token: str, experiment_id: str) -> list[dict[str, Any]]:
    """Every open suggestion of the experiment."""
    return _paged(url, token, f"/experiments/{experiment_id}/suggestions", state="open")


@dataclass
class Reconciliation:
    """Ledger against server: what is missing, changed or duplicated."""

    acknowledged: int
    on_server: int
    missing: list[str]
    changed: list[str]
    duplicated: list[str]
    open_duplicates: list[tuple[str, str]]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.duplicated or self.open_duplicates)


def reconcile(url: str, token: str, experiment_id: str, result: LoadResult) -> Reconciliation:
    """Compare the client's ledger with the server's observations and open suggestions."""
    observations = server_observations(url, token, experiment_id)
    per_suggestion = Counter(str(o["suggestion"]) for o in observations)
    by_id = {str(o["id"]): o for o in observations}
    missing, changed = [], []
    for sid, (oid, value) in result.ledger.items():
        stored = by_id.get(oid)
        if stored is None:
            missing.append(sid)
        elif str(stored["suggestion"]) != sid or stored["values"][0]["value"] != value:
            changed.append(sid)
    duplicated = [sid for sid, count in per_suggestion.items() if count > 1]
    end = time.monotonic()
    clashes = duplicate_open_assignments(result.intervals, end)
    still_open = open_suggestions(url, token, experiment_id)
    points = Counter(tuple(sorted(s["assignments"].items())) for s in still_open)
    clashes += [("open-at-end", str(p)) for p, n in points.items() if n > 1]
    return Reconciliation(
        acknowledged=len(result.ledger),
        on_server=len(observations),
        missing=missing,
        changed=changed,
        duplicated=duplicated,
        open_duplicates=clashes,
    )
