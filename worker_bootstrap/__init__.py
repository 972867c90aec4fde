"""optfleet worker agent: evaluates SigOpt-v1 suggestions on an EC2 instance, crash-safely.

The agent stamps the instance's identity on every suggestion and observation, resumes this
instance's open suggestions at every start, and adopts orphaned ones exactly once. It depends only
on ``requests`` (``boto3`` is imported lazily for Secrets Manager and EC2 calls) and runs on
Python 3.9.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from worker_bootstrap.run_summary import RunSummary


def run(evaluate: Any, **settings: Any) -> RunSummary:
    """Run the agent loop in this process with ``evaluate(assignments, context)`` as evaluation.

    ``evaluate`` returns a number, a list of ``{"name", "value", "value_stddev"}`` dicts, or
    raises (a failed observation). Keyword settings are those of :func:`worker_bootstrap.api.run`.
    """
    from worker_bootstrap.api import run as _run

    return _run(evaluate, **settings)


__all__ = ["__version__", "run"]
