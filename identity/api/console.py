# strawberry's field decorator is typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""What the console asks besides the apps' queries: who the key is, an identity as a graph,
recent loads and resolves, the largest identities and the latest large merges.

All of it is GraphQL like the rest (the console has no other way in), so a script can ask
the same questions with the same key.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from identity.api.auth import GRANTS
from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.matching import MatchScore
from identity.api.reports import Hop, LoadInfo, ResolveInfo
from identity.api.types import Identifier, IdentityEvent, Profile, converted
from identity.resolve import view as views
from identity.store import activity
from identity.store.reads import when

MAX_RECENT = 100  # loads, resolves, identities or merges one list gives at most
MAX_DRAWN = 1000  # identifiers one graph draws at most


@strawberry.type(description="Who the key belongs to and what its role may do.")
class Viewer:
    name: str
    role: str
    permissions: list[str] = strawberry.field(description="Of read, steward, marketer and admin.")


@strawberry.type(description="An identifier drawn in an identity's graph.")
class GraphNode:
    key: str
    member: bool = strawberry.field(description="One of the identity's own identifiers.")
    shared: str | None = strawberry.field(description="direct, two_hop or bridge: shared.")
    blocked: bool
    quarantined: bool

    @strawberry.field(description="The identity holding it.")
    async def identity_id(self, info: Info[Context, None]) -> strawberry.ID | None:
        row = await info.context.loaders.identity_by_key.load(self.key)
        return strawberry.ID(row.id) if row else None

    @strawberry.field(description="The identifier: type, value, seen, sources.")
    async def identifier(self, info: Info[Context, None]) -> Identifier | None:
        row = await info.context.loaders.identifier.load(self.key)
        return Identifier.from_row(row) if row else None


@strawberry.type(description="A load a link's evidence came from.")
class Origin:
    batch: str
    source: str | None
    file: str | None
    started_at: datetime | None


@strawberry.type(description="A link between two drawn identifiers, with its verdict now.")
class GraphLink(Hop):
    origins: list[Origin]


@strawberry.type(
    description="An identity's identifiers (its own first, then those one link away) and "
    "the links between them, each with the verdict the rules give it now."
)
class IdentityGraph:
    identity_id: strawberry.ID
    members: int = strawberry.field(description="The identity's identifiers, drawn or not.")
    truncated: bool = strawberry.field(description="More identifiers than drawn.")
    nodes: list[GraphNode]
    links: list[GraphLink]


@strawberry.type(description="A marketers' segment an identity is a member of.")
class Membership:
    segment_id: strawberry.ID
    name: str
    since: datetime | None


def _recent(first: int) -> int:
    if not 0 < first <= MAX_RECENT:
        raise ApiError("BAD_USER_INPUT", f"first must be between 1 and {MAX_RECENT}, got {first}")
    return first


async def _identity(context: Context, id: strawberry.ID) -> str:
    """The active identity ``id`` names (a merged id: its survivor); NOT_FOUND otherwise."""
    row = await context.loaders.identity_by_id.load(str(id))
    if row is None:
        raise ApiError("NOT_FOUND", f"no identity {str(id)[:80]!r}")
    return row.id


@strawberry.type
class ConsoleQuery:
    @strawberry.field(description="The caller: key name, role and permissions. Any role.")
    def viewer(self, info: Info[Context, None]) -> Viewer:
        principal = info.context.require("read")
        return Viewer(
            name=principal.name,
            role=principal.role,
            permissions=sorted(GRANTS[principal.role]),
        )

    @strawberry.field(
        description="An identity as a graph: up to `limit` identifiers and the links between "
        "them with their verdicts, evidence and the loads it came from. A merged id gives "
        "its survivor. Role: reader."
    )
    async def identity_graph(
        self, info: Info[Context, None], id: strawberry.ID, limit: int = views.DEFAULT_VIEW_NODES
    ) -> IdentityGraph:
        context = info.context
        context.require("read")
        if not 0 < limit <= MAX_DRAWN:
            raise ApiError("BAD_USER_INPUT", f"limit must be between 1 and {MAX_DRAWN}")
        identity = await _identity(context, id)
        found = await run_in_threadpool(
            lambda: views.identity_view(context.services, identity, limit=limit)
        )
        return IdentityGraph(
            identity_id=strawberry.ID(found.identity),
            members=found.members,
            truncated=found.truncated,
            nodes=[converted(GraphNode, n) for n in found.nodes],
            links=[
                converted(
                    GraphLink,
                    link.hop,
                    origins=[converted(Origin, o) for o in link.origins],
                    match=MatchScore.of(link.hop.match),
                )
                for link in found.links
            ],
        )

    @strawberry.field(
        description="The segments an identity is a member of (a merged id gives its "
        "survivor's), as of their last refresh. Role: reader."
    )
    async def memberships(self, info: Info[Context, None], id: strawberry.ID) -> list[Membership]:
        context = info.context
        context.require("read")
        found = await activity.segments_of(context.reads, await _identity(context, id))
        return [Membership(segment_id=strawberry.ID(s), name=n, since=when(t)) for s, n, t in found]

    @strawberry.field(description="The latest loads, newest first. Role: reader.")
    async def recent_loads(self, info: Info[Context, None], first: int = 10) -> list[LoadInfo]:
        context = info.context
        context.require("read")
        return [LoadInfo.of(r) for r in await activity.recent_loads(context.reads, _recent(first))]

    @strawberry.field(description="The latest resolves, newest first. Role: reader.")
    async def recent_resolves(
        self, info: Info[Context, None], first: int = 10
    ) -> list[ResolveInfo]:
        context = info.context
        context.require("read")
        runs = await activity.recent_resolves(context.reads, _recent(first))
        return [ResolveInfo.of(r) for r in runs]

    @strawberry.field(description="The largest identities, largest first. Role: steward.")
    async def largest_identities(self, info: Info[Context, None], first: int = 10) -> list[Profile]:
        context = info.context
        context.require("steward")
        ids = await activity.largest_identities(context.reads, _recent(first))
        rows = await context.loaders.identity_by_id.load_many(ids)
        return [Profile.from_row(r) for r in rows if r is not None]

    @strawberry.field(
        description="The latest merges into identities now holding `minSize` identifiers or "
        "more, newest first. Role: steward."
    )
    async def large_merges(
        self, info: Info[Context, None], first: int = 10, min_size: int = 5
    ) -> list[IdentityEvent]:
        context = info.context
        context.require("steward")
        if min_size < 1:
            raise ApiError("BAD_USER_INPUT", "minSize must be at least 1")
        rows = await activity.large_merges(context.reads, min_size, _recent(first))
        return [IdentityEvent.from_row(r) for r in rows]
