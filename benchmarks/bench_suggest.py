"""Create-suggestion latency of the real server vs Optuna on RDB storage (ask), same invocation.

For each backend (SQLite file, PostgreSQL) it starts `python -m suggestion_server`, seeds an
offline experiment with 5 parameters (the engine picks its Gaussian process for this space)
through the HTTP API, and times POST suggestions at
100, 1,000 and 5,000 observations, with 500 open suggestions (on 1,000 observations), and the
first suggestion after a server restart at 5,000 observations. The baseline does the same with
`optuna.storages.RDBStorage` on the same kind of database: ask (timed) + tell. An engine-only
run (in-memory rows, no HTTP, no database) shows how much of the cost is Optuna itself.

Run: .venv/bin/python -m benchmarks.bench_suggest [--backends sqlite,postgresql] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _optuna_baseline as baseline
from benchmarks._api import Api, loss_of, open_manual_suggestions, seed_observations
from benchmarks._report import (
    keep_unavailable_section,
    machine_description,
    markdown_table,
    median,
    percentile,
    write_section,
)
from benchmarks._requirements import missing_postgres
from tests.support.postgres import PostgresCluster
from tests.support.server import RunningServer

BENCH_TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a loopback server
SECTION = "suggest"
TITLE = "Suggestion creation (suggestion server)"
TARGETS_MS = {1000: 120.0, 5000: 250.0, "open": 250.0, "restart": 2000.0}


_STARTED = time.monotonic()


def progress(what: str) -> None:
    """A progress line with the elapsed time."""
    print(f"  [{time.monotonic() - _STARTED:6.0f} s] {what}", flush=True)


@dataclass
class Timings:
    """Milliseconds per scenario label."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, values: list[float]) -> None:
        self.samples[label] = values


def create_and_observe(api: Api, experiment_id: str, count: int) -> list[float]:
    """Time ``count`` suggestion creates; each is then observed (untimed), like a worker."""
    times = []
    for _ in range(count):
        elapsed, suggestion = api.timed("POST", f"/experiments/{experiment_id}/suggestions", {})
        times.append(elapsed)
        body = {
            "suggestion": suggestion["id"],
            "values": [{"name": "loss", "value": loss_of(suggestion["assignments"])}],
        }
        api.call("POST", f"/experiments/{experiment_id}/observations", body)
    return times


def server_suite(
    db_url: str | None,
    sizes: list[int],
    open_count: int,
    open_base: int,
    samples: int,
    restarts: int,
) -> Timings:
    """All server scenarios on one database."""
    timings = Timings()
    server = RunningServer.start(db_url=db_url, token=BENCH_TOKEN)
    try:
        api = Api(server.url, server.token)
        experiment = api.create_experiment("bench-suggest")
        observed = 0
        for size in sizes:
            progress(f"server: seeding to {size} observations")
            seed_observations(api, experiment, size - observed, seed=size)
            create_and_observe(api, experiment, 1)  # reads the newly seeded rows: warm-up
            timings.add(f"{size} observations", create_and_observe(api, experiment, samples))
            observed = size + 1 + samples
            if size == open_base:
                # Parallel workers: the same experiment with open_count open suggestions.
                progress(f"server: {open_count} open")
                open_manual_suggestions(api, experiment, open_count, seed=7)
                create_and_observe(api, experiment, 1)
                timings.add(
                    f"{open_count} open ({open_base} observations)",
                    create_and_observe(api, experiment, samples),
                )
                api.call("DELETE", f"/experiments/{experiment}/suggestions?state=open")
                observed += 1 + samples
        restart_times = []
        progress("server: restarts")
        for _ in range(restarts):
            server.stop_process()
            server.restart()
            restart_times += create_and_observe(api, experiment, 1)
        timings.add(f"first after restart ({sizes[-1]} observations)", restart_times)
    finally:
        server.stop()
    return timings


def baseline_suite(
    url: str, sizes: list[int], open_count: int, open_base: int, samples: int, restarts: int
) -> Timings:
    """The same scenarios with Optuna's RDBStorage: ask (timed) + tell."""
    timings = Timings()
    study = baseline.rdb_study(url, "bench-suggest")
    # SQLite serializes writers; PostgreSQL takes the seeding from several threads.
    workers = 1 if url.startswith("sqlite") else 4
    finished = 0
    for size in sizes:
        progress(f"Optuna: seeding to {size} trials")
        baseline.bulk_add_finished_trials(url, study, size - finished, seed=size)
        asks, _ = baseline.ask_and_tell(study, samples)
        timings.add(f"{size} observations", asks)
        finished = size + samples
        if size == open_base:
            progress(f"Optuna: {open_count} open")
            running = baseline.add_running_trials(study, open_count, seed=7, workers=workers)
            asks, _ = baseline.ask_and_tell(study, samples)
            timings.add(f"{open_count} open ({open_base} observations)", asks)
            baseline.fail_trials(study, running)
            finished += samples
    progress("Optuna: cold asks")
    timings.add(
        f"first after restart ({sizes[-1]} observations)",
        [baseline.cold_first_ask(url, "bench-suggest") for _ in range(restarts)],
    )
    return timings


def engine_suite(sizes: list[int], open_count: int, open_base: int, samples: int) -> Timings:
    """The engine alone on in-memory rows (no HTTP, no database), including a cold build."""
    from suggestion_server.optimizer.api import ParameterSpec, SearchSpec
    from suggestion_server.optimizer.suggester import StudySuggester
    from tests.suggest.rows import MemoryRows

    params = (
        ParameterSpec("lr", "double", 1e-5, 1.0, log=True),
        ParameterSpec("momentum", "double", 0.0, 1.0),
        ParameterSpec("units", "int", 1, 100),
        ParameterSpec("activation", "categorical", categories=("relu", "tanh", "gelu")),
        ParameterSpec("shift", "double", -5.0, 5.0),
    )
    timings = Timings()

    def rows_with(experiment_id: int, observations: int, open_suggestions: int) -> MemoryRows:
        rows = MemoryRows(SearchSpec(experiment_id, "offline", params, ("loss",), ("minimize",)))
        rng = random.Random(experiment_id)
        from benchmarks._api import random_assignments

        for _ in range(observations):
            failed = rng.random() < 0.05
            a = random_assignments(rng)
            rows.observe(None, None if failed else {"loss": loss_of(a)}, failed, assignments=a)
        for sid in range(10**6, 10**6 + open_suggestions):
            rows.suggestions[sid] = random_assignments(rng)
        return rows

    def timed_creates(rows: MemoryRows, engine: StudySuggester, count: int) -> list[float]:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            sid, a = rows.create_suggestion(engine)
            times.append((time.perf_counter() - started) * 1000)
            rows.observe(sid, {"loss": loss_of(dict(a))})
        return times

    engine = StudySuggester(seed=1)
    for size in sizes:
        rows = rows_with(size, size, 0)
        timings.add(f"{size} observations (cold build)", timed_creates(rows, engine, 1))
        timings.add(f"{size} observations", timed_creates(rows, engine, samples))
    rows = rows_with(10**6, open_base, open_count)
    timed_creates(rows, engine, 1)
    timings.add(
        f"{open_count} open ({open_base} observations)", timed_creates(rows, engine, samples)
    )
    return timings


@contextmanager
def backend_urls(backend: str) -> Iterator[tuple[str | None, str]]:
    """(server db URL or None for a temp SQLite file, Optuna baseline URL) for a backend."""
    if backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="optfleet-bench-"))
        try:
            yield None, f"sqlite:///{tmp / 'optuna.db'}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    elif backend == "postgresql":
        cluster = PostgresCluster.start()
        try:
            yield cluster.create_database(), cluster.create_database()
        finally:
            cluster.stop()
    else:
        raise SystemExit(f"--backends: unknown backend {backend!r} (sqlite, postgresql)")


def target_for(label: str) -> float | None:
    if label.startswith("first after restart"):
        return TARGETS_MS["restart"]
    if " open " in label:
        return TARGETS_MS["open"]
    for size in (1000, 5000):
        if label == f"{size} observations":
            return TARGETS_MS[size]
    return None


def fmt(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def results_table(server: Timings, optuna_rdb: Timings) -> str:
    rows = []
    for label, ours in server.samples.items():
        theirs = optuna_rdb.samples.get(label, [])
        target = target_for(label)
        ours_p50 = median(ours)
        verdict = "" if target is None else ("yes" if ours_p50 <= target else "**NO**")
        rows.append(
            [
                label,
                len(ours),
                fmt(ours_p50),
                fmt(percentile(ours, 99)),
                fmt(median(theirs)) if theirs else "-",
                fmt(percentile(theirs, 99)) if theirs else "-",
                f"{median(theirs) / ours_p50:.1f}x" if theirs else "-",
                "-" if target is None else f"≤ {target:,.0f}",
                verdict,
            ]
        )
    return markdown_table(
        [
            "scenario",
            "n",
            "optfleet p50 ms",
            "p99 ms",
            "Optuna RDB p50 ms",
            "p99 ms",
            "Optuna/optfleet (p50)",
            "target p50 ms",
            "met",
        ],
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--open", type=int, default=500, dest="open_count")
    parser.add_argument(
        "--open-base",
        type=int,
        default=1000,
        help="observation count (one of --sizes) at which the open scenario runs",
    )
    parser.add_argument("--samples", type=int, default=40, help="timed creates per scenario")
    parser.add_argument("--baseline-samples", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--baseline-restarts", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if "postgresql" in args.backends.split(",") and (missing := missing_postgres()):
        return keep_unavailable_section(SECTION, TITLE, missing, write=not args.no_write)
    sizes = [int(s) for s in args.sizes.split(",")]

    started = time.monotonic()
    parts = [machine_description(["optuna", "sqlalchemy", "fastapi", "uvicorn", "psycopg"]), ""]
    parts.append(
        "Create-suggestion latency through the HTTP API (`POST /v1/experiments/{id}/suggestions`, "
        "5 parameters: 3 double (one log), 1 int, 1 categorical, for which the engine picks its "
        "Gaussian process; engine runs compute in the server's engine process), measured from a "
        "client in the same machine, each create followed by an (untimed) observation like a "
        "worker. Observations were seeded through the API (5% failed). With 500 open "
        "suggestions the fleet is large enough for the suggestion pool, so most creates take a "
        "precomputed entry (docs/api.md, 'The suggestion pool'); the engine-only table below "
        "gives the engine's own time in that scenario. Baseline in the same run: Optuna 5 "
        "(TPE) on `RDBStorage` (the same database engine), `study.ask()` timed, then `tell`; its "
        "'first after restart' is a fresh `RDBStorage` + `load_study` + one ask. With "
        f"{args.samples} samples p99 is close to the maximum."
    )
    for backend in args.backends.split(","):
        with backend_urls(backend) as (server_url, optuna_url):
            print(f"[{backend}] server…", flush=True)
            ours = server_suite(
                server_url, sizes, args.open_count, args.open_base, args.samples, args.restarts
            )
            print(f"[{backend}] Optuna RDB baseline…", flush=True)
            theirs = baseline_suite(
                optuna_url,
                sizes,
                args.open_count,
                args.open_base,
                args.baseline_samples,
                args.baseline_restarts,
            )
        parts += ["", f"### {backend}", "", results_table(ours, theirs)]
        print(parts[-1], flush=True)
    print("[engine only]…", flush=True)
    engine = engine_suite(sizes, args.open_count, args.open_base, args.samples)
    parts += [
        "",
        "### engine only (in-memory rows, no HTTP, no database)",
        "",
        markdown_table(
            ["scenario", "n", "p50 ms", "p99 ms"],
            [
                [label, len(v), fmt(median(v)), fmt(percentile(v, 99))]
                for label, v in engine.samples.items()
            ],
        ),
        "",
        f"Total benchmark time: {time.monotonic() - started:.0f} s.",
    ]
    print("\n".join(parts[-4:]), flush=True)
    if not args.no_write:
        write_section(SECTION, f"## {TITLE}\n\n" + "\n".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
