"""Write latency and throughput of the real server vs Optuna on RDB storage, same invocation.

For each backend (SQLite file, PostgreSQL): create-observation p50/p99 (an observation for an
open suggestion, the worker's path), metadata-update p50/p99 (PUT a suggestion's metadata, the
agent's lease renewal), both from one client; then writes per second from 32 concurrent clients
(half observations, half metadata updates), with latency under load and the error count.
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
from dataclasses import dataclass, field

from optuna.trial import TrialState, create_trial

from benchmarks import _optuna_baseline as baseline
from benchmarks._api import Api, loss_of, random_assignments
from benchmarks._report import (
    machine_description,
    markdown_table,
    median,
    percentile,
    write_section,
)
from benchmarks.bench_suggest import backend_urls, fmt

BENCH_TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a loopback server
SECTION = "writes"
CLIENTS = 32


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


@dataclass
class Load:
    """Outcome of the concurrent phase."""

    writes: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.writes / self.seconds if self.seconds else 0.0


def run_clients(per_client: int, write: Callable[[int, int], None]) -> Load:
    """``CLIENTS`` threads each doing ``per_client`` writes ``write(client, i)``; timed together."""
    load = Load()
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
    load: Load


def server_suite(db_url: str | None, samples: int, per_client: int) -> WriteResults:
    """Sequential latencies, then the 32-client mix, against a running server."""
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

        def write(client: int, i: int) -> None:
            if i % 2:
                api.call(
                    "PUT",
                    f"/experiments/{experiment}/suggestions/{leases[client]}",
                    {"metadata": agent_metadata(client * 1000 + i)},
                )
            else:
                local = random.Random(client * 100_003 + i)
                api.observe_assignments(experiment, random_assignments(local), failed=False)

        load = run_clients(per_client, write)
    return WriteResults(observation_times, metadata_times, load)


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
    throughput = markdown_table(
        [
            f"{CLIENTS} concurrent clients",
            "writes",
            "seconds",
            "writes/s",
            "errors",
            "target",
            "met",
        ],
        [
            [
                "optfleet server",
                ours.load.writes,
                f"{ours.load.seconds:.1f}",
                f"{ours.load.per_second:,.0f}",
                len(ours.load.errors),
                "≥ 300 writes/s",
                "yes" if ours.load.per_second >= 300 and not ours.load.errors else "**NO**",
            ],
            [
                "Optuna RDBStorage (add_trial / set_trial_user_attr)",
                theirs.load.writes,
                f"{theirs.load.seconds:.1f}",
                f"{theirs.load.per_second:,.0f}",
                len(theirs.load.errors),
                "-",
                "",
            ],
        ],
    )
    notes = ""
    for who, load in (("optfleet", ours.load), ("Optuna", theirs.load)):
        if load.errors:
            notes += f"\n\nFirst {who} error ({len(load.errors)} in all): `{load.errors[0]}`"
    return table + "\n\n" + throughput + notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=200, help="sequential writes per kind")
    parser.add_argument("--per-client", type=int, default=60, help="writes per concurrent client")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    started = time.monotonic()
    parts = [machine_description(["optuna", "sqlalchemy", "fastapi", "uvicorn", "psycopg"]), ""]
    parts.append(
        "Write latency through the HTTP API from a client on the same machine (the client's "
        f"{CLIENTS} threads share the 2 cores with the server), and the same operations on "
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
        write_section(SECTION, "## Writes (suggestion server)\n\n" + "\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
