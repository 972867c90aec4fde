"""The FastAPI application: ``create_app(db_url)`` wires store, engine, auth and routers."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from pydantic.json_schema import models_json_schema

from suggestion_server.http.auth import TokenCache
from suggestion_server.http.hot_writes import HotWrites
from suggestion_server.http.routes import (
    ai_experiments,
    best_assignments,
    checkpoints,
    experiments,
    fleet_spend,
    health,
    observations,
    projects,
    queued_suggestions,
    runs,
    stopping_criteria,
    suggestions,
    tokens,
    training_runs,
)
from suggestion_server.http.routes.common import reject_nul_in_query
from suggestion_server.http.web.router import router as web_router
from suggestion_server.optimizer.api import Suggester
from suggestion_server.pool.optimizer_process import OptimizerProcess, in_memory
from suggestion_server.services.context import ServerContext
from suggestion_server.storage.database import DB_POOL_SIZE, Store, make_engine
from suggestion_server.storage.migrate import upgrade_to_head
from suggestion_server.storage.tokens import register_token
from suggestion_server.wire.errors import install_error_handlers
from suggestion_server.wire.projects import PROJECT_REQUEST_MODELS
from suggestion_server.wire.schemas import REQUEST_MODELS
from suggestion_server.wire.training_runs import TRAINING_RUN_REQUEST_MODELS

log = logging.getLogger("suggestion_server")

# How ``--workers N`` hands the database URL to the worker processes.
DB_URL_ENV = "OPTFLEET_DB_URL"
DB_POOL_SIZE_ENV = "OPTFLEET_DB_POOL_SIZE"
LOG_LEVEL_ENV = "OPTFLEET_LOG_LEVEL"
SEED_ENV = "OPTFLEET_SEED"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Worker threads for the sync endpoints: enough for 32+ concurrent clients.
THREAD_POOL_SIZE = 64


def default_suggester(seed: int | None = None) -> Suggester:
    """The engine (imported lazily: it pulls in Optuna); ``seed`` fixes its randomness."""
    from suggestion_server.optimizer.suggester import StudySuggester

    return StudySuggester(seed=seed)


def _install_openapi(app: FastAPI) -> None:
    """Add the request-body models (bodies are parsed by ``json_body``) to the components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        _, defs = models_json_schema(
            [
                (model, "validation")
                for model in (
                    *REQUEST_MODELS,
                    *TRAINING_RUN_REQUEST_MODELS,
                    *PROJECT_REQUEST_MODELS,
                )
            ],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs.get("$defs", {}))
        # Validation failures are 400s here (see errors.py), never FastAPI's 422.
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def prepare_database(db_url: str, bootstrap_token: str | None = None) -> None:
    """Migrate the schema and register ``bootstrap_token`` once, before worker processes start."""
    store = Store(make_engine(db_url))
    try:
        upgrade_to_head(store.engine)
        if bootstrap_token:
            register_token(store, bootstrap_token, name="bootstrap")
    finally:
        store.dispose()


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn's import-string factory for ``--workers N``).

    The parent process has already migrated the database and registered the bootstrap token
    (``prepare_database``) and passes the URL in ``OPTFLEET_DB_URL``.
    """
    db_url = os.environ.get(DB_URL_ENV)
    if not db_url:
        raise RuntimeError(f"{DB_URL_ENV} is not set: start workers with `--workers N`")
    # A spawned worker does not inherit the parent's logging set-up.
    logging.basicConfig(level=os.environ.get(LOG_LEVEL_ENV, "INFO"), format=LOG_FORMAT)
    pool_size = int(os.environ.get(DB_POOL_SIZE_ENV, DB_POOL_SIZE))
    seed = os.environ.get(SEED_ENV)
    # Every process gets the same seed; which process serves a request then also decides the
    # proposal, so an exact replay needs one process (documented with --seed).
    return create_app(
        db_url,
        prepared=True,
        db_pool_size=pool_size,
        engine_process=True,
        seed=int(seed) if seed is not None else None,
    )


def create_app(
    db_url: str,
    bootstrap_token: str | None = None,
    suggester: Suggester | None = None,
    clock: Callable[[], float] | None = None,
    *,
    prepared: bool = False,
    hot_writes: bool = True,
    db_pool_size: int = DB_POOL_SIZE,
    engine_process: bool = False,
    seed: int | None = None,
) -> FastAPI:
    """Build the app: migrate the database, register ``bootstrap_token`` (idempotent).

    ``prepared`` skips both (``prepare_database`` already ran in a parent process);
    ``hot_writes=False`` leaves the two hot writes to their FastAPI routes (parity tests);
    ``db_pool_size`` is the database connections this process keeps. ``engine_process`` runs
    the engine, seeded with ``seed``, in a child process (``engine_process.py``; not for an
    in-memory database, which a child cannot open); otherwise it runs in this process with
    ``suggester`` (default: the engine seeded with ``seed``).
    """
    store = Store(make_engine(db_url, db_pool_size))
    if not prepared:
        upgrade_to_head(store.engine)
        if bootstrap_token:
            register_token(store, bootstrap_token, name="bootstrap")
    if engine_process and suggester is None and not in_memory(db_url):
        child = OptimizerProcess(db_url, seed)
        child.start()
        context = ServerContext(store=store, optimizer_runs=child)
    else:
        context = ServerContext.in_process(store, suggester or default_suggester(seed))
    if clock is not None:
        context.clock = clock

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREAD_POOL_SIZE
        yield
        context.pool.shutdown()
        store.dispose()

    app = FastAPI(
        title="optfleet suggestion server",
        version="1",
        description="SigOpt v1 compatible suggestion API (see docs/api.md).",
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_in_query)],
    )
    app.state.context = context
    app.state.token_cache = TokenCache()
    install_error_handlers(app)
    if hot_writes:
        app.add_middleware(HotWrites)
    for module in (
        health,
        experiments,
        suggestions,
        queued_suggestions,
        observations,
        best_assignments,
        stopping_criteria,
        fleet_spend,
        training_runs,
        checkpoints,
        projects,
        ai_experiments,
        runs,
        tokens,
    ):
        app.include_router(module.router)
    app.include_router(web_router)
    _install_openapi(app)
    return app
