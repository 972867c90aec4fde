"""Path parts of the ``/v1/clients/{client}/projects/{project}`` routes: a token reaches only
its own client (another client's id is a 404, so its existence does not leak)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

from suggestion_server.http.routes.common import path_id
from suggestion_server.wire.errors import not_found

ClientPath = Annotated[str, Path(pattern=r"^[0-9]+$", description="the token's client id")]
ProjectPath = Annotated[str, Path(description="the project's string id")]


def own_client(client_path: str, client_id: int) -> None:
    """404 unless the path's client is the token's."""
    if path_id(client_path) != client_id:
        raise not_found()


def connection_of(request: Request) -> str | None:
    """The client's connection (peer address and port): who holds a run reservation."""
    peer = request.client
    return None if peer is None else f"{peer.host}:{peer.port}"
