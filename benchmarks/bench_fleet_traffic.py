"""Agent fleet traffic: requests/s and server CPU per agent with real agent processes.

Two parts, one server (SQLite, loopback), one invocation:

1. Per-request server cost: each kind of request an agent sends, repeated serially against an
   experiment with 1,000 open suggestions; the server process's CPU time (/proc) per request and
   the bytes on the wire (request body + response body; headers add about 300 B each way).
2. A fleet of real agent processes (``python -m worker_bootstrap run``, one IMDS emulator each)
   on a short clock (evaluation, scan interval and lease much shorter than in production) next to
   foreign open suggestions that bring the open set to 1,000, the size at which the old cadence
   hurt. Requests are counted by kind at a pass-through proxy over a window that starts one
   stretched scan interval after every agent's first scan; server CPU over the same window. Three
   runs: the new cadence on our server (lapsed-only scans between stretched full ones), the new
   cadence as on a plain SigOpt server (``OPTFLEET_SCAN_FILTERS=false``), and the old fixed
   cadence (``OPTFLEET_ADOPT_SCAN_ROWS=0``) as the baseline.

docs/scaling.md turns these numbers into the model for 1,000 and 10,000 agents.

Run: .venv/bin/python -m benchmarks.bench_fleet_traffic [--agents 100] [--window 180] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from benchmarks._report import machine_description, markdown_table, write_section
from benchmarks.bench_agent import cpu_seconds, populate_foreign
from emulators.imds import ImdsEmulator
from tests.agent.helpers import AgentProcess, Api, emulator
from tests.support.agent_requests import NAMES, kind_of
from tests.support.fault_proxy import FaultProxy
from tests.support.ports import wait_until
from tests.support.server import RunningServer

SECTION = "fleet_traffic"
OPEN_SET = 1000
# The short clock (production defaults: 60 s between scans, a 600 s lease, evaluations of minutes).
ADOPT_INTERVAL_S = 12.0
LEASE_TTL_S = 60.0  # renewed every 20 s: about every other evaluation
CLAIM_SETTLE_S = 31.0  # longer than the HTTP timeout (30 s), as the claim protocol wants
EVALUATION_S = 10.0
SCAN_ROWS = 100
EVALUATE = [
    "/bin/sh",
    "-c",
    f'sleep {EVALUATION_S:g}; echo \'{{"value": 1}}\' > "$OPTFLEET_RESULT_FILE"',
]
LAPSED = "lapsed_scan_page"
FULL = "scan_page"
LABELS = {
    "create_suggestion": "create suggestion",
    "create_observation": "create observation",
    "progress": "progress check",
    "lease_read": "lease: read suggestion",
    "lease_write": "lease: write metadata",
    LAPSED: "orphan scan, lapsed only (page)",
    FULL: "orphan scan, full list (page)",
}
# (label, agent settings): the new cadence on our server, on a plain SigOpt server, the old one.
CONFIGS = [
    ("new, our server (filter + stretched)", {}),
    ("new, plain SigOpt server (stretched)", {"OPTFLEET_SCAN_FILTERS": "false"}),
    (
        "old (fixed interval), baseline",
        {"OPTFLEET_ADOPT_SCAN_ROWS": "0", "OPTFLEET_SCAN_FILTERS": "false"},
    ),
]


def create_random_experiment(api: Api, name: str) -> str:
    """A random-search experiment: the engine's cost is not what this benchmark measures."""
    body = {
        "name": name,
        "type": "random",
        "parameters": [
            {"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}},
            {"name": "y", "type": "double", "bounds": {"min": 0, "max": 1}},
        ],
    }
    return str(api.call("POST", "/experiments", json=body)["id"])


@dataclass
class Cost:
    """Server CPU and bytes of one request kind."""

    cpu_ms: float
    request_bytes: float
    response_bytes: float


def measure(server: RunningServer, count: int, send: Any) -> Cost:
    """Run ``send(n)`` (returns (request bytes, response bytes)) ``count`` times serially."""
    pid = server._proc.pid if server._proc else 0
    before = cpu_seconds(pid)
    sizes = [send(n) for n in range(count)]
    cpu = cpu_seconds(pid) - before
    return Cost(
        cpu_ms=1000 * cpu / count,
        request_bytes=sum(s[0] for s in sizes) / count,
        response_bytes=sum(s[1] for s in sizes) / count,
    )


def per_request_costs(server: RunningServer, api: Api, count: int) -> dict[str, Cost]:
    """Each agent request kind against an experiment with ``OPEN_SET`` open suggestions."""
    eid = create_random_experiment(api, "per-request-costs")
    populate_foreign(api, eid, OPEN_SET)
    session = requests.Session()
    session.auth = (server.token, "")
    base = f"{server.url}/v1/experiments/{eid}"
    created: list[dict[str, Any]] = []

    def call(method: str, url: str, **kwargs: Any) -> tuple[int, int]:
        response = session.request(method, url, timeout=60, **kwargs)
        response.raise_for_status()
        sent = len(response.request.body or b"")
        return sent, len(response.content)

    def create(n: int) -> tuple[int, int]:
        metadata = {"instance_id": f"i-0cost{n:011d}", "lease_expires_at": 4102444800.0}
        response = session.post(f"{base}/suggestions", json={"metadata": metadata}, timeout=60)
        response.raise_for_status()
        created.append(response.json())
        return len(response.request.body or b""), len(response.content)

    def renew(n: int) -> tuple[int, int]:
        s = created[n]
        metadata = {**s["metadata"], "lease_expires_at": 4102444900.0}
        return call("PUT", f"{base}/suggestions/{s['id']}", json={"metadata": metadata})

    def observe(n: int) -> tuple[int, int]:
        body = {"suggestion": created[n]["id"], "values": [{"value": 1.0}],
                "metadata": {"instance_id": created[n]["metadata"]["instance_id"]}}  # fmt: skip
        return call("POST", f"{base}/observations", json=body)

    lapsed_query = {"state": "open", "lease_expired_by": f"{time.time():.3f}"}
    return {
        FULL: measure(
            server,
            max(5, count // 5),
            lambda n: call("GET", f"{base}/suggestions", params={"state": "open"}),
        ),
        LAPSED: measure(
            server, count, lambda n: call("GET", f"{base}/suggestions", params=lapsed_query)
        ),
        "create_suggestion": measure(server, count, create),
        "progress": measure(server, count, lambda n: call("GET", base)),
        "lease_read": measure(
            server, count, lambda n: call("GET", f"{base}/suggestions/{created[n]['id']}")
        ),
        "lease_write": measure(server, count, renew),
        "create_observation": measure(server, count, observe),
    }


@dataclass
class FleetRun:
    """What one fleet run measured over its window."""

    label: str
    agents: int
    window_s: float
    counts: Counter[str]
    server_cpu_s: float

    @property
    def evaluations(self) -> int:
        return self.counts["create_observation"]

    def per_agent(self, value: float) -> float:
        """``value`` over the window, per agent and second."""
        return value / self.window_s / self.agents

    def requests(self, kind: str | None = None) -> int:
        return sum(self.counts.values()) if kind is None else self.counts[kind]

    def other(self) -> int:
        return sum(n for kind, n in self.counts.items() if kind not in NAMES)

    def body_bytes(self, costs: dict[str, Cost]) -> float:
        return sum(
            self.counts[k] * (costs[k].request_bytes + costs[k].response_bytes) for k in NAMES
        )


def run_fleet(
    server: RunningServer,
    api: Api,
    root: Path,
    agents: int,
    window_s: float,
    warmup_s: float,
    config: tuple[str, dict[str, str]],
) -> FleetRun:
    """Start ``agents`` agent processes, measure a window of steady state, stop them."""
    label, settings = config
    eid = create_random_experiment(api, label)
    populate_foreign(api, eid, OPEN_SET - agents)
    env = {
        "OPTFLEET_ADOPT_INTERVAL": f"{ADOPT_INTERVAL_S:g}",
        "OPTFLEET_LEASE_TTL": f"{LEASE_TTL_S:g}",
        "OPTFLEET_CLAIM_SETTLE": f"{CLAIM_SETTLE_S:g}",
        "OPTFLEET_SPOT_POLL_INTERVAL": "30",  # IMDS is not under test
        "OPTFLEET_HTTP_TIMEOUT": "30",
        **settings,
    }
    imdses: list[ImdsEmulator] = []
    fleet: list[AgentProcess] = []
    pid = server._proc.pid if server._proc else 0
    tag = f"{len(list(root.iterdir())):03d}"
    with FaultProxy(server.url, timeout_s=60) as proxy:
        try:
            for n in range(agents):
                imds = emulator(f"i-0fleet{tag}{n:06d}")
                imdses.append(imds)
                agent = AgentProcess(proxy.url, server.token, eid, imds.url, root / f"{tag}-{n}",
                                     env=env, command=EVALUATE)  # fmt: skip
                fleet.append(agent.start())
            wait_until(
                lambda: all(a.events("open_suggestions_listed") for a in fleet),
                300,
                "every agent's first scan",
                interval_s=1.0,
            )
            # Warm-up: one stretched interval, so the first periodic scans (drawn within it)
            # do not all fall before or into the window.
            time.sleep(warmup_s)
            start_log, start_cpu = len(proxy.log), cpu_seconds(pid)
            started = time.monotonic()
            time.sleep(window_s)  # the measurement window itself
            window = time.monotonic() - started
            entries = proxy.log[start_log:]
            server_cpu = cpu_seconds(pid) - start_cpu
        finally:
            for agent in fleet:
                if agent.proc is not None and agent.proc.poll() is None:
                    agent.signal(signal.SIGTERM)
            for agent in fleet:
                if agent.proc is not None:
                    try:
                        agent.proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        agent.kill()
            for imds in imdses:
                imds.stop()
    counts = Counter(kind_of(method, path) for method, path, _, _ in entries)
    return FleetRun(label, agents, window, counts, server_cpu)


def fleet_table(runs: list[FleetRun], costs: dict[str, Cost]) -> str:
    """Per agent: requests/s by kind and in all, bytes, server CPU; ratios against the last run."""

    def row(name: str, values: list[float], digits: int) -> list[object]:
        cells: list[object] = [name, *(f"{v:.{digits}f}" for v in values)]
        cells += [f"{v / values[-1]:.2f}" if values[-1] else "-" for v in values[:-1]]
        return cells

    rows = [row(LABELS[k], [r.per_agent(r.requests(k)) for r in runs], 4) for k in NAMES]
    rows.append(row("**requests/s, all**", [r.per_agent(r.requests()) for r in runs], 4))
    rows.append(row("body KB/s", [r.per_agent(r.body_bytes(costs)) / 1000 for r in runs], 2))
    rows.append(row("**server CPU ms/s**", [1000 * r.per_agent(r.server_cpu_s) for r in runs], 2))
    rows.append(row("evaluations/s", [r.per_agent(r.evaluations) for r in runs], 4))
    rows.append(row("server CPU ms per evaluation",
                    [1000 * r.server_cpu_s / max(1, r.evaluations) for r in runs], 1))  # fmt: skip
    rows.append(row("requests per evaluation",
                    [r.requests() / max(1, r.evaluations) for r in runs], 2))  # fmt: skip
    header = ["per agent", *(r.label for r in runs)]
    header += [f"ratio {r.label.split(' (')[0]} / old" for r in runs[:-1]]
    return markdown_table(header, rows)


def cost_table(costs: dict[str, Cost]) -> str:
    rows = [
        [LABELS[kind], f"{c.cpu_ms:.2f}", f"{c.request_bytes:.0f}", f"{c.response_bytes:.0f}"]
        for kind, c in costs.items()
    ]
    return markdown_table(
        ["request (1,000 open suggestions)", "server CPU ms", "request body B", "response B"],
        rows,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--window", type=float, default=180.0, help="seconds measured per run")
    parser.add_argument(
        "--warmup", type=float, default=ADOPT_INTERVAL_S * OPEN_SET / SCAN_ROWS, help="seconds"
    )
    parser.add_argument("--requests", type=int, default=100, help="per kind, for the costs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not 0 < args.agents < OPEN_SET:
        parser.error(f"--agents {args.agents}: expected 1 to {OPEN_SET - 1}")
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    header = machine_description(["requests", "uvicorn", "fastapi"])
    started = time.monotonic()
    with RunningServer.start() as server:
        api = Api(server.url, server.token)
        costs = per_request_costs(server, api, args.requests)
        print(cost_table(costs), flush=True)
        runs = []
        for config in CONFIGS:
            runs.append(run_fleet(server, api, root, args.agents, args.window, args.warmup, config))
            print(runs[-1], flush=True)
    body = "\n".join(
        [
            "## Agent fleet traffic (real agent processes)",
            "",
            header,
            f"- {args.agents} agent processes (`python -m worker_bootstrap run`, lease-mode "
            f"orphan detection, one IMDS emulator each) on one random-search experiment with "
            f"{OPEN_SET} open suggestions ({OPEN_SET - args.agents} foreign ones with fresh "
            "leases); server on SQLite, one process, loopback, behind a counting pass-through "
            "proxy (in the benchmark's process, like the IMDS emulators).",
            "- Short clock (production defaults in brackets): scan interval "
            f"{ADOPT_INTERVAL_S:g} s (60 s), lease {LEASE_TTL_S:g} s (600 s; renewed every third "
            "of it), evaluations "
            f"{EVALUATION_S:g} s (a `sleep`; minutes to hours in production), so the old cadence "
            "scans about every other evaluation.",
            f"- Three runs in one invocation, {args.window:g} s measured each after every agent's "
            f"first scan and a {args.warmup:g} s warm-up: the new cadence on our server "
            "(lapsed-only scans between stretched full ones), the new cadence as on a plain "
            "SigOpt server (`OPTFLEET_SCAN_FILTERS=false`: stretched full scans only), and the "
            "old fixed cadence as the baseline (`OPTFLEET_ADOPT_SCAN_ROWS=0`). Load average at "
            f"the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine); "
            f"total time {time.monotonic() - started:.0f} s.",
            "",
            fleet_table(runs, costs),
            "",
            "Server cost per request, measured serially on the same server before the fleets "
            "(CPU time of the server process from /proc; bytes are bodies only, HTTP headers add "
            "about 300 B each way):",
            "",
            cost_table(costs),
            "",
            "Server CPU over each window: "
            + ", ".join(f"{r.label}: {r.server_cpu_s:.1f} s" for r in runs)
            + f". Requests of no agent kind: {sum(r.other() for r in runs)}.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
