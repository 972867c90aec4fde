"""Runs as the SigOpt >= 8 client reads them (sigopt-runs-wire.md §2.3): the Core training-run
object plus what the client tracks (datasets, logs, model, source code, ...)."""

from __future__ import annotations

import copy
from typing import Any

from suggestion_server.services.render import training_run_json
from suggestion_server.storage.models import TrainingRun
from suggestion_server.storage.queries import dumps, loads
from suggestion_server.wire.errors import bad_request
from suggestion_server.wire.runs import EMPTY_FIELDS, RunFields

# The run fields kept in ``tracking_json`` (the others have columns of their own).
TRACKED = (
    "assignments_meta",
    "assignments_sources",
    "datasets",
    "dev_metadata",
    "favorite",
    "logs",
    "model",
    "source_code",
    "sys_metadata",
)
# Many MERGEs could grow a run without bound; each body is at most 1 MiB already.
MAX_TRACKING_CHARS = 1024 * 1024
SIGOPT_SOURCE = "SigOpt"


def fields_of(row: TrainingRun) -> RunFields:
    """The run's client-settable fields (wire.runs.RunFields)."""
    tracking = loads(row.tracking_json) or {}
    return {
        "name": row.name,
        "state": row.state,
        "metadata": loads(row.metadata_json),
        "values": loads(row.values_json) or {},
        "assignments": loads(row.assignments_json) or {},
        "deleted": row.deleted,
        "project": row.project,
        **{key: tracking.get(key, copy.deepcopy(EMPTY_FIELDS[key])) for key in TRACKED},
    }


def store_fields(row: TrainingRun, fields: RunFields) -> None:
    """Write ``fields`` onto the row (a 400 when the tracked fields grew too large)."""
    row.name = fields["name"]
    row.state = fields["state"]
    row.metadata_json = dumps(fields["metadata"])
    row.values_json = dumps(fields["values"]) or "{}"
    row.assignments_json = dumps(fields["assignments"]) or "{}"
    row.deleted = fields["deleted"]
    row.project = fields["project"]
    tracking = {key: fields[key] for key in TRACKED if fields[key] != EMPTY_FIELDS[key]}
    tracking_json = dumps(tracking) if tracking else None
    if tracking_json is not None and len(tracking_json) > MAX_TRACKING_CHARS:
        raise bad_request(
            f"Training run {row.id} would hold {len(tracking_json)} characters of datasets, logs, "
            f"model, source code and sys/dev metadata; the limit is {MAX_TRACKING_CHARS}"
        )
    row.tracking_json = tracking_json


def suggested_sources(assignments: dict[str, Any]) -> dict[str, Any]:
    """``assignments_meta``/``assignments_sources`` of a run's served assignments (every one
    marked as SigOpt's, as the open-source server does, explicit assignments included)."""
    return {
        "assignments_meta": {name: {"source": SIGOPT_SOURCE} for name in assignments},
        "assignments_sources": {SIGOPT_SOURCE: {"sort": 1, "default_show": True}},
    }


def run_json(row: TrainingRun) -> dict[str, Any]:
    """A run with every field of the open-source server's run object."""
    tracking = {key: EMPTY_FIELDS[key] for key in TRACKED} | (loads(row.tracking_json) or {})
    rendered = training_run_json(row)
    rendered.update(
        assignments_meta=tracking["assignments_meta"],
        assignments_sources=tracking["assignments_sources"],
        datasets=tracking["datasets"],
        logs=tracking["logs"],
        model={"object": "model", "type": tracking["model"].get("type")},
        source_code={
            "object": "source_code",
            "content": tracking["source_code"].get("content"),
            "hash": tracking["source_code"].get("hash"),
        },
        sys_metadata=tracking["sys_metadata"],
        dev_metadata=tracking["dev_metadata"],
        favorite=tracking["favorite"],
        tags=[],
        files=[],
    )
    return rendered
