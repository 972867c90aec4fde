"""/health (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from suggestion_server.http.routes.common import JSON_MEDIA_TYPE

router = APIRouter(tags=["health"])


@router.api_route("/health", methods=["HEAD", "POST"], include_in_schema=False)
@router.get("/health")
async def health() -> Response:
    """200 ``{}`` while the process serves requests."""
    return Response(b"{}", media_type=JSON_MEDIA_TYPE)
