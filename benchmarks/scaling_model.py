"""The fleet traffic model of docs/scaling.md: per-agent request rates at production defaults
times the per-request server costs measured by benchmarks/bench_fleet_traffic.py.

Not a benchmark (nothing is measured here): it prints the tables docs/scaling.md shows, so the
doc can be regenerated when the measured costs change (edit ``MEASURED``).

Run: .venv/bin/python -m benchmarks.scaling_model
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmarks._report import markdown_table

# Production defaults of the agent (docs/agent.md).
ADOPT_INTERVAL_S = 60.0
SCAN_ROWS = 100
LAPSED_ROW_DISCOUNT = 5
LEASE_TTL_S = 600.0
PAGE_ROWS = 1000
HEADERS_B = 600  # request + response headers, both ways, about

# Server CPU ms and body bytes (request + response) per request, from docs/benchmarks.md
# ("Agent fleet traffic", the serial per-request table, 1,000 open suggestions, SQLite, one
# server process). Full-list and lapsed-only costs are per 1,000 rows (full: rendered; lapsed:
# read). "create suggestion" is the random engine's: the model-based engine's share is the
# suggestion pool's business (docs/scaling.md).
MEASURED = {
    "create suggestion": (12.4, 85 + 246),
    "create observation": (1.1, 101 + 303),
    "progress check": (2.8, 1103),
    "lease: read suggestion": (1.5, 247),
    "lease: write metadata": (1.4, 85 + 247),
    "full list, per 1,000 rows": (31.5, 243_498),
    "lapsed only, per 1,000 open": (4.5, 81),
}


@dataclass(frozen=True)
class Load:
    """A fleet: agents (one open suggestion each), evaluation seconds, agent behaviour."""

    agents: int
    evaluation_s: float
    behaviour: str  # "old", "plain" (stretched full scans only), "ours" (+ lapsed-only scans)


def per_agent_rates(load: Load) -> dict[str, float]:
    """Requests per second of one agent, by kind (scans as pages)."""
    n, e = load.agents, load.evaluation_s
    per_eval = 1.0 / e
    renewals = math.floor(e / (LEASE_TTL_S / 3)) / e  # GET + PUT every lease_ttl/3 of a run
    # Scans happen between evaluations: never more often than once per evaluation.
    if load.behaviour == "old":
        full_every = max(ADOPT_INTERVAL_S, e)
        any_every = full_every
    else:
        full_every = max(ADOPT_INTERVAL_S * max(1.0, n / SCAN_ROWS), e)
        any_every = full_every
        if load.behaviour == "ours":
            lapsed = ADOPT_INTERVAL_S * max(1.0, n / (SCAN_ROWS * LAPSED_ROW_DISCOUNT))
            any_every = max(min(lapsed, full_every), e)
    pages = math.ceil(n / PAGE_ROWS)
    return {
        "create suggestion": per_eval,
        "create observation": per_eval,
        "progress check": per_eval,
        "lease: read suggestion": renewals,
        "lease: write metadata": renewals,
        "full list (pages)": pages / full_every,
        "lapsed only": 1.0 / any_every - 1.0 / full_every,
    }


def fleet_costs(load: Load) -> tuple[float, float, float, float]:
    """(requests/s per agent, fleet requests/s, server CPU cores, MB/s on the wire)."""
    rates = per_agent_rates(load)
    n = load.agents
    cpu_ms = 0.0
    wire_b = 0.0
    for kind, rate in rates.items():
        if kind == "full list (pages)":
            # Each agent lists all n rows per full scan, whatever the page count.
            scans = rate / math.ceil(n / PAGE_ROWS)
            ms, body = MEASURED["full list, per 1,000 rows"]
            cpu_ms += scans * ms * n / 1000
            wire_b += scans * (body * n / 1000 + HEADERS_B * math.ceil(n / PAGE_ROWS))
        elif kind == "lapsed only":
            ms, body = MEASURED["lapsed only, per 1,000 open"]
            cpu_ms += rate * ms * n / 1000
            wire_b += rate * (body + HEADERS_B)
        else:
            ms, body = MEASURED[kind]
            cpu_ms += rate * ms
            wire_b += rate * (body + HEADERS_B)
    per_agent = sum(rates.values())
    return per_agent, per_agent * n, cpu_ms * n / 1000, wire_b * n / 1e6


def table(evaluation_s: float) -> str:
    """Old vs new at 100, 1,000 and 10,000 agents for evaluations of ``evaluation_s``."""
    rows = []
    for n in (100, 1000, 10_000):
        for behaviour, label in (
            ("old", "old (fixed 60 s)"),
            ("plain", "new, plain SigOpt server"),
            ("ours", "new, our server"),
        ):
            per_agent, fleet, cores, mbps = fleet_costs(Load(n, evaluation_s, behaviour))
            rows.append([f"{n:,}", label, f"{per_agent:.4f}", f"{fleet:.1f}",
                         f"{cores:.2f}", f"{mbps:.2f}"])  # fmt: skip
    return markdown_table(
        ["agents", "agents behave", "requests/s per agent", "fleet requests/s",
         "server CPU (cores)", "wire MB/s"],
        rows,
    )  # fmt: skip


def main() -> None:
    for evaluation_s in (60.0, 600.0, 3600.0):
        print(f"\nEvaluations of {evaluation_s:g} s:\n")
        print(table(evaluation_s))


if __name__ == "__main__":
    main()
