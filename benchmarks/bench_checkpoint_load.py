"""The 1,000-worker fleet run with training-run checkpoints every 2 s, against the same run without.

Issue 21's load target: with every worker posting a checkpoint of its suggestion's training run
every 2 s (the experiment carries an ASHA training monitor, so rung checkpoints take the
experiment's decision lock), observations/s stay at least 0.9x the same run without checkpoints,
the checkpoint p99 is at most 250 ms, and no checkpoint or observation is lost or doubled.

Both runs are the load-fleet protocol of bench_load.py (6-10 s simulated evaluations, instances
starting over 10 s, 90 s) in one invocation, on SQLite and on PostgreSQL, each against a fresh
server. Workers read ``should_stop`` but run every evaluation to its end, so both runs hand out
work at the same pace and the ratio compares like with like; how many answers said stop is
reported. Reconciliation: the client's ledger of acknowledged observations as in bench_load.py,
and of acknowledged checkpoints against each run's ``checkpoint_count`` on the server (steps
only move forward, so a lost checkpoint shows as a count below the acknowledged steps, a doubled
one above the distinct steps posted).

Writes the ``load-checkpoints`` section of docs/benchmarks.md.

    .venv/bin/python -m benchmarks.bench_checkpoint_load [--workers 1000] [--duration 90]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks._async_workers import AsyncWorkers
from benchmarks._loadgen import Connection
from benchmarks._report import (
    keep_unavailable_section,
    machine_description,
    markdown_table,
    percentile,
    write_section,
)
from benchmarks._requirements import missing_postgres
from tests.reliability.load_sim import LoadConfig, LoadResult, create_discrete_experiment, reconcile
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningServer

TOKEN = "bench-checkpoint-token"  # noqa: S105 - a throwaway token for a loopback server
SECTION = "load-checkpoints"
TITLE = "The 1,000-worker fleet run with a checkpoint every 2 s (issue 21)"
MONITOR = {"max_checkpoints": 50, "early_stopping": {"rule": "asha", "reduction_factor": 3}}
CHECKPOINT_EVERY_S = 2.0


@dataclass
class CheckpointLedger:
    """What the clients posted and what the server acknowledged, per training run."""

    checkpoint_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)
    posted: dict[str, set[int]] = field(default_factory=dict)  # run id -> steps posted
    acknowledged: dict[str, set[int]] = field(default_factory=dict)  # run id -> steps answered
    told_to_stop: int = 0


class CheckpointingWorkers(AsyncWorkers):
    """bench_load's workers, plus a training run per suggestion and a checkpoint every 2 s."""

    def __init__(self, url: str, token: str, experiment_id: str, config: LoadConfig) -> None:
        super().__init__(url, token, experiment_id, config)
        self.ledger = CheckpointLedger()

    async def _evaluate(
        self, connection: Connection, suggestion_id: str, body: dict[str, Any], rng: random.Random
    ) -> None:
        """The suggestion's training run, then the simulated evaluation with one checkpoint
        every 2 s of it (a rising curve to the observation's value)."""
        ms, run = await self._post(
            connection, "/training_runs", {"suggestion": suggestion_id}, "run"
        )
        self.ledger.run_ms.append(ms)
        run_id = str(run["id"])
        low, high = self.config.eval_s
        left = rng.uniform(low, high)
        final = float(body["values"][0]["value"])
        step = 0
        while left > 0:
            pause = min(CHECKPOINT_EVERY_S, left)
            await asyncio.sleep(pause)
            left -= pause
            if left <= 0:
                break
            step += 1
            value = final * (1.0 - 0.5**step) + rng.gauss(0.0, 0.01)
            checkpoint = {"step": step, "values": [{"name": "y", "value": value}]}
            self.ledger.posted.setdefault(run_id, set()).add(step)
            path = f"/training_runs/{run_id}/checkpoints"
            ms, answer = await self._post(connection, path, checkpoint, "checkpoint")
            self.ledger.checkpoint_ms.append(ms)
            self.ledger.acknowledged.setdefault(run_id, set()).add(step)
            self.ledger.told_to_stop += bool(answer.get("should_stop"))


def runs_on_server(url: str, experiment_id: str) -> dict[str, dict[str, Any]]:
    """Every training run of the experiment, by id (paged)."""
    runs: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 1000}
    with httpx.Client(auth=(TOKEN, ""), timeout=120) as client:
        while True:
            page = client.get(f"{url}/v1/experiments/{experiment_id}/training_runs", params=params)
            page.raise_for_status()
            data = page.json()
            runs.update({str(r["id"]): r for r in data["data"]})
            before = (data.get("paging") or {}).get("before")
            if not data["data"] or not before:
                return runs
            params["before"] = before


@dataclass
class CheckpointCheck:
    runs: int
    acknowledged: int
    lost: list[str]
    doubled: list[str]


def reconcile_checkpoints(url: str, eid: str, ledger: CheckpointLedger) -> CheckpointCheck:
    """Acknowledged checkpoints against each run's count and last step on the server."""
    stored = runs_on_server(url, eid)
    lost, doubled = [], []
    for run_id, steps in ledger.acknowledged.items():
        run = stored.get(run_id, {})
        count = int(run.get("checkpoint_count") or 0)
        if count < len(steps):
            lost.append(run_id)
        if count > len(ledger.posted.get(run_id, steps)):
            doubled.append(run_id)
    acknowledged = sum(len(steps) for steps in ledger.acknowledged.values())
    return CheckpointCheck(len(stored), acknowledged, lost, doubled)


def run_once(db_url: str | None, args: argparse.Namespace, checkpoints: bool) -> dict[str, Any]:
    """One fleet run against a fresh server, with or without checkpoints."""
    with RunningServer.start(db_url=db_url, token=TOKEN) as server:
        eid = create_discrete_experiment(server.url, TOKEN, name="load-checkpoints")
        if checkpoints:
            httpx.put(
                f"{server.url}/v1/experiments/{eid}",
                json={"training_monitor": MONITOR},
                auth=(TOKEN, ""),
                timeout=60,
            ).raise_for_status()
        config = LoadConfig(
            workers=args.workers,
            duration_s=args.duration,
            request_timeout_s=180,
            attempts=5,
            seed=args.seed,
            eval_s=(6.0, 10.0),
            start_spread_s=10.0,
        )
        workers = (CheckpointingWorkers if checkpoints else AsyncWorkers)(
            server.url, TOKEN, eid, config
        )
        result: LoadResult = workers.run()
        check = reconcile(server.url, TOKEN, eid, result)
        ledger = workers.ledger if isinstance(workers, CheckpointingWorkers) else None
        checked = reconcile_checkpoints(server.url, eid, ledger) if ledger else None
    print(
        f"checkpoints={checkpoints}: {result.observations} observations in {result.wall_s:.1f} s,"
        f" errors {dict(result.errors)}, ok={check.ok}"
    )
    return {"result": result, "check": check, "ledger": ledger, "checkpoints": checked}


def _ms(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q):.0f}" if samples else "-"


def rows_for(name: str, plain: dict[str, Any], with_checkpoints: dict[str, Any]) -> list[Any]:
    base: LoadResult = plain["result"]
    load: LoadResult = with_checkpoints["result"]
    ledger: CheckpointLedger = with_checkpoints["ledger"]
    checked: CheckpointCheck = with_checkpoints["checkpoints"]
    ratio = load.throughput / base.throughput if base.throughput else float("nan")
    p99 = percentile(ledger.checkpoint_ms, 99) if ledger.checkpoint_ms else float("nan")
    lost_obs = len(plain["check"].missing) + len(with_checkpoints["check"].missing)
    doubled_obs = len(plain["check"].duplicated) + len(with_checkpoints["check"].duplicated)
    return [
        name,
        f"{base.throughput:.1f}",
        f"{load.throughput:.1f}",
        f"{ratio:.2f} ({'met' if ratio >= 0.9 else 'NOT met'})",
        len(ledger.checkpoint_ms),
        _ms(ledger.checkpoint_ms, 50),
        f"{p99:.0f} ({'met' if p99 <= 250 else 'NOT met'})",
        _ms(ledger.run_ms, 99),
        f"{_ms(base.create_ms, 99)} / {_ms(load.create_ms, 99)}",
        ledger.told_to_stop,
        f"{len(checked.lost)} / {len(checked.doubled)}",
        f"{lost_obs} / {doubled_obs}",
    ]


def section(rows: list[list[Any]], args: argparse.Namespace, total_s: float) -> str:
    header = [
        "database",
        "obs/s without checkpoints",
        "obs/s with",
        "ratio (target >= 0.9)",
        "checkpoints",
        "checkpoint p50 ms",
        "checkpoint p99 ms (target <= 250)",
        "run create p99 ms",
        "suggestion create p99 ms without / with",
        "answers saying stop",
        "checkpoints lost / doubled",
        "observations lost / doubled (both runs)",
    ]
    return "\n".join(
        [
            f"## {TITLE}",
            "",
            machine_description(["sqlalchemy", "uvicorn", "psycopg"]),
            "",
            f"{args.workers} simulated workers (bench_load.py's asyncio workers, one kept-alive "
            "connection each, on the same 2 cores as the server) run the load-fleet protocol: "
            "instances start over 10 s, evaluations take 6-10 s, "
            f"{args.duration:.0f} s per run. With checkpoints each suggestion gets a training "
            "run and a checkpoint every 2 s of its evaluation (steps 1-4), on an experiment "
            f"with the training monitor `{MONITOR}` (rungs at steps 1, 3, 9: rung checkpoints "
            "take the experiment's decision lock). Workers run every evaluation to its end "
            "whatever the answer, so both runs ask for work at the same pace. Baseline: the "
            "same run without training runs, same invocation, a fresh server each.",
            "",
            markdown_table(header, rows),
            "",
            "Lost/doubled checkpoints: each acknowledged run's `checkpoint_count` on the server "
            "against the steps the client posted and had answered. "
            f"Total benchmark time: {total_s:.0f} s.",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args()
    if "postgresql" in args.databases.split(",") and (missing := missing_postgres()):
        return keep_unavailable_section(SECTION, TITLE, missing, write=not args.no_report)
    started = time.monotonic()
    rows = []
    for name in args.databases.split(","):
        cluster = None if name == "sqlite" else PostgresCluster.start()
        try:

            def db_url(cluster: PostgresCluster | None = cluster) -> str | None:
                return None if cluster is None else cluster.create_database()

            plain = run_once(db_url(), args, checkpoints=False)
            with_checkpoints = run_once(db_url(), args, checkpoints=True)
        finally:
            if cluster is not None:
                cluster.stop()
        rows.append(rows_for(name, plain, with_checkpoints))
    body = section(rows, args, time.monotonic() - started)
    print(body)
    if not args.no_report:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
