"""Wire settings into a running agent: identity from IMDS, token, API client, journal, evaluator."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from typing import IO, Any, Callable, Dict, Mapping, Optional, Tuple

import requests

from worker_bootstrap.agent import Agent
from worker_bootstrap.ai_runs import AiRunsApi
from worker_bootstrap.config import ConfigError, Settings, layered, needs_tags, settings_from
from worker_bootstrap.crash import hooks_from_environ
from worker_bootstrap.evaluation import Evaluator
from worker_bootstrap.imds import ImdsClient, ImdsUnavailable
from worker_bootstrap.instance import Instance
from worker_bootstrap.journal import Journal, state_dir_error
from worker_bootstrap.logs import EventLog
from worker_bootstrap.retry import Backoff
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.token_refresh import TokenRefresher
from worker_bootstrap.wiring import wire_agent

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """The kernel's boot id (changes at every boot), or '' where there is none."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def resolve_settings(
    flags: Mapping[str, Optional[str]],
    env_file: Mapping[str, str],
    environ: Mapping[str, str],
    command: Optional[list[str]],
    session: requests.Session,
) -> Tuple[Settings, ImdsClient]:
    """Merge the sources; instance tags are read only when a required setting is missing."""
    values = layered(flags, env_file, environ)
    if values.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        raise ImdsUnavailable(
            "AWS_EC2_METADATA_DISABLED=true: the agent needs instance metadata for its identity"
        )
    endpoint = values.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "http://169.254.169.254"
    imds = ImdsClient(endpoint=endpoint, session=session)
    if needs_tags(values):
        tags = imds.tags()
        values = layered(flags, env_file, environ, tags=tags)
    return settings_from(values, command=command), imds


def token_for(settings: Settings, region: Optional[str]) -> str:
    """The API token: SIGOPT_API_TOKEN, else the Secrets Manager secret."""
    if settings.token_secret:
        from worker_bootstrap import aws

        return aws.secret_token(settings.token_secret, settings.region or region)
    if settings.token:
        return settings.token
    raise ConfigError(
        "no API token: set SIGOPT_API_TOKEN, or OPTFLEET_TOKEN_SECRET / --token-secret "
        "to read it from AWS Secrets Manager"
    )


def build_agent(
    settings: Settings,
    imds: ImdsClient,
    evaluator_factory: Callable[[Settings], Evaluator],
    log: EventLog,
    session: requests.Session,
    environ: Mapping[str, str],
    stop_event: threading.Event,
) -> Agent:
    """Everything the agent needs, each part built from settings (and replaceable in tests)."""
    identity = imds.identity()
    log.instance_id = identity.instance_id
    log.experiment_id = settings.experiment_id
    token = token_for(settings, identity.region)
    log.redactor.add(token)
    # A token from Secrets Manager is read again once when the server refuses it (rotation).
    tokens = TokenRefresher(
        token,
        source=(lambda: token_for(settings, identity.region)) if settings.token_secret else None,
        source_name=(
            f"the secret {settings.token_secret}" if settings.token_secret else "SIGOPT_API_TOKEN"
        ),
        on_new=log.redactor.add,
        notify=log.event,
    )
    # The plain client for a Core experiment; runs in place of suggestions for an AI experiment.
    api = AiRunsApi(
        settings.api_url,
        token,
        session=session,
        timeout=(min(5.0, settings.http_timeout_s), settings.http_timeout_s),
        backoff=Backoff(attempts=settings.http_attempts),
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
        kind=settings.experiment_kind,
        tokens=tokens,
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return wire_agent(
        settings,
        api,
        Instance(identity, hostname=socket.gethostname(), boot_id=read_boot_id(), imds=imds),
        evaluator_factory(settings),
        Journal(settings.state_dir),
        log,
        # The crash hook only when a test sets OPTFLEET_TEST_CRASH_AT (crash.py).
        hooks=hooks_from_environ(environ),
        stop_event=stop_event,
    )


def install_stop_handlers(stop_event: threading.Event, log: EventLog) -> Dict[int, Any]:
    """SIGTERM/SIGINT ask the agent to stop: the evaluation gets SIGTERM and a grace period.

    Returns the previous handlers so an in-process run can restore them.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        if not stop_event.is_set():
            log.event("stop_signal", signal=signal.Signals(signum).name)
        stop_event.set()

    previous: Dict[int, Any] = {
        signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)
    }
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return previous


def run_agent(
    flags: Mapping[str, Optional[str]],
    env_file: Mapping[str, str],
    environ: Mapping[str, str],
    command: Optional[list[str]],
    evaluator_factory: Callable[[Settings], Evaluator],
    stream: Optional[IO[str]] = None,
    log: Optional[EventLog] = None,
) -> RunSummary:
    """Resolve settings, build the agent and run it; exceptions propagate to the caller.

    ``log`` (default: a new one on ``stream``) keeps the experiment and instance ids it learns,
    so the caller's ``agent_error`` line after an exception carries them too.
    """
    log = log or EventLog(stream=stream)
    for key in ("SIGOPT_API_TOKEN",):
        log.redactor.add(flags.get(key) or env_file.get(key) or environ.get(key))
    session = requests.Session()
    settings, imds = resolve_settings(flags, env_file, environ, command, session)
    log.experiment_id = settings.experiment_id
    stop_event = threading.Event()
    previous = install_stop_handlers(stop_event, log)
    try:
        agent = build_agent(settings, imds, evaluator_factory, log, session, environ, stop_event)
        return agent.run()
    except OSError as exc:
        # A full or read-only disk: say which directory and why instead of a traceback. The
        # journal is never torn by it (atomic writes), so a restart continues where this ended.
        problem = state_dir_error(exc, settings.state_dir)
        if problem is None:
            raise
        raise problem from exc
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        session.close()


def environ_snapshot() -> Dict[str, str]:
    """The process environment as a plain dict."""
    return dict(os.environ)
