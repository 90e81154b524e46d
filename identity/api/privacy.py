# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""GraphQL for privacy: ``exportProfile`` (right of access) and ``forgetProfile`` (right to be
forgotten), role admin; and the server's retention purge schedule. The services are in
:mod:`identity.privacy.forget` and :mod:`identity.privacy.retention`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.scalars import JSON
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.types import IdentifierInput, converted
from identity.context import ServiceContext
from identity.errors import IdgraphError
from identity.privacy import access, forget
from identity.privacy.retention import purge

log = logging.getLogger("idgraph.purge")


def _named(id: strawberry.ID | None, identifier: IdentifierInput | None) -> dict[str, Any]:
    if (id is None) == (identifier is None):
        raise ApiError("BAD_USER_INPUT", "give exactly one of id and identifier")
    if id is not None:
        return {"id": str(id)}
    assert identifier is not None
    return {"identifier": f"{identifier.type}:{identifier.value}"}


@strawberry.type(description="What forgetting a person erased.")
class ForgetResult:
    identity_id: strawberry.ID = strawberry.field(
        description="The identity erased (the survivor of a merged id given); it stays, with "
        "status forgotten and no profile."
    )
    identifiers: int = strawberry.field(description="Identifiers erased, one tombstone each.")
    links: int = strawberry.field(description="Links deleted.")
    merged_ids: int = strawberry.field(description="Identities merged into it, deleted.")
    neighbours: int = strawberry.field(description="Identifiers that lost a link, recomputed.")
    scrubbed: int = strawberry.field(
        description="Event reasons, shared verdicts, steward events and quarantines that "
        "named an erased identifier, scrubbed."
    )
    event_id: strawberry.ID = strawberry.field(description="The forgotten IdentityEvent.")
    resolved: bool = strawberry.field(
        description="Whether the neighbours were recomputed at once (false: a resolve was "
        "busy; the next one does it)."
    )


@strawberry.type
class PrivacyQuery:
    @strawberry.field(
        description="Everything idgraph holds about a person, as one JSON document (right of "
        "access): identity, profile, identifiers with traits per source, event aggregates, "
        "links, DMP segments, segments, history and the batches that wrote about it. "
        "Role: admin."
    )
    async def export_profile(
        self,
        info: Info[Context, None],
        id: strawberry.ID | None = None,
        identifier: IdentifierInput | None = None,
    ) -> JSON:
        services = info.context.acting("admin")
        named = _named(id, identifier)
        document = await run_in_threadpool(lambda: access.export_profile(services, **named))
        return JSON(document)


@strawberry.type
class PrivacyMutation:
    @strawberry.mutation(
        description="Erase a person (right to be forgotten): the identity (a merged id: its "
        "survivor), its identifiers, links, traits and segment memberships. Tombstones (SHA-256 "
        "of each identifier) make later loads refuse the same identifiers. Role: admin."
    )
    async def forget_profile(
        self,
        info: Info[Context, None],
        reason: str,
        id: strawberry.ID | None = None,
        identifier: IdentifierInput | None = None,
    ) -> ForgetResult:
        services = info.context.acting("admin")
        named = _named(id, identifier)
        done = await run_in_threadpool(
            lambda: forget.forget_profile(services, reason=reason, **named)
        )
        return converted(
            ForgetResult,
            done,
            identity_id=strawberry.ID(done.identity),
            event_id=strawberry.ID(done.event_id),
            resolved=done.report is not None,
        )


async def purge_schedule(services: ServiceContext) -> None:
    """Run the retention purge every ``purge_interval_hours`` (a setting), the first time one
    interval after start-up, logging its counts; a failed run is logged and retried at the
    next interval. Runs until cancelled (the app's lifespan does at shutdown)."""
    interval = services.settings.purge_interval_hours * 3600
    while True:
        await asyncio.sleep(interval)
        try:
            report = await run_in_threadpool(purge, services)
        except IdgraphError as e:
            log.warning("retention purge failed: %s", e)
            continue
        fields: dict[str, Any] = {**report.counts, "emptied_identities": report.emptied_identities}
        fields["seconds"] = round(report.seconds, 3)
        log.info("retention purge done", extra={"fields": fields})
