"""The Python API: ``worker_bootstrap.run(evaluate, experiment=..., ...)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Union

from worker_bootstrap.evaluation import Context, FunctionEvaluator
from worker_bootstrap.run_summary import RunSummary
from worker_bootstrap.runner import run_agent

__all__ = ["Context", "RunSummary", "run"]


def run(
    evaluate: Callable[[Dict[str, Any], Context], Any],
    experiment: Optional[str] = None,
    api_url: Optional[str] = None,
    token: Optional[str] = None,
    token_secret: Optional[str] = None,
    state_dir: Union[str, Path, None] = None,
    max_evaluations: Optional[int] = None,
    timeout: Optional[float] = None,
    when_done: Optional[str] = None,
    imds_endpoint: Optional[str] = None,
    environ: Optional[Dict[str, str]] = None,
    stream: Optional[IO[str]] = None,
) -> RunSummary:
    """Evaluate suggestions with ``evaluate(assignments, context)`` until the experiment is done.

    ``evaluate`` returns a number, or a list of ``{"name", "value", "value_stddev"}``; raising
    makes a failed observation with the exception as reason. ``context`` carries
    ``suggestion_id``, ``checkpoint_dir``, ``resumed``, ``attempt``, ``metadata`` (a dict the
    function may fill) and ``stop_requested`` (an Event set on SIGTERM or a spot notice);
    ``context.checkpoint_saved(step)`` says ``checkpoint_dir`` is complete, so that with
    ``OPTFLEET_CHECKPOINT_S3`` another instance taking the suggestion over continues from it.
    Unset arguments fall back to the environment, as for the command line.
    """
    flags = {
        "OPTFLEET_EXPERIMENT_ID": experiment,
        "SIGOPT_API_URL": api_url,
        "SIGOPT_API_TOKEN": token,
        "OPTFLEET_TOKEN_SECRET": token_secret,
        "OPTFLEET_STATE_DIR": str(state_dir) if state_dir is not None else None,
        "OPTFLEET_MAX_EVALUATIONS": None if max_evaluations is None else str(max_evaluations),
        "OPTFLEET_TIMEOUT": None if timeout is None else str(timeout),
        "OPTFLEET_WHEN_DONE": when_done,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_endpoint,
    }
    env = dict(os.environ if environ is None else environ)
    return run_agent(flags, {}, env, [], lambda settings: FunctionEvaluator(evaluate), stream)
