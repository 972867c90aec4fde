"""What every router shares: dependencies, path ids, query parsing and rendering."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from suggestion_server.http.auth import authenticated_client
from suggestion_server.services.context import ServerContext
from suggestion_server.wire.errors import bad_request, not_found
from suggestion_server.wire.jsonbody import json_body
from suggestion_server.wire.paging import PageRequest, page_request
from suggestion_server.wire.schemas import MAX_ID, ErrorOut

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


async def server_context(request: Request) -> ServerContext:
    """FastAPI dependency: the app's ``ServerContext`` (store, engine, clock)."""
    context: ServerContext = request.app.state.context
    return context


Ctx = Annotated[ServerContext, Depends(server_context)]
ClientId = Annotated[int, Depends(authenticated_client)]
JsonBody = Annotated[Any, Depends(json_body)]
IdPath = Annotated[str, Path(pattern=r"^[0-9]+$", description="a numeric id")]
Fields = Annotated[str | None, Query(description="comma-separated top-level keys to return")]
Limit = Annotated[int | None, Query(description="0 to 1000, default 1000")]
Before = Annotated[str | None, Query(description="paging marker: items older than it")]
After = Annotated[str | None, Query(description="paging marker: items newer than it")]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 401, 403, 404, 405, 409, 413)
}


def path_id(value: str) -> int:
    """A path id as an integer; ids beyond the database's range cannot exist (404)."""
    number = int(value)
    if not 0 < number <= MAX_ID:
        raise not_found()
    return number


def paging(limit: int | None, before: str | None, after: str | None) -> PageRequest:
    """The validated page request."""
    return page_request(limit, before, after)


def query_bool(value: str | None, name: str) -> bool:
    """``true``/``false`` in any case (the python client sends ``True``); absent is False."""
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise bad_request(f"Invalid value for {name}: {value!r} - expected true or false")
    return lowered == "true"


def query_ids(value: str | None) -> list[int] | None:
    """``id=1,2,3`` as integers."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not all(p.isascii() and p.isdigit() and 0 < int(p) <= MAX_ID for p in parts):
        raise bad_request(f"Invalid value for id: {value!r} - expected comma-separated ids")
    return [int(p) for p in parts]


def metadata_query(request: Request) -> list[tuple[str, str]]:
    """The ``metadata.<key>=<value>`` list filters of the query string."""
    return [
        (key[len("metadata.") :], value)
        for key, value in request.query_params.multi_items()
        if key.startswith("metadata.")
    ]


async def reject_nul_in_query(request: Request) -> None:
    """Global dependency: NUL cannot be stored or compared (PostgreSQL), so it is a 400."""
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:
            raise bad_request("Query parameters must not contain the NUL character")


def _select_fields(obj: dict[str, Any], names: list[str]) -> dict[str, Any]:
    unknown = [n for n in names if n not in obj]
    if unknown:
        raise bad_request(
            f"Unknown field in fields: {', '.join(unknown)} - expected some of {', '.join(obj)}"
        )
    return {n: obj[n] for n in names}


def render(request: Request, payload: dict[str, Any], fields: str | None = None) -> Response:
    """The success response: JSON (optionally only ``fields``), or 204 when the client sent
    ``X-Response-Content: skip``."""
    if fields:
        names = [f.strip() for f in fields.split(",") if f.strip()]
        if payload.get("object") == "pagination":
            payload = {**payload, "data": [_select_fields(item, names) for item in payload["data"]]}
        elif names:
            payload = _select_fields(payload, names)
    if request.headers.get("x-response-content", "").lower() == "skip":
        return Response(status_code=204)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(body.encode("utf-8"), status_code=200, media_type=JSON_MEDIA_TYPE)


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a JSON request body (the app adds the components)."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def ok(model: Any) -> dict[int | str, dict[str, Any]]:
    """``responses`` for a route whose 200 body is ``model``."""
    return {200: {"model": model}, **ERROR_RESPONSES}
