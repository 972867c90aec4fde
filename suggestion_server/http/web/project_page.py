"""The project page: a project's AI experiments and its runs outside any experiment
(``sigopt.create_run``), rendered on the server (no script: a table of at most ``MAX_RUNS``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from suggestion_server.http.web.queries import project_runs
from suggestion_server.services.ai_experiments import list_ai_experiments
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.projects import project_for_client
from suggestion_server.wire.paging import page_request

MAX_RUNS = 200
INSTANCE_KEY = "instance_id"


def utc_text(ts: int) -> str:
    """A timestamp as the pages show it (UTC, to the minute)."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _columns(rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> list[str]:
    """Every key of the rows, in order of appearance (``first`` ones first when present)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return [k for k in first if k in seen] + [k for k in seen if k not in first]


@dataclass(frozen=True)
class ProjectPage:
    """What the project template shows."""

    project: dict[str, str]
    experiments: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    run_total: int
    metric_columns: list[str]
    parameter_columns: list[str]
    metadata_columns: list[str]


def project_page(ctx: ServerContext, client_id: int, project: str) -> ProjectPage:
    """The client's project (404 ``ApiError`` otherwise) with its active AI experiments and its
    newest ``MAX_RUNS`` runs outside any experiment."""
    with ctx.store.read() as session:
        row = project_for_client(session, client_id, project)
        found = project_runs(session, client_id, project, MAX_RUNS)
        head = {"id": row.reference_id, "name": row.name, "created": utc_text(row.created)}
    listed = list_ai_experiments(
        ctx, client_id, page_request(None, None, None), project=project, state=None
    )
    experiments = [
        {
            "id": e["id"],
            "name": e["name"],
            "created": utc_text(e["created"]),
            "budget": e["budget"],
            **{k: e["progress"][k] for k in ("total_run_count", "active_run_count")},
            "finished": e["progress"]["finished_run_count"],
        }
        for e in listed["data"]
    ]
    parsed = [
        (rid, created, state, name, json.loads(a), json.loads(v), json.loads(m or "{}"))
        for rid, created, state, name, a, v, m in found.rows
    ]
    values = [{k: x.get("value") for k, x in v.items()} for *_, v, _ in parsed]
    assignments = [a for *_, a, _, _ in parsed]
    metadata = [m for *_, m in parsed]
    runs = [
        {
            "id": rid,
            "created": utc_text(created),
            "state": state,
            "name": name or "",
            "values": {k: _text(x) for k, x in values[i].items()},
            "assignments": {k: _text(x) for k, x in assignments[i].items()},
            "metadata": {k: _text(x) for k, x in metadata[i].items()},
        }
        for i, (rid, created, state, name, *_) in enumerate(parsed)
    ]
    return ProjectPage(
        head,
        experiments,
        runs,
        found.total,
        _columns(values),
        _columns(assignments),
        _columns(metadata, (INSTANCE_KEY,)),
    )
