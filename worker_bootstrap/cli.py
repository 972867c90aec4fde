"""``worker-bootstrap``: ``run`` the agent, or ``install`` its systemd unit.

Exit codes of ``run``: 0 finished (budget reached, experiment deleted, max evaluations, stopped,
spot interruption); 2 bad configuration; 3 instance metadata or AWS unavailable; 4 the API
failed (unreachable after retries, or an error it does not retry); 5 the state directory cannot be
written (full, read-only, not permitted).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from worker_bootstrap import __version__
from worker_bootstrap.logs import EventLog

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ENVIRONMENT = 3
EXIT_API = 4
EXIT_STATE_DIR = 5


def _split_command(argv: List[str]) -> tuple[List[str], Optional[List[str]]]:
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``run`` and ``install``)."""
    parser = argparse.ArgumentParser(prog="worker-bootstrap", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"worker-bootstrap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="evaluate suggestions until the experiment is done",
        description="Evaluate suggestions; the evaluation command follows --.",
    )
    run.add_argument("--config", metavar="FILE", help="env file (KEY=VALUE lines)")
    run.add_argument("--experiment", metavar="ID", help="experiment id")
    run.add_argument("--api-url", metavar="URL", help="API base URL, without /v1")
    run.add_argument("--state-dir", metavar="DIR", help="journal and checkpoints")
    run.add_argument("--max-evaluations", metavar="N", help="stop after N evaluations")
    run.add_argument("--timeout", metavar="SECONDS", help="per-evaluation time limit")
    run.add_argument(
        "--token-secret",
        metavar="NAME_OR_ARN",
        help="read the API token from this Secrets Manager secret",
    )

    install = sub.add_parser("install", help="write the systemd unit, env file and state dir")
    install.add_argument("--root", default="/", metavar="DIR", help="install under this root")
    install.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="sets",
        help="a setting for the env file (repeatable)",
    )
    install.add_argument("--unit-name", default="optfleet-agent", metavar="NAME")
    install.add_argument(
        "--executable",
        metavar="PATH",
        help="worker-bootstrap path for ExecStart (default: this one)",
    )
    return parser


def _error(kind: str, message: str, code: int, log: EventLog, redact: List[Optional[str]]) -> int:
    for secret in redact:
        log.redactor.add(secret)
    log.error(kind, message)
    print(f"worker-bootstrap: {log.redactor.scrub(message)}", file=sys.stderr, flush=True)
    return code


def _run(args: argparse.Namespace, command: Optional[List[str]]) -> int:
    from worker_bootstrap.api_client import AmbiguousRequest, ApiError, ApiUnavailable
    from worker_bootstrap.aws import AwsError
    from worker_bootstrap.config import ConfigError, Settings, parse_env_file
    from worker_bootstrap.evaluation import CommandEvaluator
    from worker_bootstrap.imds import ImdsUnavailable
    from worker_bootstrap.journal import StateDirError
    from worker_bootstrap.runner import run_agent

    environ: Dict[str, str] = dict(os.environ)
    env_file: Dict[str, str] = {}
    secrets: List[Optional[str]] = [environ.get("SIGOPT_API_TOKEN")]
    log = EventLog()
    try:
        if args.config:
            try:
                text = Path(args.config).read_text()
            except OSError as exc:
                raise ConfigError(f"--config {args.config}: cannot read ({exc.strerror})") from None
            env_file = parse_env_file(text, name=args.config)
            secrets.append(env_file.get("SIGOPT_API_TOKEN"))
        flags = {
            "OPTFLEET_EXPERIMENT_ID": args.experiment,
            "SIGOPT_API_URL": args.api_url,
            "OPTFLEET_STATE_DIR": args.state_dir,
            "OPTFLEET_MAX_EVALUATIONS": args.max_evaluations,
            "OPTFLEET_TIMEOUT": args.timeout,
            "OPTFLEET_TOKEN_SECRET": args.token_secret,
        }

        def evaluator(settings: Settings) -> CommandEvaluator:
            return CommandEvaluator(settings.command, workdir=settings.workdir, environ=environ)

        summary = run_agent(flags, env_file, environ, command or None, evaluator, log=log)
    except ConfigError as exc:
        return _error("config", str(exc), EXIT_CONFIG, log, secrets)
    except ValueError as exc:  # e.g. no evaluation command, bad crash hook
        return _error("config", str(exc), EXIT_CONFIG, log, secrets)
    except (ImdsUnavailable, AwsError) as exc:
        return _error("environment", str(exc), EXIT_ENVIRONMENT, log, secrets)
    except (ApiError, ApiUnavailable, AmbiguousRequest) as exc:
        return _error("api", str(exc), EXIT_API, log, secrets)
    except StateDirError as exc:
        return _error("state_dir", str(exc), EXIT_STATE_DIR, log, secrets)
    del summary  # the agent logged its summary line
    return EXIT_OK


def _install(args: argparse.Namespace) -> int:
    from worker_bootstrap.config import ConfigError
    from worker_bootstrap.install import install, parse_sets

    try:
        written = install(Path(args.root), parse_sets(args.sets), args.unit_name, args.executable)
    except (ConfigError, OSError) as exc:
        print(f"worker-bootstrap install: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for path in written:
        print(path)
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``worker-bootstrap`` command."""
    options, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(options)
    if args.command == "run":
        return _run(args, command)
    return _install(args)


if __name__ == "__main__":
    sys.exit(main())
