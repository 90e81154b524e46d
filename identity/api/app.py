"""The ASGI application.

Shared resources are opened once in the lifespan and reached through ``request.state``
(starlette's way): the async Neo4j driver the GraphQL reads go through, the sync one the
services (resolve, steward actions, ingestion) use, the policy, the keys, the metrics and the
background resolver. Nothing connects at import time.

Routes: ``/graphql`` (GraphiQL in a browser, GraphQL over POST), the Segment-compatible
``/v1/*`` ingestion endpoints, ``/healthz`` (the process answers), ``/readyz`` (Neo4j answers
too), ``/metrics`` (Prometheus), ``/static/`` (GraphiQL's vendored scripts and styles) and
``/console/`` (the console for stewards and marketers: static files speaking GraphQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity import __version__
from identity.api.audiences import export_routes
from identity.api.auth import ApiKeys, Principal, WriteKeys, bearer_token
from identity.api.background_resolve import BackgroundResolver
from identity.api.console_files import ConsoleFiles
from identity.api.graphql import STATIC_DIR, GraphQLApp
from identity.api.ingestion import ingestion_routes
from identity.api.limits import RateLimiter
from identity.api.observability import Metrics, RequestContext, configure_logging, request_id
from identity.api.privacy import purge_schedule
from identity.api.subscriptions import OutboxFeed
from identity.config import Settings, load_settings
from identity.context import ServiceContext
from identity.errors import IdgraphError
from identity.policy import Policy, load_policy
from identity.store.driver import AsyncGraph, Driver, Graph, open_async_driver, open_driver
from identity.webhooks.worker import DeliveryWorker


class State(TypedDict):
    services: ServiceContext  # sync: what services work with (graph, settings, policy)
    reads: AsyncGraph  # async: GraphQL reads
    api_keys: ApiKeys
    write_keys: WriteKeys
    metrics: Metrics
    resolver: BackgroundResolver
    feed: OutboxFeed  # the outbox's end, for subscriptions
    wake_outbox: Callable[[], None]  # after a change: the delivery worker looks now


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "version": __version__})


async def readyz(request: Request) -> JSONResponse:
    reads: AsyncGraph = request.state.reads
    try:
        await reads.ping()
    except IdgraphError as e:
        return JSONResponse({"status": "unavailable", "neo4j": str(e)}, status_code=503)
    return JSONResponse({"status": "ready", "neo4j": "ok"})


async def metrics_endpoint(request: Request) -> Response:
    metrics: Metrics = request.state.metrics
    return metrics.endpoint(request)


def graphql_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A GraphQL-shaped error answered before the query runs (auth, limits)."""
    body = {
        "errors": [
            {"message": message, "extensions": {"code": code, "request_id": request_id.get()}}
        ]
    }
    return Response(json.dumps(body), status, headers, media_type="application/json")


class GraphQLGate:
    """In front of the GraphQL app: the body size limit, the bearer key and the rate limit.

    No key at all is let through with no principal (GraphiQL's page and introspection work;
    every field then answers UNAUTHENTICATED); a key that is wrong is refused outright.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body = settings.api_max_body_bytes
        self.limiter = RateLimiter(settings.api_rate_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["state"]
        headers = {name: value for name, value in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _too_large(self.max_body)(scope, receive, send)
            return
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1") or None)
        principal: Principal | None = None
        if headers.get(b"authorization") is not None:
            keys: ApiKeys = state["api_keys"]
            principal = keys.find(token) if token else None
            if principal is None:
                await graphql_error(
                    401,
                    "UNAUTHENTICATED",
                    "invalid API key: send Authorization: Bearer KEY with a key from "
                    "IDGRAPH_API_KEYS",
                    {"WWW-Authenticate": "Bearer"},
                )(scope, receive, send)
                return
            state["principal"] = principal.name
        client = scope.get("client")
        bucket = principal.name if principal else f"ip:{client[0] if client else '-'}"
        wait = self.limiter.take(bucket)
        if wait > 0:
            await graphql_error(
                429,
                "RATE_LIMITED",
                f"rate limit of {self.limiter.rate:g} requests/s exceeded: retry in {wait:.2f}s",
                {"Retry-After": str(max(1, round(wait)))},
            )(scope, receive, send)
            return
        state["caller"] = principal
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _limited(receive, self.max_body), tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _too_large(self.max_body)(scope, receive, send)


def _too_large(limit: int) -> Response:
    return graphql_error(
        413, "REQUEST_TOO_LARGE", f"request body over {limit} bytes (IDGRAPH_API_MAX_BODY_BYTES)"
    )


def _limited(receive: Receive, limit: int) -> Receive:
    """Count the body as it streams in (a chunked upload has no Content-Length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
        return message

    return wrapped


class _BodyTooLarge(Exception):
    pass


def create_app(
    settings: Settings, *, driver: Driver | None = None, policy: Policy | None = None
) -> Starlette:
    """Build the app; the drivers are opened at start-up (``driver``: a sync one from tests)."""
    api_keys = ApiKeys.parse(settings.api_keys)
    write_keys = WriteKeys.parse(settings.write_keys)
    active_policy = policy or load_policy(settings.policy)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        own = driver is None
        # services retry a little longer than reads: a deadlock between writers is retried
        sync = driver or open_driver(
            settings,
            verify=False,
            timeout=settings.api_neo4j_timeout,
            retry_time=max(5.0, settings.api_neo4j_timeout),
        )
        async_driver = open_async_driver(settings, timeout=settings.api_neo4j_timeout)
        services = ServiceContext.create(
            Graph(sync, settings.neo4j_database), settings, active_policy
        )
        feed = OutboxFeed()
        worker = DeliveryWorker(
            services, metrics.webhooks, feed.advance, deliver=settings.webhook_worker
        )
        delivering = asyncio.create_task(worker.run())
        loop = asyncio.get_running_loop()

        def resolved() -> None:  # from the resolver's thread
            loop.call_soon_threadsafe(worker.wake)

        resolver = BackgroundResolver(services, resolved)
        resolver.start()
        purger = None
        if settings.purge_interval_hours > 0:
            purger = asyncio.create_task(purge_schedule(services))
        try:
            yield State(
                services=services,
                reads=AsyncGraph(async_driver, settings.neo4j_database, metrics.observe_query),
                api_keys=api_keys,
                write_keys=write_keys,
                metrics=metrics,
                resolver=resolver,
                feed=feed,
                wake_outbox=worker.wake,
            )
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await delivering
            if purger is not None:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger
            resolver.stop()
            await async_driver.close()
            if own:
                sync.close()

    graphql_app = GraphQLApp(settings)
    routes = [
        Route("/graphql", GraphQLGate(graphql_app, settings), methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),  # subscriptions: graphql-transport-ws
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        *ingestion_routes(),
        *export_routes(),
        # only the vendored libraries: the console's own files are served under /console/
        Mount("/static/vendor", app=StaticFiles(directory=STATIC_DIR / "vendor"), name="static"),
        Mount("/console", app=ConsoleFiles(), name="console"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    paths = frozenset(r.path for r in routes if isinstance(r, Route))
    app.add_middleware(RequestContext, metrics=metrics, routes=paths)
    return app


def app_from_environment() -> Starlette:
    """The app from ``IDGRAPH_*`` variables (uvicorn's factory, one per worker process)."""
    settings = load_settings()
    configure_logging(settings.log_json, settings.log_level)
    return create_app(settings)
