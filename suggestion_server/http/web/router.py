"""Routes of the experiment web page (read-only).

``/`` lists the signed-in client's experiments, ``/experiments/{id}`` is the page (its tables and
plots are rendered in the browser from ``/experiments/{id}/data.json``). A request is
authenticated by the API's HTTP Basic header (for scripts) or by the session cookie set by
``POST /signin``; the token itself never appears in a URL or a cookie.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from suggestion_server.http.auth import authenticated_client
from suggestion_server.http.refusal_log import NO_TOKEN, refuse
from suggestion_server.http.token_scope import WRONG_SCOPE
from suggestion_server.http.web import sessions
from suggestion_server.http.web.health_view import refusals_json
from suggestion_server.http.web.page_cost import page_cost
from suggestion_server.http.web.project_page import project_page, utc_text
from suggestion_server.http.web.queries import (
    experiment_rows_json,
    experiment_runs_json,
    token_by_id,
    token_row,
)
from suggestion_server.http.web.run_curves import RunsPage, run_curves_json, runs_page
from suggestion_server.http.web.static_files import PLOTLY_NAME, plotly_version, static_file
from suggestion_server.services.context import ServerContext
from suggestion_server.services.experiments import list_experiments
from suggestion_server.services.render import experiment_json
from suggestion_server.storage.queries import experiment_row_for_client
from suggestion_server.storage.tokens import Grant, resolve_token, token_hash
from suggestion_server.wire.errors import ApiError, error_response
from suggestion_server.wire.paging import page_request

router = APIRouter(include_in_schema=False)

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

MAX_FORM_BYTES = 8192
GZIP_MIN_BYTES = 2048
_BASE_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# No inline scripts anywhere. Plotly's parallel coordinates compile WebGL code with
# ``new Function`` (regl), hence 'unsafe-eval' on the experiment page only; inline *styles* are
# what Plotly injects for its own elements.
PAGE_CSP = f"{_BASE_CSP}; script-src 'self'"
EXPERIMENT_CSP = f"{_BASE_CSP}; script-src 'self' 'unsafe-eval'"
REFUSED_MESSAGE = "That API token is not valid. Check it (optfleet token) and try again."


def _secure_headers(response: Response, csp: str = PAGE_CSP) -> Response:
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _html(template: str, status: int = 200, csp: str = PAGE_CSP, **values: Any) -> Response:
    body = _templates.get_template(template).render(plotly_version=plotly_version(), **values)
    return _secure_headers(
        Response(body, status_code=status, media_type="text/html; charset=utf-8"), csp
    )


def _context(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.context
    return context


def _cookie_client(ctx: ServerContext, cookie: str | None) -> int | None:
    """The client of a valid session cookie, or None."""
    claim = sessions.parse_cookie(cookie)
    if claim is None:
        return None
    with ctx.store.read() as session:
        found = token_by_id(session, claim.token_id)
    if found is None or not sessions.verify(claim, found[0]):
        return None
    return found[1]


async def _web_client(request: Request) -> int | None:
    """The client behind the request (Basic header first, then the cookie), None if neither.

    A Basic header with a bad token raises the API's 400/403, exactly as on ``/v1``."""
    if request.headers.get("authorization") is not None:
        return await authenticated_client(request)
    cookie = request.cookies.get(sessions.COOKIE_NAME)
    if not cookie:
        return None
    return await run_in_threadpool(_cookie_client, _context(request), cookie)


def _to_signin() -> Response:
    return _secure_headers(RedirectResponse("/signin", status_code=303))


def _signed_in(request: Request) -> bool:
    return request.headers.get("authorization") is None


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    """The sign-in form."""
    return _html("signin.html", message=None)


def _session_for(ctx: ServerContext, token: str) -> str | None:
    hashed = token_hash(token)
    with ctx.store.read() as session:
        found = token_row(session, hashed)
    return None if found is None else sessions.session_cookie_value(found[0], hashed)


@router.post("/signin")
async def signin(request: Request) -> Response:
    """Check the posted token; on success set the session cookie and go to the list."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _html("signin.html", status=413, message="The form is too large.")
    form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    token = (form.get("token") or [""])[0].strip()
    if not token or "\x00" in token:
        return _html("signin.html", status=400, message="Enter an API token.")
    ctx = _context(request)
    value = await run_in_threadpool(_session_for, ctx, token)
    if value is None:
        # Logged and counted like the API's refusals; the form says no more than before.
        found = await run_in_threadpool(resolve_token, ctx.store, token, ctx.clock())
        # A known token that cannot sign in is an experiment-scoped one.
        reason = WRONG_SCOPE if isinstance(found, Grant) else found.reason
        refuse(
            request.app, ApiError(403, REFUSED_MESSAGE), reason, found.token_id, "POST", "/signin"
        )
        return _html("signin.html", status=403, message=REFUSED_MESSAGE)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        sessions.COOKIE_NAME,
        value,
        max_age=sessions.SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return _secure_headers(response)


@router.post("/signout")
async def signout(request: Request) -> Response:
    """Forget the session cookie."""
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(
        sessions.COOKIE_NAME,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return _secure_headers(response)


@router.get("/")
async def experiment_list(request: Request) -> Response:
    """The client's active experiments, Core and AI (with their project)."""
    client_id = await _web_client(request)
    if client_id is None:
        return _to_signin()
    page = await run_in_threadpool(
        list_experiments, _context(request), client_id, page_request(None, None, None), None
    )
    rows = []
    for exp in page["data"]:
        progress = exp.get("progress") or {}
        best = progress.get("best_observation")
        best_values = [v["value"] for v in (best or {}).get("values", [])]
        rows.append(
            {
                "id": exp["id"],
                "name": exp["name"],
                "created": utc_text(exp["created"]),
                "observations": progress.get("observation_count", 0),
                "budget": exp.get("observation_budget"),
                "open": progress.get("open_suggestion_count", 0),
                "best": ", ".join(f"{v:.6g}" for v in best_values),
                "project": exp.get("project"),
                "ai": bool(exp.get("runs_only")),
            }
        )
    return _html("experiments.html", experiments=rows, signed_in=_signed_in(request))


@router.get("/server/health")
async def server_health(request: Request) -> Response:
    """The health view: refused requests per reason (server-wide)."""
    client_id = await _web_client(request)
    if client_id is None:
        return _to_signin()
    health = await run_in_threadpool(refusals_json, _context(request))
    return _html("health.html", health=health, signed_in=_signed_in(request))


@router.get("/server/health.json")
async def server_health_json(request: Request) -> Response:
    """What the health view shows, as JSON (docs/web.md, "Health")."""
    client_id = await _web_client(request)
    if client_id is None:
        missing = ApiError(401, "Sign in (POST /signin) or send an operator token.")
        refuse(request.app, missing, NO_TOKEN, None, "GET", "/server/health.json")
        return _secure_headers(error_response(missing.status, missing.message))
    health = await run_in_threadpool(refusals_json, _context(request))
    return _secure_headers(
        Response(json.dumps(health), media_type="application/json; charset=utf-8")
    )


def _experiment_name(ctx: ServerContext, client_id: int, experiment_id: str) -> dict[str, Any]:
    """Id, name, project and kind of the client's experiment (404 ``ApiError`` otherwise): one
    indexed row."""
    with ctx.store.read() as session:
        row = experiment_row_for_client(session, client_id, int(experiment_id))
        return {
            "id": str(row.id),
            "name": str(row.name),
            "project": row.project,
            "ai": bool(row.runs_only),
        }


def _not_found_page(request: Request, what: str = "experiment") -> Response:
    return _html("not_found.html", status=404, signed_in=_signed_in(request), what=what)


@router.get("/experiments/{experiment_id}")
async def experiment_page(request: Request, experiment_id: str) -> Response:
    """The experiment page (a shell; its script renders the data)."""
    client_id = await _web_client(request)
    if client_id is None:
        return _to_signin()
    if not experiment_id.isdigit():
        return _not_found_page(request)
    try:
        exp = await run_in_threadpool(_experiment_name, _context(request), client_id, experiment_id)
    except ApiError as err:
        if err.status == 404:
            return _not_found_page(request)
        raise
    return _html(
        "experiment.html",
        csp=EXPERIMENT_CSP,
        experiment=exp,
        signed_in=_signed_in(request),
    )


def _rows_document(head: dict[str, Any], arrays: dict[str, str]) -> bytes:
    """``head`` with the pre-serialized JSON ``arrays`` spliced in as further keys."""
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    spliced = "".join(f',"{key}":{array}' for key, array in arrays.items())
    return f"{text[:-1]}{spliced}}}".encode()


@router.get("/projects/{project_id}")
async def project(request: Request, project_id: str) -> Response:
    """A project's AI experiments and its runs outside any experiment."""
    client_id = await _web_client(request)
    if client_id is None:
        return _to_signin()
    try:
        found = await run_in_threadpool(project_page, _context(request), client_id, project_id)
    except ApiError as err:
        if err.status == 404:
            return _not_found_page(request, "project")
        raise
    return _html("project.html", page=found, signed_in=_signed_in(request))


def experiment_payload(ctx: ServerContext, client_id: int, experiment_id: int) -> bytes:
    """Everything the page shows about one experiment, as one JSON document (bytes). An AI
    experiment's adds its runs (``runs``), and its cost figures come from the ended runs'
    metadata (its observations carry none)."""
    with ctx.store.read() as session:
        exp = experiment_json(experiment_row_for_client(session, client_id, experiment_id), None)
        rows = experiment_rows_json(session, experiment_id)
        runs = experiment_runs_json(session, experiment_id) if exp["runs_only"] else None
    parameters = [
        {
            "name": p["name"],
            "type": p["type"],
            "bounds": None if p["bounds"] is None else [p["bounds"]["min"], p["bounds"]["max"]],
            "categories": None
            if p["categorical_values"] is None
            else [c["name"] for c in p["categorical_values"]],
        }
        for p in exp["parameters"]
    ]
    # A conditional is shown as the categorical it is in every suggestion and observation.
    parameters += [
        {"name": c["name"], "type": "categorical", "bounds": None, "categories": c["values"]}
        for c in exp["conditionals"]
    ]
    metrics = [
        {"name": m["name"] or "", "objective": m["objective"], "strategy": m["strategy"]}
        for m in exp["metrics"]
    ]
    experiment = {
        "id": exp["id"],
        "name": exp["name"],
        "state": exp["state"],
        "created": exp["created"],
        "observation_budget": exp["observation_budget"],
        "parallel_bandwidth": exp["parallel_bandwidth"],
        "observation_count": rows.observation_count,
        "open_suggestion_count": rows.suggestion_count,
        "project": exp["project"],
        "runs_only": exp["runs_only"],
    }
    arrays = {"suggestions": rows.suggestions, "observations": rows.observations}
    cost_rows = rows.observation_metadata
    if runs is not None:
        experiment["active_run_count"] = runs.active_count
        arrays["runs"] = runs.runs
        cost_rows = runs.ended_metadata
    head = {
        "experiment": experiment,
        "parameters": parameters,
        "metrics": metrics,
        "cost": page_cost(cost_rows),
    }
    return _rows_document(head, arrays)


def _json_response(request: Request, body: bytes, now: int) -> Response:
    """JSON with an ETag (304 when unchanged) and gzip when the client accepts it.

    The ETag covers the data only; ``now`` (the server's clock, for ages) is added after."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    body = body[:-1] + f',"now":{now}}}'.encode()
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Authorization, Cookie"}
    if request.headers.get("if-none-match") == etag:
        return _secure_headers(Response(status_code=304, headers=headers))
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        body = gzip.compress(body, compresslevel=1, mtime=0)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] += ", Accept-Encoding"
    return _secure_headers(
        Response(body, media_type="application/json; charset=utf-8", headers=headers)
    )


async def _data_client(request: Request, experiment_id: str) -> int | Response:
    """The client asking for an experiment's JSON, or the 401/404 to answer instead."""
    client_id = await _web_client(request)
    if client_id is None:
        return _secure_headers(
            error_response(401, "Sign in at /signin or send the API token via HTTP Basic Auth.")
        )
    if not experiment_id.isdigit():
        return _secure_headers(error_response(404, "The requested resource could not be found"))
    return client_id


@router.get("/experiments/{experiment_id}/data.json")
async def experiment_data(request: Request, experiment_id: str) -> Response:
    """The experiment's page data (polled by the page while a fleet runs)."""
    client_id = await _data_client(request, experiment_id)
    if isinstance(client_id, Response):
        return client_id
    payload = await run_in_threadpool(
        experiment_payload, _context(request), client_id, int(experiment_id)
    )
    return _json_response(request, payload, _context(request).now())


def runs_payload(ctx: ServerContext, client_id: int, experiment_id: int, page: RunsPage) -> bytes:
    """One page of the experiment's training runs with their checkpoints (JSON bytes)."""
    with ctx.store.read() as session:
        experiment_row_for_client(session, client_id, experiment_id)
        return run_curves_json(session, experiment_id, page).encode("utf-8")


@router.get("/experiments/{experiment_id}/runs.json")
async def experiment_runs(request: Request, experiment_id: str) -> Response:
    """The "value vs step" plot's data: ``limit`` runs (default 50, at most 100), newest first,
    older than the run id ``before``."""
    client_id = await _data_client(request, experiment_id)
    if isinstance(client_id, Response):
        return client_id
    query = request.query_params
    page = runs_page(query.get("limit"), query.get("before"))
    payload = await run_in_threadpool(
        runs_payload, _context(request), client_id, int(experiment_id), page
    )
    return _json_response(request, payload, _context(request).now())


@router.get("/web/static/{name}")
async def static(request: Request, name: str) -> Response:
    """``app.js``, ``app.css`` and ``plotly.min.js`` (from the installed plotly wheel)."""
    found = await run_in_threadpool(static_file, name)
    if found is None:
        return _secure_headers(error_response(404, f"No static file {name}"))
    cache = "public, max-age=86400" if name == PLOTLY_NAME else "no-cache"
    headers = {"ETag": found.etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == found.etag:
        return _secure_headers(Response(status_code=304, headers=headers))
    body = found.body
    if "gzip" in request.headers.get("accept-encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    return _secure_headers(Response(body, media_type=found.media_type, headers=headers))
