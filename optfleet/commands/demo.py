"""`optfleet demo`: a whole fleet on this machine, with a reboot, a termination and a spot notice.

The run itself is optfleet.fleet_demo; this module parses the flags, checks them, and prints the
summary (a table, or one JSON object with --json). Exit status 0 means exactly-once held, nothing
was left open and each injected fault was confirmed by the server's data.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from optfleet.api_client import ApiError
from optfleet.cost.demo_cost import print_cost_table
from optfleet.fleet_demo import DemoSettings, FleetDemo

HELP = "simulate a whole fleet on this machine"
MAX_WORKERS = 32  # each simulated instance is an agent process, an evaluation and a small server


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    """Defaults for the full and the short demo, overridden by explicit flags."""
    if args.short:
        base = DemoSettings(
            workers=3,
            evaluations=12,
            eval_seconds=2.0,
            steps=8,
            diverge_above=1.35,
            lease_ttl_s=6.0,
            timeout_s=90.0,
        )
    else:
        base = DemoSettings(
            workers=4,
            evaluations=40,
            eval_seconds=3.0,
            steps=10,
            diverge_above=1.4,
            lease_ttl_s=6.0,
            timeout_s=170.0,
        )
    return DemoSettings(
        workers=args.workers if args.workers is not None else base.workers,
        evaluations=args.evaluations if args.evaluations is not None else base.evaluations,
        eval_seconds=args.eval_seconds if args.eval_seconds is not None else base.eval_seconds,
        steps=base.steps,
        diverge_above=base.diverge_above,
        lease_ttl_s=base.lease_ttl_s,
        timeout_s=args.timeout if args.timeout is not None else base.timeout_s,
        max_cost_usd=args.max_cost,
    )


def settings_problem(settings: DemoSettings) -> str | None:
    """A message naming the bad flag, or None when the settings can run."""
    if not 3 <= settings.workers <= MAX_WORKERS:
        return (
            f"--workers: expected 3 to {MAX_WORKERS} (one instance per injected fault at least), "
            f"got {settings.workers}"
        )
    if settings.evaluations < settings.workers * 2:
        return (
            f"--evaluations: expected at least {settings.workers * 2} (twice the workers), "
            f"got {settings.evaluations}"
        )
    if not 0.2 <= settings.eval_seconds <= 600:
        return f"--eval-seconds: expected 0.2 to 600 seconds, got {settings.eval_seconds:g}"
    if settings.max_cost_usd is not None and not settings.max_cost_usd > 0:
        cap = settings.max_cost_usd
        return f"--max-cost: expected a positive number of (simulated) dollars, got {cap:g}"
    if settings.timeout_s <= 0:
        return f"--timeout: expected a positive number of seconds, got {settings.timeout_s:g}"
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Demo flags."""
    parser.add_argument(
        "--workers", type=int, help="simulated instances at a time (default 4; --short: 3)"
    )
    parser.add_argument(
        "--evaluations", type=int, help="observation budget (default 40; --short: 12)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the summary, as one JSON object"
    )
    parser.add_argument(
        "--keep-server",
        action="store_true",
        help="leave the server running and print the experiment page URL",
    )
    parser.add_argument(
        "--short", action="store_true", help="a smaller, faster run (used by the tests)"
    )
    parser.add_argument(
        "--eval-seconds", type=float, help="seconds per evaluation (default 3; --short: 2)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        help="give up when the fleet has run this many seconds (default 170; 90 with --short)",
    )
    parser.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="dollar cap on the experiment (simulated prices): the fleet drains when reached",
    )


def print_summary(console: Console, summary: dict[str, Any]) -> None:
    """The human-readable end of the demo."""
    best = summary.get("best") or {}
    console.rule("summary")
    if best:
        assignments = ", ".join(
            f"{k}={v:.3f}" for k, v in sorted((best.get("assignments") or {}).items())
        )
        console.print(
            f"best value {best['value']:.4f} (suggestion {best['suggestion']}, "
            f"{best['instance_id']}): {assignments}"
        )
    table = Table(title="observations per instance")
    table.add_column("instance")
    table.add_column("role")
    table.add_column("observations", justify="right")
    roles = {i["instance_id"]: i["role"] for i in summary["instances"]}
    for instance_id, count in summary["observations_by_instance"].items():
        table.add_row(instance_id, roles.get(instance_id, ""), str(count))
    console.print(table)
    for failure in summary["failures"]:
        console.print(
            f"[red]failed[/red] suggestion {failure['suggestion']} on {failure['instance_id']}: "
            f"{failure['reason']}"
        )
    for injection in summary["injections"]:
        mark = "[green]ok[/green]" if injection["verified"] else "[red]NOT VERIFIED[/red]"
        console.print(
            f"{injection['kind']}: {injection['victim']}, suggestion {injection['suggestion']} "
            f"— {injection['outcome']} {mark}"
        )
        for missed in injection.get("missed") or []:
            console.print(f"  missed first: {missed}", style="dim")
    if summary.get("cost"):
        print_cost_table(console, summary["cost"])
    console.print(
        f"observations {summary['observations']} (failed {summary['failed']}, stopped early "
        f"{summary['stopped_early']}), resumed {summary['resumed']}, adopted "
        f"{summary['adopted']}, duplicates {summary['duplicates']}, open left "
        f"{summary['open_left']}, wall time {summary['wall_s']} s"
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit 0 when exactly-once held, nothing is left open and all faults verified."""
    settings = settings_from_args(args)
    problem = settings_problem(settings)
    if problem:
        print(f"optfleet demo: {problem}", file=sys.stderr)
        return 2
    console = Console(stderr=args.json)
    demo = FleetDemo(settings, show_live=not args.json and console.is_terminal, console=console)
    summary: dict[str, Any] = {}
    try:
        demo.start()
        summary = demo.run()
    except (ApiError, RuntimeError, OSError) as exc:
        print(f"optfleet demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if not summary:  # failed or interrupted: nothing of this run may keep running
            demo.stop(keep_server=False, keep_logs=True)
    ok = (
        summary["duplicates"] == 0
        and summary["open_left"] == 0
        and not summary["timed_out"]
        and all(i["verified"] for i in summary["injections"])
    )
    demo.stop(keep_server=args.keep_server, keep_logs=not ok)
    if args.keep_server:
        summary["server"] = {
            "url": demo.server.url,
            "pid": demo.server.pid,
            "token": demo.server.token,
            "page": f"{demo.server.url}/experiments/{demo.experiment_id}",
            "log": str(demo.server.log_path),
        }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(Console(), summary)
        if args.keep_server:
            server = summary["server"]
            print(
                f"server kept running (pid {server['pid']}): open {server['page']} and sign in "
                f"with token {server['token']}; stop it with `kill {server['pid']}`"
            )
    return 0 if ok else 1
