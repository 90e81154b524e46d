# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""Audiences in the API: ``exportAudience`` (a file under the exports directory, in a worker
thread), the ``audiences`` and ``audienceExports`` queries, and ``GET /exports/<file>`` which
streams an export file to a marketer's key. Role: marketer."""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from strawberry.types import Info

from identity.api.auth import ApiKeys, bearer_token
from identity.api.context import Context
from identity.api.reports import TypeCount
from identity.audiences import export as audiences
from identity.context import ServiceContext
from identity.store import audiences as store
from identity.store.reads import native

EXPORTS_PREFIX = "/exports/"
_FILE = re.compile(r"^exp-[A-Za-z0-9-]{1,80}\.(csv|ndjson)$")
_MEDIA = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


@strawberry.enum(description="Export file formats.")
class AudienceFormat(Enum):
    CSV = "csv"
    NDJSON = "ndjson"


@strawberry.enum(description="Whose hashing rules a hashed export follows.")
class AudienceDestination(Enum):
    GOOGLE = "google"
    META = "meta"


@strawberry.type(
    description="One export of an audience. Rows: adds + removes for a delta, every eligible "
    "identifier for a full export. identifiers = eligible + skipped (consent, blocked, hashed)."
)
class AudienceExport:
    id: strawberry.ID
    audience_id: strawberry.ID
    segment_id: strawberry.ID
    at: datetime
    status: str = strawberry.field(description="running, completed or failed.")
    format: AudienceFormat
    hashed: bool
    destination: AudienceDestination | None
    delta: bool
    identifier_types: list[str]
    members: int | None
    identifiers: int | None
    eligible: int | None
    rows: int | None
    adds: int | None
    removes: int | None
    skipped_consent: list[TypeCount] = strawberry.field(
        description="Identifiers left out because the identity does not grant the consent "
        "their type needs, per type."
    )
    skipped_blocked: int | None
    skipped_hashed: int | None = strawberry.field(
        description="Identifiers stored hashed that cannot be given in the asked form."
    )
    download_path: str | None = strawberry.field(
        description="GET it with the same key (Authorization: Bearer)."
    )

    @classmethod
    def from_row(cls, e: dict[str, Any]) -> AudienceExport:
        return cls(
            id=strawberry.ID(e["id"]),
            audience_id=strawberry.ID(e["audience"]),
            segment_id=strawberry.ID(e["segment"]),
            at=native(e["at"]),
            status=e["status"],
            format=AudienceFormat(e["format"]),
            hashed=bool(e["hashed"]),
            destination=AudienceDestination(e["destination"]) if e["destination"] else None,
            delta=bool(e["delta"]),
            identifier_types=list(e["types"] or []),
            members=e.get("members"),
            identifiers=e["identifiers"],
            eligible=e["eligible"],
            rows=e["rows"],
            adds=e["adds"],
            removes=e["removes"],
            skipped_consent=[
                TypeCount(type=t, count=n) for t, n in e["skipped_consent_by_type"].items()
            ],
            skipped_blocked=e["skipped_blocked"],
            skipped_hashed=e["skipped_hashed"],
            download_path=EXPORTS_PREFIX + e["file"]
            if e["file"] and e["status"] == "completed"
            else None,
        )


@strawberry.type(description="A way of exporting a segment: its types, hashing and destination.")
class Audience:
    id: strawberry.ID
    segment_id: strawberry.ID
    identifier_types: list[str]
    hashed: bool
    destination: AudienceDestination | None
    created_at: datetime
    exported: int = strawberry.field(description="Identifiers its last export left it holding.")

    @strawberry.field(description="Its exports, newest first.")
    async def exports(self, info: Info[Context, None], first: int = 10) -> list[AudienceExport]:
        context = info.context
        limit = context.page_size(first)
        rows = await run_in_threadpool(store.exports, context.graph, str(self.id), limit)
        return [AudienceExport.from_row(r) for r in rows]


@strawberry.type
class AudienceQuery:
    @strawberry.field(description="The audiences exported so far (of one segment). Role: marketer.")
    async def audiences(
        self, info: Info[Context, None], segment_id: strawberry.ID | None = None
    ) -> list[Audience]:
        context = info.context
        context.require("marketer")
        found = await run_in_threadpool(
            store.audiences, context.graph, str(segment_id) if segment_id else None
        )
        return [
            Audience(
                id=strawberry.ID(a["id"]),
                segment_id=strawberry.ID(a["segment"]),
                identifier_types=list(a["types"]),
                hashed=bool(a["hashed"]),
                destination=AudienceDestination(a["destination"]) if a["destination"] else None,
                created_at=native(a["created_at"]),
                exported=int(a["exported"]),
            )
            for a in found
        ]

    @strawberry.field(
        description="The latest exports (of one audience), newest first. Role: marketer."
    )
    async def audience_exports(
        self, info: Info[Context, None], audience_id: strawberry.ID | None = None, first: int = 20
    ) -> list[AudienceExport]:
        context = info.context
        context.require("marketer")
        limit = context.page_size(first)
        rows = await run_in_threadpool(
            store.exports, context.graph, str(audience_id) if audience_id else None, limit
        )
        return [AudienceExport.from_row(r) for r in rows]


@strawberry.type
class AudienceMutation:
    @strawberry.mutation(
        description="Export a refreshed segment's identifiers of the given types, for the "
        "members whose consent allows each type's purpose, into a file to download from "
        "downloadPath. hashed: SHA-256 of emails and phones normalized as the destination "
        "expects. delta: only adds and removes since the audience's last export (op column). "
        "Role: marketer."
    )
    async def export_audience(
        self,
        info: Info[Context, None],
        segment_id: strawberry.ID,
        identifier_types: list[str],
        format: AudienceFormat = AudienceFormat.CSV,
        hashed: bool = False,
        destination: AudienceDestination | None = None,
        delta: bool = False,
    ) -> AudienceExport:
        context = info.context
        services = context.acting("marketer")
        request = audiences.export_request(
            context.policy,
            str(segment_id),
            identifier_types,
            format=format.value,
            hashed=hashed,
            destination=destination.value if destination else None,
            delta=delta,
        )
        report = await run_in_threadpool(
            audiences.export_to_directory,
            services,
            request,
            context.settings.exports_path,
        )
        [row] = await run_in_threadpool(store.exports_by_id, context.graph, [report.id])
        return AudienceExport.from_row(row)


def _refuse(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers)


async def download(request: Request) -> Response:
    """``GET /exports/<file>``: an export file, streamed in chunks, to a marketer's key."""
    keys: ApiKeys = request.state.api_keys
    token = bearer_token(request.headers.get("authorization"))
    principal = keys.find(token) if token else None
    if principal is None:
        return _refuse(
            401, "UNAUTHENTICATED", "send Authorization: Bearer KEY with a marketer's API key"
        )
    if not principal.may("marketer"):
        return _refuse(
            403, "FORBIDDEN", f"key {principal.name!r} has role {principal.role}: needs marketer"
        )
    name = request.path_params["name"]
    services: ServiceContext = request.state.services
    path = services.settings.exports_path / name
    if not _FILE.match(name) or not path.is_file():
        return _refuse(404, "NOT_FOUND", f"no export file {name[:100]!r}: see audienceExports")
    # read and sent 64 KiB at a time (FileResponse.chunk_size): memory stays flat
    return FileResponse(path, media_type=_MEDIA[path.suffix.lstrip(".")], filename=name)


def export_routes() -> list[Route]:
    return [Route(EXPORTS_PREFIX + "{name}", download, methods=["GET"])]
