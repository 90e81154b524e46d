"""The ASGI application: the Neo4j driver is opened once in the lifespan and reached
through ``request.state``; nothing connects at import time.

Endpoints so far: ``/healthz`` (the process answers) and ``/readyz`` (Neo4j answers too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from neo4j import Driver
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from identity import __version__
from identity.config import Settings
from identity.errors import IdgraphError
from identity.store.driver import Graph, open_driver


class State(TypedDict):
    graph: Graph


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> JSONResponse:
    graph: Graph = request.state.graph
    try:
        await run_in_threadpool(graph.ping)
    except IdgraphError as e:
        return JSONResponse({"status": "unavailable", "neo4j": str(e)}, status_code=503)
    return JSONResponse({"status": "ready", "neo4j": "ok"})


def create_app(settings: Settings, *, driver: Driver | None = None) -> Starlette:
    """Build the app; the driver is opened at start-up unless one is given (tests)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        own = driver is None
        active = driver or open_driver(settings, verify=False, timeout=5.0)
        try:
            yield State(graph=Graph(active, settings.neo4j_database))
        finally:
            if own:
                active.close()

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz)],
        lifespan=lifespan,
    )
