"""Request ids, structured logs and Prometheus metrics.

Every request gets an id (the caller's ``X-Request-ID`` when it is a sane token, else a new
one), echoed in the ``X-Request-ID`` response header, put on every log line written while
the request runs (a context variable) and in every GraphQL error. Logs are one JSON object
per line with ``IDGRAPH_LOG_JSON=true``; keys and ``Authorization`` headers are never logged.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from identity.webhooks.metrics import WebhookMetrics

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_SANE_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or request_id.get()
        message = record.getMessage()
        extra = getattr(record, "fields", None) or {}
        if self.as_json:
            entry = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "request_id": rid,
                "message": message,
                **extra,
            }
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            return json.dumps(entry, default=str)
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        line = f"{record.levelname:<7} [{rid}] {record.name}: {message} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(as_json: bool, level: str) -> None:
    """Route idgraph's and uvicorn's loggers through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json))
    for name in ("idgraph", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # anything else (libraries, the Neo4j driver) in the same format, warnings and worse only
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # the driver's warnings are its own retries of transient errors: errors only
    driver = logging.getLogger("neo4j")
    driver.handlers[:] = []
    driver.setLevel(logging.ERROR)
    driver.propagate = True
    # uvicorn's access log repeats what idgraph.access says, with less
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    """The Prometheus collectors of one app (own registry: several apps may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "idgraph_requests",
            "HTTP requests by route, GraphQL operation and status.",
            ["route", "operation", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "idgraph_request_seconds",
            "HTTP request latency by route and GraphQL operation.",
            ["route", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.neo4j = Histogram(
            "idgraph_neo4j_query_seconds",
            "Neo4j query time by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "idgraph_graphql_errors",
            "GraphQL errors by code.",
            ["code"],
            registry=self.registry,
        )
        self.ingested = Counter(
            "idgraph_ingested_events",
            "Events received over HTTP by outcome (accepted, rejected).",
            ["outcome"],
            registry=self.registry,
        )

        self.webhooks = WebhookMetrics(self.registry)

    def observe_query(self, operation: str, seconds: float) -> None:
        self.neo4j.labels(operation).observe(seconds)

    def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestContext:
    """ASGI middleware: request id, access log line and request metrics.

    The GraphQL layer names the operation through ``scope["state"]["operation"]`` so that
    metrics and logs say ``profile`` rather than ``/graphql``.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app's paths: metric labels stay bounded
        self.log = logging.getLogger("idgraph.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = given if _SANE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = scope["path"] if scope["path"] in self.routes else "other"
            operation = str(scope["state"].get("operation", "-"))
            self.metrics.requests.labels(route, operation, str(status)).inc()
            self.metrics.latency.labels(route, operation).observe(seconds)
            if route not in ("/healthz", "/metrics"):
                self.log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "fields": {
                            "status": status,
                            "operation": operation,
                            "ms": round(seconds * 1000, 2),
                            "principal": scope["state"].get("principal", "-"),
                        }
                    },
                )
            request_id.reset(token)
