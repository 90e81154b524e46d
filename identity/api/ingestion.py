"""Segment-compatible ingestion: ``POST /v1/batch``, ``/v1/identify``, ``/v1/track``,
``/v1/page``, ``/v1/screen``, ``/v1/alias`` and ``/v1/group``.

These follow Segment's HTTP Tracking API, so Segment's own SDKs (pointed at this server) and
anything that speaks the same protocol (RudderStack, Jitsu) can send here:

- the write key is the HTTP basic-auth user name (``Authorization: Basic base64(KEY:)``, as
  the SDKs send it) or ``writeKey`` in the body; it names the source the events count under;
- ``/v1/batch`` takes ``{"batch": [...], "context"?, "integrations"?}``, the top-level
  ``context`` and ``integrations`` applying to every event (the event's own values win);
  the other endpoints take one event, its ``type`` given by the path;
- 32 KB per event, 500 KB per request (also counted as the body streams in, and after gzip
  decompression).

The events are then written as NDJSON, one event a line, and loaded by
:func:`identity.ingest.load_segment_file`: the very code path of ``idgraph load segment``,
with its validation, rejects file, lineage and idempotency. The batch id comes from the source
and the SHA-256 of those lines, so a retried request (even with a new ``sentAt``, as the SDKs
send on every attempt) finds its batch already loaded and changes nothing. Unlike Segment,
the answer says what was refused: counts, and each rejected event with its reason.

A load that accepted something asks the background resolver for an incremental resolve and
answers without waiting for it (``?resolve=wait`` waits, up to 30 s).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from identity.api.auth import WriteKey, WriteKeys, basic_user
from identity.api.background_resolve import BackgroundResolver
from identity.api.observability import Metrics, request_id
from identity.context import ServiceContext
from identity.errors import IdgraphError, StoreUnavailableError
from identity.ingest.service import Input, LoadReport, load_segment_file
from identity.model import Rejection
from identity.store.rows import DUPLICATE, FORGOTTEN

log = logging.getLogger("idgraph.ingestion")

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
RESOLVE_WAIT_SECONDS = 30.0
EVENT_ENDPOINTS = ("identify", "track", "page", "screen", "alias", "group")


class _Refused(Exception):
    """A request refused as a whole, before anything is loaded."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def _error(error: _Refused) -> JSONResponse:
    """Segment's error shape (``code`` and ``message``: what its SDKs read), plus ``success``."""
    return JSONResponse(
        {"success": False, "code": error.code, "message": error.message},
        error.status,
        error.headers,
    )


def _unauthorized(message: str) -> _Refused:
    return _Refused(401, "unauthorized", message, {"WWW-Authenticate": 'Basic realm="idgraph"'})


def _too_large(what: str, size: int | str, limit: int) -> _Refused:
    return _Refused(
        413,
        "too_large",
        f"{what} is {size} bytes, over the limit of {limit // 1024} KB (Segment's too)",
    )


def _header_key(request: Request, keys: WriteKeys) -> WriteKey | None:
    """The key of a basic-auth header; refused at once when the header names a wrong key."""
    user = basic_user(request.headers.get("authorization"))
    if user is None:
        return None
    key = keys.find(user)
    if key is None:
        raise _unauthorized(_wrong_key(keys))
    return key


def _body_key(body: dict[str, Any], keys: WriteKeys) -> WriteKey:
    presented = body.get("writeKey")
    if not isinstance(presented, str) or not presented:
        raise _unauthorized(
            "missing write key: send it as the basic-auth user name "
            "(Authorization: Basic base64(WRITE_KEY:)) or as writeKey in the body"
        )
    key = keys.find(presented)
    if key is None:
        raise _unauthorized(_wrong_key(keys))
    return key


def _wrong_key(keys: WriteKeys) -> str:
    if not len(keys):
        return "ingestion is off: no write key is configured (IDGRAPH_WRITE_KEYS)"
    return "invalid write key: not one of IDGRAPH_WRITE_KEYS"


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, never holding more than ``limit`` bytes of it (nor of it decompressed)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise _too_large("the request body", length, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large("the request body", f"more than {limit}", limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("identity", ""):
        return bytes(body)
    if encoding != "gzip":
        raise _Refused(415, "unsupported_encoding", f"Content-Encoding {encoding!r}: send gzip")
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(bytes(body), limit + 1)
    except zlib.error as e:
        raise _Refused(400, "invalid_gzip", f"the gzip body cannot be decompressed: {e}") from e
    if len(data) > limit:
        raise _too_large("the decompressed request body", f"more than {limit}", limit)
    return data


def _parse(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise _Refused(400, "invalid_json", f"the body is not UTF-8: {e.reason}") from e
    except json.JSONDecodeError as e:
        raise _Refused(
            400, "invalid_json", f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    if not isinstance(document, dict):
        raise _Refused(
            400,
            "invalid_request",
            f"the body must be a JSON object, got {type(document).__name__}",
        )
    return document


def _merged(shared: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """``own`` over ``shared``, objects merged key by key."""
    merged = dict(shared)
    for key, value in own.items():
        base = merged.get(key)
        merged[key] = (
            _merged(base, value) if isinstance(base, dict) and isinstance(value, dict) else value
        )
    return merged


def _batch_events(body: dict[str, Any]) -> list[object]:
    """The events of a ``/v1/batch`` body, with the batch's ``context`` and ``integrations``."""
    items = body.get("batch")
    if not isinstance(items, list):
        raise _Refused(400, "invalid_request", 'the body must hold "batch": a list of events')
    if not items:
        raise _Refused(400, "invalid_request", "the batch is empty: nothing to load")
    shared: dict[str, dict[str, Any]] = {}
    for name in ("context", "integrations"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise _Refused(400, "invalid_request", f"{name} must be an object")
        if value:
            shared[name] = value
    events: list[object] = []
    for index, item in enumerate(items):
        if isinstance(item, list) or (isinstance(item, dict) and "batch" in item):
            what = "a list" if isinstance(item, list) else "a batch"
            raise _Refused(
                400, "invalid_request", f"batch[{index}] is {what}: a batch holds events"
            )
        size = len(json.dumps(item, ensure_ascii=False).encode())
        if size > MAX_EVENT_BYTES:
            raise _too_large(f"batch[{index}]", size, MAX_EVENT_BYTES)
        if isinstance(item, dict):  # anything else: the loader rejects it as not an event
            item = dict(item)
            for name, value in shared.items():
                own = item.get(name)
                if own is None or isinstance(own, dict):
                    item[name] = _merged(value, own or {})
        events.append(item)
    return events


def _single_event(body: dict[str, Any], kind: str) -> list[object]:
    """The event of a ``/v1/<kind>`` body: its ``type`` is ``kind``, given or not."""
    given = body.get("type")
    if "batch" in body:
        raise _Refused(400, "wrong_type", f"/v1/{kind} takes one event: send batches to /v1/batch")
    if given is not None and given != kind:
        raise _Refused(
            400,
            "wrong_type",
            f"/v1/{kind} takes {kind} events, got type {given!r}: "
            "send other types to their own endpoint or to /v1/batch",
        )
    return [{**body, "type": kind}]


def _ndjson(events: list[object]) -> bytes:
    """One event a line (``writeKey`` left out: it must not reach the rejects file)."""
    lines = []
    for event in events:
        if isinstance(event, dict):
            event.pop("writeKey", None)
        lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def _details(rejections: tuple[Rejection, ...]) -> list[dict[str, Any]]:
    """Rejections as the caller sees them, in request order: ``index`` is the event's place
    in the request (its line in the loaded NDJSON, less one)."""
    details = [
        {
            "index": int(r.record) - 1,
            "code": r.code,
            "message": r.message,
            "field": r.field,
        }
        for r in rejections
    ]
    return sorted(details, key=lambda d: d["index"])


def _answer(report: LoadReport, resolve: str) -> JSONResponse:
    """200 when something was accepted, or when every refusal is a duplicate ``messageId``
    (the events are in already) or a forgotten person's (suppressed on purpose: sending them
    again changes nothing); 400 with the same details when every event was refused."""
    counts = report.counts
    refused = counts.rejected - counts.reasons[DUPLICATE] - counts.reasons[FORGOTTEN]
    success = counts.accepted > 0 or refused == 0
    if counts.rejected == 0:
        message = f"{counts.accepted} event(s) accepted"
    elif success:
        message = f"{counts.rejected} of {counts.read} event(s) rejected: see rejections"
    else:
        message = f"every event was rejected ({counts.rejected}): see rejections"
    if report.status == "already_loaded":
        message = f"already loaded (batch {report.batch_id}): nothing changed; {message}"
    body: dict[str, Any] = {"success": success}
    if not success:
        body["code"] = "rejected"
    body |= {
        "message": message,
        "batch": report.batch_id,
        "status": report.status,
        "counts": {"read": counts.read, "accepted": counts.accepted, "rejected": counts.rejected},
        "reasons": dict(counts.reasons),
        "rejections": _details(report.rejections),
        "rejected_values": _details(report.rejected_values),
        "resolve": resolve,
    }
    return JSONResponse(body, 200 if success else 400)


def _record(report: LoadReport, key: WriteKey, metrics: Metrics) -> None:
    counts = report.counts
    metrics.ingested.labels("accepted").inc(counts.accepted)
    metrics.ingested.labels("rejected").inc(counts.rejected)
    fields = {"source": key.source, "write_key": key.name, "read": counts.read}
    fields |= {"accepted": counts.accepted, "rejected": counts.rejected}
    log.info("ingested %s", report.batch_id, extra={"fields": fields})


def _load(services: ServiceContext, data: bytes, name: str, key: WriteKey) -> LoadReport:
    services.graph.ping()  # not retried: a request answers 503 at once while Neo4j is down
    return load_segment_file(
        services,
        Input.of_bytes(data, name),
        source=key.source,
        keep_rejections=True,
    )


async def _ingest(request: Request, kind: str | None) -> Response:
    state = request.state
    keys: WriteKeys = state.write_keys
    metrics: Metrics = state.metrics
    resolver: BackgroundResolver = state.resolver
    wait = request.query_params.get("resolve")
    try:
        if wait not in (None, "wait"):
            raise _Refused(400, "invalid_request", f"resolve={wait!r}: the only value is wait")
        key = _header_key(request, keys)
        body = _parse(await _read_body(request, MAX_EVENT_BYTES if kind else MAX_BATCH_BYTES))
        key = key or _body_key(body, keys)
        events = _single_event(body, kind) if kind else _batch_events(body)
        data = _ndjson(events)
        name = f"POST {request.url.path} (request {request_id.get()})"
        report = await run_in_threadpool(_load, state.services, data, name, key)
    except _Refused as e:
        return _error(e)
    except StoreUnavailableError as e:  # the detail (Neo4j's address) is for the logs only
        log.warning("ingestion refused, Neo4j unavailable: %s", e)
        message = "the graph database is unavailable: nothing was loaded, retry later"
        return _error(_Refused(503, "unavailable", message, {"Retry-After": "5"}))
    except IdgraphError:
        log.exception("ingestion failed")
        return _error(_Refused(500, "internal", f"internal error (request {request_id.get()})"))
    resolve = "none"
    if report.status == "completed":
        _record(report, key, metrics)
        if report.counts.accepted:
            resolver.request()
            resolve = "requested"
    if wait and resolve == "requested":
        done = await run_in_threadpool(resolver.wait_idle, RESOLVE_WAIT_SECONDS)
        resolve = "done" if done else "pending"
    return _answer(report, resolve)


def _endpoint(kind: str | None) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await _ingest(request, kind)

    endpoint.__name__ = f"ingest_{kind or 'batch'}"
    return endpoint


def ingestion_routes() -> list[Route]:
    """The ``/v1/*`` routes, POST only."""
    return [
        Route("/v1/batch", _endpoint(None), methods=["POST"]),
        *(Route(f"/v1/{kind}", _endpoint(kind), methods=["POST"]) for kind in EVENT_ENDPOINTS),
    ]
