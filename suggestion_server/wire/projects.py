"""Projects and the token object on the wire (sigopt-runs-wire.md §1)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from suggestion_server.wire.jsonbody import short_json
from suggestion_server.wire.schemas import Metadata

PROJECT_ID_PATTERN = re.compile(r"[a-z0-9\-_\.]{1,32}")
PROJECT_ID_RULE = "1 to 32 characters of a-z, 0-9, '-', '_' and '.'"


def check_project_id(value: str) -> str:
    """``value`` if it is a valid project id, else a ValueError naming the rule."""
    if not PROJECT_ID_PATTERN.fullmatch(value):
        raise ValueError(f"Invalid value for id: {short_json(value)} - expected {PROJECT_ID_RULE}")
    return value


ProjectId = Annotated[str, AfterValidator(check_project_id)]
_STRICT = ConfigDict(strict=True, extra="forbid")


class ProjectCreate(BaseModel):
    """POST /v1/clients/{client}/projects."""

    model_config = _STRICT
    id: ProjectId
    name: str = Field(min_length=1, max_length=100)
    metadata: Metadata = None


class ProjectUpdate(BaseModel):
    """PUT /v1/clients/{client}/projects/{project}: absent keys are unchanged."""

    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=100)
    metadata: Metadata = None
    deleted: bool | None = None


PROJECT_REQUEST_MODELS: tuple[type[BaseModel], ...] = (ProjectCreate, ProjectUpdate)


class ProjectOut(BaseModel):
    """A project; counts cover its non-deleted AI experiments and runs."""

    object: Literal["project"] = "project"
    id: str
    name: str
    client: str
    user: str | None
    created: int
    updated: int
    metadata: dict[str, Union[str, int, float]] | None
    experiment_count: int
    training_run_count: int
    deleted: bool


class TokenOut(BaseModel):
    """GET /v1/tokens/self: the token authenticating the request."""

    object: Literal["token"] = "token"
    token: str
    token_type: str
    client: str
    user: str | None
    organization: str | None
    development: bool
    all_experiments: bool
    experiment: str | None
    training_run: str | None
    permissions: str
    scope: str
    expires: int | None
    lease_length: int | None


def token_json(token: str, client_id: int, experiment_id: int | None = None) -> dict[str, Any]:
    """The token object of ``token``: a client token (every experiment of its client), or with
    ``experiment_id`` one scoped to that experiment (``all_experiments`` false)."""
    return {
        "object": "token",
        "token": token,
        "token_type": "client-api",
        "client": str(client_id),
        "user": None,
        "organization": None,
        "development": False,
        "all_experiments": experiment_id is None,
        "experiment": None if experiment_id is None else str(experiment_id),
        "training_run": None,
        "permissions": "write",
        "scope": "all",
        "expires": None,
        "lease_length": None,
    }
