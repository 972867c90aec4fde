"""The 1,000-worker run: simulated workers over real HTTP against the server, SQLite and PostgreSQL.

Each worker loops create suggestion -> short simulated evaluation -> create observation for a
bounded time: coroutines of the asyncio load generator (benchmarks/_async_workers.py), one
kept-alive connection each, so the client's CPU does not hide the server's limit. The baseline,
in the same invocation and against the same server, is the same N connections doing
``GET /health`` (HTTP and the event loop without the database or the optimizer). Afterwards the
client-side ledger is reconciled with the server: lost or duplicated observations and assignments
handed out twice among open suggestions are counted (they must be 0). Where each suggestion came
from (suggestion pool, the engine's batch picks, engine at request time, padding, queue) is
counted from the server log.

Writes the ``load`` section of docs/benchmarks.md.

    .venv/bin/python -m benchmarks.bench_load [--workers 1000] [--duration 60] [--baseline 10]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter
from typing import Any

from benchmarks._async_workers import AsyncWorkers
from benchmarks._loadgen import LoadResult as GetResult
from benchmarks._loadgen import run_load
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

BENCH_TOKEN = "bench-load-token"  # noqa: S105 - a throwaway token for a loopback server


def _ms(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q):.0f}" if samples else "-"


HEALTH = ("GET", "/health", None)
# Suggestion sources as the server logs them.
SOURCES = ("pool", "batch", "padding", "engine", "queued", "manual")
SOURCE = re.compile(r"suggestion created .* source=(\w+)")


def suggestion_sources(log_text: str) -> Counter[str]:
    """How many suggestions each source served, from the server's log lines."""
    return Counter(match.group(1) for match in SOURCE.finditer(log_text))


def run_database(name: str, db_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline then load against one server; returns the numbers for the report."""
    load_before = os.getloadavg()[0]
    with RunningServer.start(
        db_url=db_url, token=BENCH_TOKEN, workers=args.server_workers
    ) as server:
        baseline = run_load(
            server.url, BENCH_TOKEN, args.workers, args.baseline, lambda _c, _i: HEALTH
        )
        eid = create_discrete_experiment(server.url, BENCH_TOKEN, name=f"load-{name}")
        config = LoadConfig(
            workers=args.workers,
            duration_s=args.duration,
            request_timeout_s=180,
            attempts=5,
            seed=args.seed,
            eval_s=args.eval_s,
            start_spread_s=args.start_spread_s,
        )
        result = AsyncWorkers(server.url, BENCH_TOKEN, eid, config).run()
        load_after = os.getloadavg()[0]
        started = time.monotonic()
        check = reconcile(server.url, BENCH_TOKEN, eid, result)
        reconcile_s = time.monotonic() - started
        sources = suggestion_sources(server.log_text())
    print(
        f"{name}: {result.observations} observations in {result.wall_s:.1f} s, "
        f"errors {dict(result.errors)}, reconciliation ok={check.ok}, sources {dict(sources)}"
    )
    return {
        "name": name,
        "baseline": baseline,
        "result": result,
        "check": check,
        "reconcile_s": reconcile_s,
        "sources": sources,
        "load": (load_before, load_after),
    }


def section(runs: list[dict[str, Any]], args: argparse.Namespace, total_s: float) -> str:
    """The Markdown section."""
    rows = []
    integrity = []
    origin = []
    for run in runs:
        base: GetResult = run["baseline"]
        res: LoadResult = run["result"]
        base_all = base.latencies
        p50_base = percentile(base_all, 50) if base_all else float("nan")
        rows.append(
            [
                run["name"],
                f"{args.workers}",
                f"{res.wall_s:.0f}",
                res.observations,
                f"{res.throughput:.1f}",
                _ms(res.create_ms, 50),
                _ms(res.create_ms, 99),
                _ms(res.observe_ms, 50),
                _ms(res.observe_ms, 99),
                f"{base.per_second:.0f}",
                _ms(base_all, 50),
                _ms(base_all, 99),
                f"{res.requests_per_s / base.per_second:.3f}" if base.per_second else "-",
                f"{percentile(res.create_ms, 50) / p50_base:.1f}" if res.create_ms else "-",
                f"{run['load'][0]:.1f} -> {run['load'][1]:.1f}",
            ]
        )
        sources = run["sources"]
        served = sum(sources.values()) or 1
        origin.append(
            [run["name"], *(f"{100 * sources[name] / served:.1f}" for name in SOURCES), served]
        )
        check = run["check"]
        integrity.append(
            [
                run["name"],
                check.acknowledged,
                check.on_server,
                len(check.missing),
                len(check.changed),
                len(check.duplicated),
                len(check.open_duplicates),
                res.retries,
                ", ".join(f"{k}: {v}" for k, v in sorted(res.errors.items())) or "none",
            ]
        )
    header = [
        "database",
        "workers",
        "s",
        "observations",
        "obs/s",
        "create p50 ms",
        "create p99 ms",
        "observe p50 ms",
        "observe p99 ms",
        "baseline req/s",
        "baseline p50 ms",
        "baseline p99 ms",
        "ratio req/s load/baseline",
        "ratio p50 create/baseline",
        "load avg",
    ]
    return "\n".join(
        [
            f"## {args.title}",
            "",
            machine_description(["optuna", "sqlalchemy", "uvicorn", "psycopg"]),
            "",
            f"{args.workers} simulated workers (coroutines of the asyncio load generator, one "
            "kept-alive connection each, benchmarks/_async_workers.py; on the same 2 cores as "
            f"the server, which runs {args.server_workers} process(es)) loop create suggestion "
            f"-> simulated evaluation ({args.eval_s[0]:g}-{args.eval_s[1]:g} s) -> create "
            "observation for "
            f"{args.duration:.0f} s"
            + (
                f" (each starts at a uniformly random time in the first {args.start_spread_s:g} s, "
                "as a fleet's instances boot over a spread; latency counts from then)"
                if args.start_spread_s
                else " (all start at once)"
            )
            + " on a discrete space of 24,000 points "
            "(tests/reliability/load_sim.py's experiment). Baseline in the same invocation, same "
            f"server: the same {args.workers} connections sending {args.baseline} `GET /health` "
            "each (HTTP + event loop, no database, no optimizer).",
            "",
            markdown_table(header, rows),
            "",
            "Where the handed-out suggestions came from (% of suggestions, from the server's "
            '`suggestion created ... source=` log lines; see docs/api.md, "The suggestion '
            'pool"):',
            "",
            markdown_table(["database", *(f"{name} %" for name in SOURCES), "suggestions"], origin),
            "",
            "Integrity (client-side ledger of acknowledged observations reconciled with the "
            "server at the end; all of missing, changed, duplicated and open duplicates must "
            "be 0):",
            "",
            markdown_table(
                [
                    "database",
                    "acknowledged",
                    "on server",
                    "missing",
                    "changed",
                    "2+ observations",
                    "open duplicates",
                    "retries",
                    "errors seen by clients (retried)",
                ],
                integrity,
            ),
            "",
            "Reading it: the workers are a closed loop, so once the server is saturated latency "
            "is about workers / throughput (Little's law): at 100 observations/s a worker's loop "
            "takes about 10 s, shared between its create and its observe, so a create p99 of "
            "2 s in this loop needs several hundred observations/s. Suggestion creation no longer "
            "waits for the engine: the pool hands out precomputed entries (the engine's full "
            "proposals, then its batch picks, then random padding when even batches cannot keep "
            "up; the sources table says which) in one "
            "short write, and no engine run holds a write lock. What remains is the server's CPU "
            "per request (two Python processes' worth at most on this machine, shared with the "
            "load generator and other jobs) and, on PostgreSQL, the per-experiment row lock "
            "that observation creation holds. The load average includes the load generator.",
            "",
            "A shorter version (100 workers, 10 s) runs in `make test`: "
            "tests/reliability/test_load.py.",
            f"Total benchmark time: {total_s:.0f} s.",
        ]
    )


def main() -> int:
    """Run SQLite then PostgreSQL and write the report section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per DB")
    parser.add_argument("--baseline", type=int, default=10, help="GET /health per connection")
    parser.add_argument("--server-workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--eval-s",
        type=lambda text: tuple(float(part) for part in text.split(",")),
        default=(0.0, 0.05),
        help="simulated evaluation time range LOW,HIGH in seconds (default 0,0.05)",
    )
    parser.add_argument(
        "--start-spread-s",
        type=float,
        default=0.0,
        help="workers start uniformly over this many seconds (default 0: all at once)",
    )
    parser.add_argument("--section", default="load", help="report section to write")
    parser.add_argument("--title", default="The 1,000-worker run (suggestion server under load)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--no-report", action="store_true", help="print only")
    args = parser.parse_args()
    if "postgresql" in args.databases.split(",") and (missing := missing_postgres()):
        return keep_unavailable_section(args.section, args.title, missing, write=not args.no_report)
    started = time.monotonic()
    runs = []
    for name in args.databases.split(","):
        if name == "sqlite":
            runs.append(run_database(name, None, args))
        else:
            cluster = PostgresCluster.start()
            try:
                runs.append(run_database(name, cluster.create_database(), args))
            finally:
                cluster.stop()
    body = section(runs, args, time.monotonic() - started)
    print(body)
    if not args.no_report:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
