"""What a token scoped to one experiment may do: a list of routes, everything else is 403.

An operator token (no scope) keeps every right of its client. A scoped token is what one
instance of a fleet holds: it may read its experiment, create and update its suggestions,
observations, training runs and checkpoints, and share the fleet's spend, and nothing else:
no other experiment, no creating, updating or deleting experiments, no deletes, no queued
suggestions, no projects, no experiment lists, no signing in to the page. The decision is taken
before anything is looked up, and the answer is the same whether the other experiment (or run)
exists or not, so a refusal discloses nothing about other experiments.

Routes are named by their path template (FastAPI's ``route.path_format``); a route missing here
is refused to scoped tokens, so a new route is closed until it is listed.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.concurrency import run_in_threadpool

from suggestion_server.services.context import ServerContext
from suggestion_server.storage.tokens import Grant, experiment_of_run
from suggestion_server.wire.errors import ApiError
from suggestion_server.wire.schemas import MAX_ID

WRONG_SCOPE = "wrong_scope"  # the refusal's reason in the log and on the page's health view
_EXP = "/v1/experiments/{experiment_id}"
_RUN = "/v1/training_runs/{run_id}"
_AI = "/v1/aiexperiments/{experiment_id}"
_WEB = "/experiments/{experiment_id}"

# (method, path template) -> the path parameter naming what must be the token's experiment:
# ``experiment_id`` itself, or ``run_id`` (the training run's experiment).
SCOPED_ROUTES: dict[tuple[str, str], str] = {
    **{
        (method, template): "experiment_id"
        for method, template in (
            ("GET", _EXP),
            ("GET", f"{_EXP}/suggestions"),
            ("POST", f"{_EXP}/suggestions"),
            ("GET", f"{_EXP}/suggestions/{{suggestion_id}}"),
            ("PUT", f"{_EXP}/suggestions/{{suggestion_id}}"),
            ("GET", f"{_EXP}/queued_suggestions"),
            ("GET", f"{_EXP}/queued_suggestions/{{queued_id}}"),
            ("GET", f"{_EXP}/observations"),
            ("POST", f"{_EXP}/observations"),
            ("POST", f"{_EXP}/observations/batch"),
            ("GET", f"{_EXP}/observations/{{observation_id}}"),
            ("PUT", f"{_EXP}/observations/{{observation_id}}"),
            ("GET", f"{_EXP}/best_assignments"),
            ("GET", f"{_EXP}/best_practices"),
            ("GET", f"{_EXP}/stopping_criteria"),
            ("GET", f"{_EXP}/fleet_spend"),
            ("PUT", f"{_EXP}/fleet_spend"),
            ("POST", f"{_EXP}/fleet_spend/claims"),
            ("GET", f"{_EXP}/training_runs"),
            ("POST", f"{_EXP}/training_runs"),
            ("GET", f"{_EXP}/training_runs/{{run_id}}"),
            ("PUT", f"{_EXP}/training_runs/{{run_id}}"),
            ("GET", f"{_EXP}/training_runs/{{run_id}}/checkpoints"),
            ("POST", f"{_EXP}/training_runs/{{run_id}}/checkpoints"),
            ("GET", f"{_EXP}/training_runs/{{run_id}}/checkpoints/{{checkpoint_id}}"),
            ("GET", _AI),
            ("GET", f"{_AI}/best_training_runs"),
            ("POST", f"{_AI}/training_runs"),
            ("GET", _WEB),
            ("GET", f"{_WEB}/data.json"),
            ("GET", f"{_WEB}/runs.json"),
        )
    },
    **{
        (method, template): "run_id"
        for method, template in (
            ("GET", _RUN),
            ("PUT", _RUN),
            ("MERGE", _RUN),
            ("GET", f"{_RUN}/checkpoints"),
            ("POST", f"{_RUN}/checkpoints"),
            ("GET", f"{_RUN}/checkpoints/{{checkpoint_id}}"),
            # A run's files (SigOpt's log_image): accepted and dropped, so the run's only.
            ("POST", f"{_RUN}/files"),
            ("PUT", f"{_RUN}/files/upload"),
        )
    },
}
# Routes about the token itself: any scoped token may use them.
UNSCOPED_ROUTES: frozenset[tuple[str, str]] = frozenset({("GET", "/v1/tokens/self")})


def refused(experiment_id: int) -> ApiError:
    """The 403 of a scoped token outside its scope (the same for every route and target)."""
    return ApiError(
        403,
        f"This API token is scoped to experiment {experiment_id}: it may read that experiment "
        "and create and update its suggestions, observations and training runs, nothing else. "
        "Use an operator token (optfleet token create) for this request.",
    )


def _as_id(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or not 0 < int(text) <= MAX_ID:
        return None
    return int(text)


async def check_scope(
    ctx: ServerContext,
    grant: Grant,
    method: str,
    template: str | None,
    path_params: Mapping[str, str],
) -> None:
    """Raise the 403 unless ``grant`` may call ``method`` on the route ``template``."""
    scope = grant.experiment_id
    if scope is None or (method, template) in UNSCOPED_ROUTES:
        return
    key = SCOPED_ROUTES.get((method, template or ""))
    if key is None:
        raise refused(scope)
    target = _as_id(path_params.get(key))
    if target is not None and key == "run_id":
        target = await run_in_threadpool(experiment_of_run, ctx.store, target)
    if target != scope:
        raise refused(scope)
