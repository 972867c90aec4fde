"""What cost tracking costs: agent wall time per evaluation with prices and a dollar cap, and the
fleet spend estimate over many instances, each against a baseline in the same invocation.

- Agent: ``worker-bootstrap run`` for N instant evaluations against a real server. Baseline:
  ``OPTFLEET_PRICING=off`` and no cap. Then prices on (pricing emulator: one Price List call per
  type and hour), then prices plus a cap far above the spend (one ``DescribeInstances`` before
  every suggestion). AWS calls are counted at the emulator.
- Estimate: ``fleet_spend`` over N instances listed by the emulator's ``DescribeInstances``.
  Baseline: the same ``DescribeInstances`` pages without pricing.

Run: .venv/bin/python -m benchmarks.bench_cost [--evaluations 30] [--instances 1000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._report import machine_description, markdown_table, median, write_section
from emulators.imds import ImdsEmulator, InstanceIdentity
from emulators.pricing import PricingEmulator, SimulatedInstance, SimulatedPrice
from tests.agent.helpers import Api
from tests.support.server import RunningServer
from worker_bootstrap.cost.fleet_spend import experiment_instances, fleet_spend
from worker_bootstrap.cost.pricing import PriceBook

SECTION = "cost"
EVALUATE = [
    sys.executable,
    "-c",
    "import os; open(os.environ['OPTFLEET_RESULT_FILE'], 'w').write('{\"value\": 1.0}')",
]
PRICES = [SimulatedPrice("c6i.large", on_demand_usd=0.085, spot_usd=0.03)]


def run_agent(
    server: RunningServer, pricing: PricingEmulator, evaluations: int, **env: str
) -> float:
    """Seconds per evaluation of one agent run to the budget."""
    api = Api(server.url, server.token)
    body: dict[str, Any] = {
        "name": "bench-cost",
        "parameters": [{"name": "x", "type": "double", "bounds": {"min": 0, "max": 1}}],
        "observation_budget": evaluations,
    }
    if "CAP" in env:
        body["metadata"] = {"max_cost_usd": float(env.pop("CAP"))}
    eid = str(api.call("POST", "/experiments", json=body)["id"])
    instance_id = f"i-0bench{eid:0>10}"
    pricing.add_instance(
        SimulatedInstance(
            instance_id, "c6i.large", "us-east-1a", "on-demand", time.time(), {"Experiment": eid}
        )
    )
    identity = InstanceIdentity(instance_id=instance_id, instance_type="c6i.large")
    with ImdsEmulator(identity, {"Experiment": eid}) as imds, tempfile.TemporaryDirectory() as d:
        full_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OPTFLEET_"))},
            **pricing.env(),
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url,
            "SIGOPT_API_TOKEN": server.token,
            "OPTFLEET_ORPHAN_DETECTION": "lease",
            **env,
        }
        argv = [
            sys.executable,
            "-m",
            "worker_bootstrap",
            "run",
            "--experiment",
            eid,
            "--api-url",
            server.url,
            "--state-dir",
            str(Path(d) / "state"),
            "--",
            *EVALUATE,
        ]
        started = time.perf_counter()
        subprocess.run(argv, env=full_env, check=True, capture_output=True, timeout=600)
        return (time.perf_counter() - started) / evaluations


def estimate_seconds(pricing: PricingEmulator, instances: int, repeat: int) -> tuple[float, float]:
    """(fleet_spend s, bare DescribeInstances s) over ``instances`` tagged instances."""
    import boto3

    for n in range(instances):
        lifecycle = "spot" if n % 3 == 0 else "on-demand"
        pricing.add_instance(
            SimulatedInstance(
                f"i-0est{n:013d}",
                "c6i.large",
                "us-east-1a",
                lifecycle,
                time.time() - 600,
                {"Experiment": "estimate"},
            )
        )
    env = pricing.env()
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=pricing.url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )

    def clients(service: str, region: str | None) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=pricing.url,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    book = PriceBook(None, clients=clients)
    book.price("c6i.large", "on-demand", "us-east-1a")  # warm: the hourly cache is the norm
    book.price("c6i.large", "spot", "us-east-1a")
    spend, bare = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        experiment_instances(ec2, "estimate")
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        fleet_spend(ec2, "estimate", book, time.time(), "us-east-1")
        spend.append(time.perf_counter() - started)
    return median(spend), median(bare)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=30)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    rows = []
    with (
        RunningServer.start() as server,
        PricingEmulator(PRICES) as pricing,
    ):
        modes = [
            ("baseline: pricing off, no cap", {"OPTFLEET_PRICING": "off"}),
            ("prices on", {}),
            ("prices + cap", {"CAP": "1000000"}),
        ]
        # Round-robin over the modes, so a load change on the shared machine hits them alike.
        samples: dict[str, list[float]] = {label: [] for label, _ in modes}
        calls: dict[str, dict[str, int]] = {label: {} for label, _ in modes}
        for _ in range(args.repeat):
            for label, env in modes:
                before = dict(pricing.calls)
                samples[label].append(run_agent(server, pricing, args.evaluations, **env))
                for kind, count in pricing.calls.items():
                    made = count - before.get(kind, 0)
                    calls[label][kind] = calls[label].get(kind, 0) + made
        base = median(samples[modes[0][0]])
        for label, _ in modes:
            per_eval = median(samples[label])
            aws = ", ".join(
                f"{k} {v / args.repeat:g}" for k, v in sorted(calls[label].items()) if v
            )
            rows.append([label, f"{per_eval * 1000:.0f}", f"{per_eval / base:.2f}", aws or "-"])
        spend_s, bare_s = estimate_seconds(pricing, args.instances, args.repeat)
    agent_table = markdown_table(
        ["agent run", "ms per evaluation", "ratio to baseline", "AWS calls per run"], rows
    )
    estimate_table = markdown_table(
        ["instances", "fleet_spend s", "DescribeInstances alone s", "ratio"],
        [[args.instances, f"{spend_s:.2f}", f"{bare_s:.2f}", f"{spend_s / bare_s:.2f}"]],
    )
    body = f"""## Cost tracking overhead

{machine_description(["boto3"])}

One agent, {args.evaluations} instant evaluations per run, median of {args.repeat} runs per mode
(modes taken in turn); prices and
EC2 from the pricing emulator on loopback (real AWS answers in tens of milliseconds more per call,
once per type and hour for prices, once per suggestion for the cap's `DescribeInstances`).

{agent_table}

The spend estimate over a fleet (pages of 1,000 instances; prices from the hourly cache):

{estimate_table}
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
