"""Write latency and throughput of the real server vs Optuna on RDB storage, same invocation.

For each backend (SQLite file, PostgreSQL): create-observation p50/p99 (an observation for an
open suggestion, the worker's path), metadata-update p50/p99 (PUT a suggestion's metadata, the
agent's lease renewal), both from one client; then writes per second from 32 concurrent clients
(half observations, half metadata updates), with latency under load and the error count. The 32
clients are kept-alive connections of a lean asyncio load generator (benchmarks/_loadgen.py: real
clients run on their own machines and must not eat the server's CPU); the same mix from 32
`requests` threads in the benchmark process is reported beside it.
Baseline: Optuna 5 on `RDBStorage`: `tell` of an asked trial, `set_trial_user_attr` on a running
trial (finished trials cannot be changed at all), and the same 32-thread mix on one storage.

Run: .venv/bin/python -m benchmarks.bench_writes [--backends sqlite,postgresql] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from optuna.trial import TrialState, create_trial

from benchmarks import _optuna_baseline as baseline
from benchmarks._api import Api, loss_of, random_assignments
from benchmarks._loadgen import LoadResult, run_load
from benchmarks._report import (
    keep_unavailable_section,
    machine_description,
    markdown_table,
    median,
    percentile,
    write_section,
)
from benchmarks._requirements import missing_postgres
from benchmarks.bench_suggest import BENCH_TOKEN, backend_urls, fmt

SECTION = "writes"
TITLE = "Writes (suggestion server)"
CLIENTS = 32
WARM_UP_PER_CLIENT = 4


def agent_metadata(i: int) -> dict[str, object]:
    """What the agent stamps on a suggestion while it evaluates (lease renewal)."""
    return {
        "instance_id": f"i-{i:017x}",
        "instance_type": "c7g.large",
        "availability_zone": "eu-west-1a",
        "lifecycle": "spot",
        "hostname": f"ip-10-0-{i % 250}-{i % 200}",
        "lease_expires_at": int(time.time()) + 600,
        "agent_version": "0.1.0",
    }


def run_clients(per_client: int, write: Callable[[int, int], None]) -> LoadResult:
    """``CLIENTS`` threads each doing ``per_client`` writes ``write(client, i)``; timed together."""
    load = LoadResult()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS + 1)

    def client(c: int) -> None:
        start.wait()
        for i in range(per_client):
            began = time.perf_counter()
            try:
                write(c, i)
            except Exception as exc:  # counted and reported, the run goes on
                with lock:
                    load.errors.append(f"{type(exc).__name__}: {str(exc)[:160]}")
                continue
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                load.latencies.append(elapsed)
                load.writes += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=600)
    load.seconds = time.perf_counter() - began
    return load


@dataclass
class WriteResults:
    observation: list[float]
    metadata: list[float]
    load: LoadResult
    threaded_load: LoadResult | None = None


def server_suite(db_url: str | None, samples: int, per_client: int) -> WriteResults:
    """Sequential latencies, then the 32-client mix (load generator, then threads)."""
    from tests.support.server import RunningServer

    with RunningServer.start(db_url=db_url, token=BENCH_TOKEN) as server:
        api = Api(server.url, server.token)
        experiment = api.create_experiment("bench-writes")
        rng = random.Random(3)

        def manual_suggestion() -> str:
            body = {"assignments": random_assignments(rng), "metadata": agent_metadata(0)}
            return str(api.call("POST", f"/experiments/{experiment}/suggestions", body)["id"])

        suggestions = [manual_suggestion() for _ in range(samples)]
        metadata_times = [
            api.timed(
                "PUT",
                f"/experiments/{experiment}/suggestions/{sid}",
                {"metadata": agent_metadata(i)},
            )[0]
            for i, sid in enumerate(suggestions)
        ]
        observation_times = []
        for sid in suggestions:
            body = {
                "suggestion": sid,
                "values": [{"name": "loss", "value": rng.random()}],
                "metadata": {**agent_metadata(1), "duration_s": 12.5, "attempt": 1},
            }
            observation_times.append(
                api.timed("POST", f"/experiments/{experiment}/observations", body)[0]
            )

        # Each client keeps one open suggestion whose lease it renews between observations.
        leases = [manual_suggestion() for _ in range(CLIENTS)]

        def plan(client: int, i: int) -> tuple[str, str, dict[str, object]]:
            if i % 2:
                path = f"/v1/experiments/{experiment}/suggestions/{leases[client]}"
                return "PUT", path, {"metadata": agent_metadata(client * 1000 + i)}
            assignments = random_assignments(random.Random(client * 100_003 + i))
            values = [{"name": "loss", "value": loss_of(assignments)}]
            body = {"assignments": assignments, "values": values}
            return "POST", f"/v1/experiments/{experiment}/observations", body

        # Warm-up, not measured: the pool opens its connections, PostgreSQL prepares statements.
        run_load(server.url, server.token, CLIENTS, WARM_UP_PER_CLIENT, plan)
        load = run_load(server.url, server.token, CLIENTS, per_client, plan)

        def write(client: int, i: int) -> None:
            method, path, body = plan(client, i + WARM_UP_PER_CLIENT + per_client)
            api.call(method, path.removeprefix("/v1"), body)

        threaded = run_clients(max(per_client // 4, 2), write)
    return WriteResults(observation_times, metadata_times, load, threaded)


def baseline_suite(url: str, samples: int, per_client: int) -> WriteResults:
    """The same with Optuna's RDBStorage."""
    study = baseline.rdb_study(url, "bench-writes")
    storage = study._storage
    tell_times, user_attr_times = [], []
    for i in range(samples):
        trial = study.ask(dict(baseline.DISTRIBUTIONS))
        began = time.perf_counter()
        storage.set_trial_user_attr(trial._trial_id, "lease_expires_at", int(time.time()) + 600 + i)
        user_attr_times.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        study.tell(trial, loss_of(dict(trial.params)))
        tell_times.append((time.perf_counter() - began) * 1000)

    running = [
        storage.create_new_trial(
            study._study_id,
            create_trial(
                state=TrialState.RUNNING,
                params=random_assignments(random.Random(c)),
                distributions=baseline.DISTRIBUTIONS,
            ),
        )
        for c in range(CLIENTS)
    ]

    def write(client: int, i: int) -> None:
        if i % 2:
            storage.set_trial_user_attr(running[client], "lease_expires_at", i)
        else:
            params = random_assignments(random.Random(client * 100_003 + i))
            study.add_trial(
                create_trial(
                    params=params, distributions=baseline.DISTRIBUTIONS, value=loss_of(params)
                )
            )

    load = run_clients(per_client, write)
    return WriteResults(tell_times, user_attr_times, load)


def p50_and_p99(samples: list[float]) -> str:
    return f"{fmt(median(samples))} (p99 {fmt(percentile(samples, 99))})" if samples else "-"


def results_table(ours: WriteResults, theirs: WriteResults) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{b / a:.1f}x" if a else "-"

    rows = [
        [
            "create observation (for a suggestion), 1 client",
            len(ours.observation),
            fmt(median(ours.observation)),
            fmt(percentile(ours.observation, 99)),
            fmt(median(theirs.observation)),
            ratio(median(ours.observation), median(theirs.observation)),
            "p50 ≤ 10",
            "yes" if median(ours.observation) <= 10 else "**NO**",
        ],
        [
            "update suggestion metadata, 1 client",
            len(ours.metadata),
            fmt(median(ours.metadata)),
            fmt(percentile(ours.metadata, 99)),
            fmt(median(theirs.metadata)),
            ratio(median(ours.metadata), median(theirs.metadata)),
            "p50 ≤ 10",
            "yes" if median(ours.metadata) <= 10 else "**NO**",
        ],
        [
            f"{CLIENTS} clients, 50/50 observation/metadata: latency",
            ours.load.writes,
            fmt(median(ours.load.latencies)),
            fmt(percentile(ours.load.latencies, 99)),
            p50_and_p99(theirs.load.latencies),
            "see writes/s below",
            "-",
            "",
        ],
    ]
    table = markdown_table(
        [
            "scenario",
            "n",
            "optfleet p50 ms",
            "p99 ms",
            "Optuna RDB p50 ms",
            "Optuna/optfleet",
            "target",
            "met",
        ],
        rows,
    )
    baseline_rate = theirs.load.per_second

    def load_row(label: str, load: LoadResult, target: bool) -> list[object]:
        met = load.per_second >= 300 and not load.errors
        return [
            label,
            load.writes,
            f"{load.seconds:.1f}",
            f"{load.per_second:,.0f}",
            f"{load.per_second / baseline_rate:.1f}x" if baseline_rate else "-",
            len(load.errors),
            "≥ 300 writes/s" if target else "-",
            ("yes" if met else "**NO**") if target else "",
        ]

    generator = "optfleet server (32 connections of the load generator)"
    load_rows = [load_row(generator, ours.load, True)]
    if ours.threaded_load is not None:
        label = "optfleet server (32 `requests` threads, client-bound)"
        load_rows.append(load_row(label, ours.threaded_load, False))
    optuna = "Optuna RDBStorage (add_trial / set_trial_user_attr)"
    load_rows.append(load_row(optuna, theirs.load, False))
    header = [f"{CLIENTS} concurrent clients", "writes", "seconds", "writes/s", "vs Optuna"]
    throughput = markdown_table([*header, "errors", "target", "met"], load_rows)
    notes = ""
    loads: list[tuple[str, LoadResult | None]] = [
        ("optfleet", ours.load),
        ("optfleet (threads)", ours.threaded_load),
        ("Optuna", theirs.load),
    ]
    for who, load in loads:
        if load is not None and load.errors:
            notes += f"\n\nFirst {who} error ({len(load.errors)} in all): `{load.errors[0]}`"
    return table + "\n\n" + throughput + notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200, help="sequential writes per kind")
    parser.add_argument("--per-client", type=int, default=100, help="writes per concurrent client")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if "postgresql" in args.backends.split(",") and (missing := missing_postgres()):
        return keep_unavailable_section(SECTION, TITLE, missing, write=not args.no_write)

    started = time.monotonic()
    parts = [machine_description(["optuna", "sqlalchemy", "fastapi", "uvicorn", "psycopg"]), ""]
    parts.append(
        "Write latency through the HTTP API from one `requests` client on the same machine; "
        f"throughput from {CLIENTS} concurrent clients: kept-alive connections of the asyncio "
        "load generator in benchmarks/_loadgen.py (≈ 0.4 ms client CPU per write; real workers "
        "run on their own machines), and the same mix from 32 `requests` threads in the "
        "benchmark process (≈ 2.4 ms client CPU per write: client-bound on 2 cores). The same "
        "operations on "
        "Optuna 5 `RDBStorage` in the same run: `tell` for an observation of an asked trial, "
        "`set_trial_user_attr` on a running trial for a metadata update (Optuna cannot change "
        "a finished trial at all), `add_trial` + `set_trial_user_attr` from 32 threads for "
        "the concurrent mix."
    )
    for backend in args.backends.split(","):
        with backend_urls(backend) as (server_url, optuna_url):
            print(f"[{backend}] server…", flush=True)
            ours = server_suite(server_url, args.samples, args.per_client)
            print(f"[{backend}] Optuna RDB baseline…", flush=True)
            theirs = baseline_suite(optuna_url, args.samples, args.per_client)
        parts += ["", f"### {backend}", "", results_table(ours, theirs)]
        print(parts[-1], flush=True)
    parts += ["", f"Total benchmark time: {time.monotonic() - started:.0f} s."]
    if not args.no_write:
        write_section(SECTION, f"## {TITLE}\n\n" + "\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
