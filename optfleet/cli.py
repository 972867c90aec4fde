"""`optfleet` entry point: one subcommand per module under ``optfleet.commands``.

Each command module exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so `optfleet token` does not pay for Optuna.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("optfleet.commands.server", "run the SigOpt-compatible suggestion server"),
    "token": ("optfleet.commands.token", "create, list, show and revoke API tokens"),
    "experiment": ("optfleet.commands.experiment", "create, list and show experiments"),
    "demo": ("optfleet.commands.demo", "simulate a whole fleet on this machine"),
    "status": ("optfleet.commands.status", "instances joined with their suggestions"),
    "sweep": ("optfleet.commands.sweep", "find and remove resources left by an experiment"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the command named in ``argv`` gets its module imported."""
    parser = argparse.ArgumentParser(prog="optfleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
