"""The agent's own numbers: start-up latency, resume latency among 1,000 foreign open
suggestions, and API calls per evaluation, each against a baseline run in the same invocation.

- Start-up: process start -> first API request (arrival time at a loopback proxy in front of
  the server). Baseline: the official ``sigopt`` client doing the same first request
  (``Connection().experiments(id).fetch()``) from a fresh process.
- Resume: process start -> the resumed evaluation running (its first line of code), with one
  open suggestion of this instance among 1,000 open suggestions of other instances. Baseline:
  the pattern SigOpt documented, by hand with the official client (``suggestions().fetch(
  state="open").iterate_pages()``, filter on ``metadata["instance_id"]``, start the command).
- API calls per evaluation in steady state, counted at the proxy. Baseline: the documented
  loop with the official client (create suggestion, create observation, fetch progress).

Targets (issue 3): start-up <= 0.5 s, resume <= 1 s, <= 3 calls per evaluation.

Run: .venv/bin/python -m benchmarks.bench_agent [--repeat 5] [--foreign 1000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks._report import (
    REPO,
    keep_unavailable_section,
    machine_description,
    markdown_table,
    median,
    write_section,
)
from benchmarks._requirements import missing_modules
from emulators.imds import ImdsEmulator, InstanceIdentity
from tests.agent.helpers import Api
from tests.support.fault_proxy import FaultProxy
from tests.support.ports import wait_until
from tests.support.server import RunningServer

SECTION = "agent"
TITLE = "Worker agent (`worker_bootstrap`)"
ME = "i-0benchmark00001"
# The evaluation records when its first line runs (CLOCK_MONOTONIC is shared by processes).
MARK = "import os, time; open(os.environ['MARK_FILE'], 'w').write(repr(time.monotonic()))"
EVALUATE = [
    sys.executable,
    "-c",
    MARK + "; open(os.environ['OPTFLEET_RESULT_FILE'], 'w').write('{\"value\": 1.0}')",
]
BASELINE_FETCH = """
import sigopt, sys
sigopt.Connection().experiments(sys.argv[1]).fetch()
"""
BASELINE_RESUME = """
import os, subprocess, sys, sigopt
conn = sigopt.Connection()
for s in conn.experiments(sys.argv[1]).suggestions().fetch(state="open").iterate_pages():
    if (s.metadata or {}).get("instance_id") == sys.argv[2]:
        subprocess.run([sys.executable, "-c", sys.argv[3]], check=True)
        break
"""
BASELINE_LOOP = """
import sigopt, sys
conn = sigopt.Connection()
experiment = conn.experiments(sys.argv[1]).fetch()
while experiment.progress.observation_count < experiment.observation_budget:
    s = conn.experiments(sys.argv[1]).suggestions().create(metadata={"instance_id": "i-base"})
    conn.experiments(sys.argv[1]).observations().create(
        suggestion=s.id, values=[{"value": 1.0}], metadata={"instance_id": "i-base"})
    experiment = conn.experiments(sys.argv[1]).fetch()
"""


def agent_env(api_url: str, token: str, imds_url: str, mark: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGOPT_", "OPTFLEET_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "SIGOPT_API_TOKEN": token,
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url,
            "OPTFLEET_ORPHAN_DETECTION": "lease",
            "MARK_FILE": str(mark),
        }
    )
    return env


def agent_argv(eid: str, api_url: str, state: Path, *extra: str) -> list[str]:
    worker = str(Path(sys.executable).with_name("worker-bootstrap"))
    return [worker, "run", "--experiment", eid, "--api-url", api_url, "--state-dir", str(state),
            *extra, "--", *EVALUATE]  # fmt: skip


def official_env(api_url: str, token: str) -> dict[str, str]:
    return {**os.environ, "SIGOPT_API_URL": api_url, "SIGOPT_API_TOKEN": token}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (load-independent, unlike wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_to_first_request(
    proxy: FaultProxy, argv: list[str], env: dict[str, str]
) -> tuple[float, float]:
    """Start ``argv``; (wall s, CPU s) until the proxy sees its first request; then stop it."""
    seen = len(proxy.arrivals)
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: len(proxy.arrivals) > seen, 60, "first API request", interval_s=0.002)
        cpu = cpu_seconds(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    return proxy.arrivals[seen] - started, cpu


def time_to_mark(argv: list[str], env: dict[str, str], mark: Path) -> float:
    """Start ``argv``; seconds until the evaluation wrote its start mark; waits for the exit."""
    mark.unlink(missing_ok=True)
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stdout[-2000:]!r} {done.stderr[-2000:]!r}")
    return float(mark.read_text()) - started


def populate_foreign(api: Api, eid: str, count: int) -> None:
    """``count`` open suggestions of other instances (manual assignments: no optimizer cost)."""

    def one(n: int) -> None:
        api_local = Api(api.url, api.session.auth[0])  # type: ignore[index]
        api_local.call(
            "POST",
            f"/experiments/{eid}/suggestions",
            json={
                "assignments": {"x": (n % 997) / 997, "y": (n % 991) / 991},
                "metadata": {"instance_id": f"i-0other{n:09d}", "lease_expires_at": 4102444800},
            },
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(count)))


def rounded(samples: list[float]) -> list[float]:
    return [round(x, 3) for x in samples]


def calls_by_kind(proxy: FaultProxy, start: int) -> int:
    return len(proxy.log) - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--foreign", type=int, default=1000)
    parser.add_argument("--evaluations", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if missing := missing_modules(["sigopt"], "the official client, in the dev lock: `make deps`"):
        return keep_unavailable_section(SECTION, TITLE, missing, write=not args.no_write)
    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    mark = tmp / "mark"
    rows: list[list[object]] = []
    with (
        RunningServer.start() as server,
        FaultProxy(server.url) as proxy,
        ImdsEmulator(identity=InstanceIdentity(instance_id=ME)) as imds,
    ):
        api = Api(server.url, server.token)
        env = agent_env(proxy.url, server.token, imds.url, mark)

        # 1. Start-up -> first API request.
        eid = api.create_experiment(budget=1000)
        # Interleaved, so load drifting on a shared machine hits both sides alike.
        base_argv = [sys.executable, "-c", BASELINE_FETCH, eid]
        agent_pairs: list[tuple[float, float]] = []
        base_pairs: list[tuple[float, float]] = []
        floor: list[float] = []
        for n in range(args.repeat):
            argv = agent_argv(eid, proxy.url, tmp / f"s{n}")
            agent_pairs.append(time_to_first_request(proxy, argv, env))
            base_env = official_env(proxy.url, server.token)
            base_pairs.append(time_to_first_request(proxy, base_argv, base_env))
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", "import requests"], check=True)
            floor.append(time.monotonic() - started)
        agent_startup = [wall for wall, _ in agent_pairs]
        base_startup = [wall for wall, _ in base_pairs]
        agent_cpu = median([cpu for _, cpu in agent_pairs])
        base_cpu = median([cpu for _, cpu in base_pairs])
        rows.append(["start-up -> first API request (s, median)", f"{median(agent_startup):.3f}",
                     f"{median(base_startup):.3f}", "official client `experiments(id).fetch()`",
                     f"{median(agent_startup) / median(base_startup):.2f}", "<= 0.5"])  # fmt: skip

        # 2. Resume latency with `foreign` open suggestions of other instances.
        eid = api.create_experiment(budget=1)
        populate_foreign(api, eid, args.foreign)
        agent_resume: list[float] = []
        base_resume: list[float] = []
        for n in range(args.repeat):
            mine = api.create_suggestion(eid, {"instance_id": ME})
            argv = agent_argv(eid, proxy.url, tmp / f"r{n}", "--max-evaluations", "0")
            agent_resume.append(time_to_mark(argv, {**env, "OPTFLEET_ADOPT": "false"}, mark))
            assert api.suggestion(eid, str(mine["id"]))["state"] == "closed"
            api.create_suggestion(eid, {"instance_id": ME})
            base_argv = [sys.executable, "-c", BASELINE_RESUME, eid, ME, MARK]
            base_env = {**official_env(proxy.url, server.token), "MARK_FILE": str(mark)}
            base_resume.append(time_to_mark(base_argv, base_env, mark))
            # The baseline leaves its suggestion open; close it so the next round finds one.
            for s in api.open_suggestions(eid):
                if (s.get("metadata") or {}).get("instance_id") == ME:
                    api.call("POST", f"/experiments/{eid}/observations",
                             json={"suggestion": s["id"], "values": [{"value": 0.0}]})  # fmt: skip
        rows.append(["floor: `python -c 'import requests'` (s, median)",
                     f"{median(floor):.3f}", "-", "-", "-", "-"])  # fmt: skip
        rows.append(["start-up -> first API request, CPU s of the process (median)",
                     f"{agent_cpu:.3f}", f"{base_cpu:.3f}", "same",
                     f"{agent_cpu / base_cpu:.2f}", "-"])  # fmt: skip
        rows.append([f"resume among {args.foreign} foreign open suggestions (s, median)",
                     f"{median(agent_resume):.3f}", f"{median(base_resume):.3f}",
                     "documented pattern with the official client",
                     f"{median(agent_resume) / median(base_resume):.2f}", "<= 1"])  # fmt: skip

        # 3. API calls per evaluation in steady state.
        n_eval = args.evaluations
        eid = api.create_experiment(budget=n_eval)
        start = len(proxy.log)
        done = subprocess.run(agent_argv(eid, proxy.url, tmp / "c"), env=env, capture_output=True,
                              timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:]
        agent_calls = calls_by_kind(proxy, start)
        # Start-up costs two calls (progress + listing) and the end one listing (orphans).
        agent_steady = (agent_calls - 3) / n_eval
        eid = api.create_experiment(budget=n_eval)
        start = len(proxy.log)
        subprocess.run([sys.executable, "-c", BASELINE_LOOP, eid], check=True, timeout=600,
                       env=official_env(proxy.url, server.token))  # fmt: skip
        base_calls = calls_by_kind(proxy, start)
        base_steady = (base_calls - 1) / n_eval
        rows.append([f"API calls per evaluation, steady state ({n_eval} evaluations)",
                     f"{agent_steady:.2f} ({agent_calls} total)",
                     f"{base_steady:.2f} ({base_calls} total)",
                     "documented loop with the official client",
                     f"{agent_steady / base_steady:.2f}", "<= 3"])  # fmt: skip
    body = "\n".join(
        [
            f"## {TITLE}",
            "",
            machine_description(["requests", "sigopt"]),
            f"- Repeats: {args.repeat} (medians); server on SQLite, loopback; a pass-through "
            "proxy timestamps requests.",
            f"- Load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(other work shares the machine; wall times scale with it, CPU times do not).",
            "",
            markdown_table(
                ["measure", "agent", "baseline", "baseline is", "ratio agent/baseline", "target"],
                rows,
            ),
            "",
            f"Samples (s): start-up agent {rounded(agent_startup)}, baseline "
            f"{rounded(base_startup)}; resume agent {rounded(agent_resume)}, baseline "
            f"{rounded(base_resume)}.",
            "The agent does more than the baselines before its first request (IMDSv2 token and "
            "identity, journal recovery) and on resume (lease renewal, journal, checkpoint dir).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
