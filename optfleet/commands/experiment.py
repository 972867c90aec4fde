"""`optfleet experiment create|list|show`: manage experiments on any SigOpt-compatible API."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from optfleet.api_client import ApiError, SigOptClient, client_from_args
from optfleet.experiment_spec import SpecError, load_spec_file

HELP = "create, list and show experiments"


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """The connection flags shared by the commands that talk to the API."""
    parser.add_argument(
        "--api-url", help="API base URL (default: $SIGOPT_API_URL or http://127.0.0.1:8080)"
    )
    parser.add_argument("--api-token", help="API token (default: $SIGOPT_API_TOKEN)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the create, list and show subcommands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create an experiment from a YAML or JSON file")
    create.add_argument(
        "--file", required=True, type=Path, help="experiment file (.yaml, .yml or .json)"
    )
    create.add_argument("--dry-run", action="store_true", help="validate the file, send nothing")
    listing = sub.add_parser("list", help="list experiments")
    show = sub.add_parser("show", help="progress, best assignments, open suggestions by instance")
    show.add_argument("experiment_id", metavar="ID")
    for action_parser in (create, listing, show):
        add_api_arguments(action_parser)
        action_parser.add_argument(
            "--json", action="store_true", help="print JSON instead of tables"
        )


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action; errors are one clear message and exit status 1."""
    try:
        if args.action == "create":
            return _create(args)
        client = client_from_args(args.api_url, args.api_token)
        try:
            if args.action == "list":
                return _list(client, args.json)
            return _show(client, args.experiment_id, args.json)
        finally:
            client.close()
    except (SpecError, ApiError) as exc:
        print(f"optfleet experiment {args.action}: {exc}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace) -> int:
    spec = load_spec_file(args.file)
    if args.dry_run:
        print(json.dumps(spec, indent=2))
        return 0
    client = client_from_args(args.api_url, args.api_token)
    try:
        experiment = client.create_experiment(spec)
    finally:
        client.close()
    if args.json:
        print(json.dumps(experiment, indent=2))
    else:
        # Only the id on stdout, so `EID=$(optfleet experiment create --file ...)` works.
        print(experiment["id"])
        print(
            f"created experiment {experiment['id']} ({experiment.get('name')}); "
            "deploy a fleet with "
            f"`npx cdk deploy -c experiment_id={experiment['id']}`",
            file=sys.stderr,
        )
    return 0


def _list(client: SigOptClient, as_json: bool) -> int:
    experiments = client.experiments()
    if as_json:
        print(json.dumps(experiments, indent=2))
        return 0
    table = Table(title="experiments")
    for column in ("id", "name", "state", "observations", "budget", "created"):
        table.add_column(column)
    for exp in experiments:
        progress = exp.get("progress") or {}
        table.add_row(
            str(exp["id"]),
            str(exp.get("name")),
            str(exp.get("state")),
            str(progress.get("observation_count", "")),
            str(exp.get("observation_budget") or "-"),
            _when(exp.get("created")),
        )
    Console().print(table)
    return 0


def _when(timestamp: object) -> str:
    if not isinstance(timestamp, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def format_assignments(assignments: object) -> str:
    """``name=value`` pairs, floats to 4 significant digits, for tables."""
    if not isinstance(assignments, dict):
        return "-"
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in sorted(assignments.items())
    )


def experiment_report(client: SigOptClient, experiment_id: str) -> dict[str, Any]:
    """What `show` prints: the experiment, best assignments, open suggestions by instance."""
    experiment = client.experiment(experiment_id)
    best = client.best_assignments(experiment_id)
    by_instance: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for suggestion in client.open_suggestions(experiment_id):
        instance = (suggestion.get("metadata") or {}).get("instance_id") or "(no instance_id)"
        by_instance[str(instance)].append(suggestion)
    return {
        "experiment": experiment,
        "best_assignments": best,
        "open_suggestions_by_instance": by_instance,
    }


def _show(client: SigOptClient, experiment_id: str, as_json: bool) -> int:
    report = experiment_report(client, experiment_id)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    console = Console()
    exp = report["experiment"]
    progress = exp.get("progress") or {}
    open_count = sum(len(v) for v in report["open_suggestions_by_instance"].values())
    console.print(f"[bold]experiment {exp['id']}[/bold] {exp.get('name')} ({exp.get('state')})")
    console.print(
        f"observations: {progress.get('observation_count', 0)} / budget "
        f"{exp.get('observation_budget') or '-'}; open suggestions: {open_count}"
    )
    best_table = Table(title="best assignments")
    best_table.add_column("observation")
    best_table.add_column("value(s)")
    best_table.add_column("assignments")
    for best in report["best_assignments"]:
        values = ", ".join(
            f"{v.get('name') or 'value'}={_number(v.get('value'))}"
            for v in best.get("values") or []
        )
        best_table.add_row(str(best.get("id")), values, format_assignments(best.get("assignments")))
    console.print(best_table)
    open_suggestions = sorted(report["open_suggestions_by_instance"].items())
    if not open_suggestions:
        console.print("open suggestions: none")
        return 0
    open_table = Table(title="open suggestions by instance")
    for column in ("instance_id", "suggestion", "created", "assignments"):
        open_table.add_column(column)
    for instance, suggestions in open_suggestions:
        for suggestion in suggestions:
            open_table.add_row(
                instance,
                str(suggestion["id"]),
                _when(suggestion.get("created")),
                format_assignments(suggestion.get("assignments")),
            )
    console.print(open_table)
    return 0
