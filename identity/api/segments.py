# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""Segments in GraphQL: the definition input type, segments with their members, changes and
refreshes, and the marketer's mutations. Role: marketer for every field.

``SegmentConditionInput`` mirrors the JSON language field for field, with the same names
(``count_gte``, ``within_days``, ``has_identifier``, ...), so a stored ``definition`` can be
sent back as a variable as it is. It is turned into the JSON form and checked by the same
validator as the CLI: problems come back as BAD_USER_INPUT naming each bad node's path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.scalars import JSON
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.types import (
    DEFAULT_PAGE,
    PageInfo,
    Profile,
    converted,
    decode_cursor,
    encode_cursor,
)
from identity.api.types import page_info as page_info_of
from identity.segments import service as service

_U: Any = strawberry.UNSET


@strawberry.input(
    description="A segment condition: exactly one of all, any, not, trait (with one operator), "
    "has_identifier, event, dmp_segment, consent, last_seen_within_days. See the Segments "
    "page of the documentation (docs/segments.md)."
)
class SegmentConditionInput:
    all: list[SegmentConditionInput] | None = _U
    any: list[SegmentConditionInput] | None = _U
    not_: SegmentConditionInput | None = strawberry.field(name="not", default=_U)
    trait: str | None = _U
    eq: JSON | None = _U
    neq: JSON | None = _U
    in_: JSON | None = strawberry.field(name="in", default=_U)
    gt: JSON | None = _U
    gte: JSON | None = _U
    lt: JSON | None = _U
    lte: JSON | None = _U
    contains: JSON | None = _U
    exists: JSON | None = _U
    has_identifier: str | None = strawberry.field(name="has_identifier", default=_U)
    event: str | None = _U
    count_gte: JSON | None = strawberry.field(name="count_gte", default=_U)
    within_days: JSON | None = strawberry.field(name="within_days", default=_U)
    dmp_segment: str | None = strawberry.field(name="dmp_segment", default=_U)
    consent: str | None = _U
    last_seen_within_days: JSON | None = strawberry.field(name="last_seen_within_days", default=_U)


_KEYS = {"not_": "not", "in_": "in"}


def definition_of(given: SegmentConditionInput) -> dict[str, Any]:
    """The JSON form of an input: the fields given (an explicit null stays null, so that
    the validator names it)."""
    found: dict[str, Any] = {}
    for name, value in vars(given).items():
        if value is strawberry.UNSET:
            continue
        if isinstance(value, SegmentConditionInput):
            value = definition_of(value)
        elif isinstance(value, list) and name in ("all", "any"):
            value = [definition_of(v) for v in value]
        found[_KEYS.get(name, name)] = value
    return found


@strawberry.type(description="One refresh: who entered, who left, the size after.")
class SegmentRefresh:
    id: strawberry.ID
    segment_id: strawberry.ID
    at: datetime
    entered: int
    left: int
    size: int
    ms: int

    @classmethod
    def of(cls, r: service.RefreshResult) -> SegmentRefresh:
        return converted(cls, r, id=strawberry.ID(r.refresh), segment_id=strawberry.ID(r.segment))


@strawberry.type
class SegmentMemberEdge:
    cursor: str
    since: datetime = strawberry.field(description="Member since this refresh.")
    node: Profile


@strawberry.type
class SegmentMemberConnection:
    edges: list[SegmentMemberEdge]
    nodes: list[Profile]
    page_info: PageInfo
    total_count: int = strawberry.field(description="The size at the last refresh.")


@strawberry.type(description="An identity that entered or left the segment.")
class SegmentChange:
    identity_id: strawberry.ID
    change: str = strawberry.field(description="entered or left")
    at: datetime


@strawberry.type
class SegmentChangeEdge:
    cursor: str
    node: SegmentChange


@strawberry.type
class SegmentChangeConnection:
    edges: list[SegmentChangeEdge]
    page_info: PageInfo


def _changes_cursor(cursor: str | None) -> tuple[int, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
        raise ApiError("BAD_USER_INPUT", f"invalid cursor {cursor!r}")
    return value[0], str(value[1])


@strawberry.type(description="A named definition of customers and its members.")
class Segment:
    id: strawberry.ID
    name: str
    description: str
    definition: JSON = strawberry.field(description="The definition in the JSON language.")
    size: int = strawberry.field(description="Members at the last refresh.")
    refreshed_at: datetime | None
    stale: bool = strawberry.field(
        description="The definition changed since the last refresh (members are the old ones)."
    )
    created_at: datetime
    updated_at: datetime
    created_by: str

    @classmethod
    def of(cls, s: service.Segment) -> Segment:
        return converted(
            cls, s, id=strawberry.ID(s.id), definition=cast(JSON, s.definition), stale=s.stale
        )

    @strawberry.field(description="Members as of the last refresh, by identity id.")
    async def members(
        self, info: Info[Context, None], first: int = DEFAULT_PAGE, after: str | None = None
    ) -> SegmentMemberConnection:
        context = info.context
        limit = context.page_size(first)
        after_id = decode_cursor(after)
        if after_id is not None and not isinstance(after_id, str):
            raise ApiError("BAD_USER_INPUT", f"invalid cursor {after!r}")
        rows = await run_in_threadpool(
            service.members, context.services, str(self.id), after_id, limit + 1
        )
        edges = [
            SegmentMemberEdge(cursor=encode_cursor(row.id), since=since, node=Profile.from_row(row))
            for row, since in rows[:limit]
        ]
        return SegmentMemberConnection(
            edges=edges,
            nodes=[e.node for e in edges],
            page_info=page_info_of(len(rows), limit, edges),
            total_count=self.size,
        )

    @strawberry.field(
        description="Who entered and who left after `since`, oldest first: the net sync list "
        "(each identity once; applying them in order to a copy taken at `since` gives the "
        "members now)."
    )
    async def changes(
        self,
        info: Info[Context, None],
        since: datetime,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> SegmentChangeConnection:
        context = info.context
        limit = context.page_size(first)
        found = await run_in_threadpool(
            service.changes,
            context.services,
            str(self.id),
            since,
            _changes_cursor(after),
            limit + 1,
        )
        edges = [
            SegmentChangeEdge(
                cursor=encode_cursor([int(c.at.timestamp() * 1000), c.identity]),
                node=SegmentChange(identity_id=strawberry.ID(c.identity), change=c.change, at=c.at),
            )
            for c in found[:limit]
        ]
        return SegmentChangeConnection(
            edges=edges, page_info=page_info_of(len(found), limit, edges)
        )

    @strawberry.field(description="The last refreshes, newest first.")
    async def refreshes(self, info: Info[Context, None], last: int = 10) -> list[SegmentRefresh]:
        context = info.context
        done = await run_in_threadpool(
            service.refreshes, context.services, str(self.id), context.page_size(last)
        )
        return [SegmentRefresh.of(r) for r in done]


@strawberry.type(description="A sample member of a previewed definition.")
class PreviewMember:
    id: strawberry.ID
    traits: JSON = strawberry.field(
        description="Up to five traits, those the definition uses first."
    )


@strawberry.type
class SegmentPreview:
    size: int
    sample: list[PreviewMember]


@strawberry.type(description="A refresh done now, with the segment after it.")
class SegmentRefreshResult:
    segment: Segment
    refresh: SegmentRefresh


@strawberry.type
class SegmentQuery:
    @strawberry.field(description="All segments, by name. Role: marketer.")
    async def segments(self, info: Info[Context, None]) -> list[Segment]:
        services = info.context.acting("marketer")
        found = await run_in_threadpool(service.list_segments, services)
        return [Segment.of(s) for s in found]

    @strawberry.field(description="A segment by id or name. Role: marketer.")
    async def segment(self, info: Info[Context, None], id: strawberry.ID) -> Segment:
        services = info.context.acting("marketer")
        return Segment.of(await run_in_threadpool(service.get_segment, services, str(id)))


@strawberry.type
class SegmentMutation:
    @strawberry.mutation(
        description="Create a segment; it has no members until refreshed. Role: marketer."
    )
    async def create_segment(
        self,
        info: Info[Context, None],
        name: str,
        definition: SegmentConditionInput,
        description: str = "",
    ) -> Segment:
        services = info.context.acting("marketer")
        made = await run_in_threadpool(
            lambda: service.create_segment(
                services,
                name=name,
                definition=definition_of(definition),
                description=description,
            )
        )
        return Segment.of(made)

    @strawberry.mutation(
        description="Change a segment's name, description or definition; the members stay "
        "until the next refresh. Role: marketer."
    )
    async def update_segment(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        name: str | None = None,
        description: str | None = None,
        definition: SegmentConditionInput | None = None,
    ) -> Segment:
        services = info.context.acting("marketer")
        changed = await run_in_threadpool(
            lambda: service.update_segment(
                services,
                str(id),
                name=name,
                description=description,
                definition=definition_of(definition) if definition is not None else None,
            )
        )
        return Segment.of(changed)

    @strawberry.mutation(
        description="Delete a segment and its memberships; its id. Role: marketer."
    )
    async def delete_segment(self, info: Info[Context, None], id: strawberry.ID) -> strawberry.ID:
        services = info.context.acting("marketer")
        gone = await run_in_threadpool(service.delete_segment, services, str(id))
        return strawberry.ID(gone.id)

    @strawberry.mutation(
        description="Recompute the members now: who entered, who left. CONFLICT while "
        "another refresh of it runs. Role: marketer."
    )
    async def refresh_segment(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> SegmentRefreshResult:
        services = info.context.acting("marketer")

        def refresh() -> tuple[service.RefreshResult, service.Segment]:
            done = service.refresh_segment(services, str(id))
            return done, service.get_segment(services, done.segment)

        done, segment = await run_in_threadpool(refresh)
        return SegmentRefreshResult(segment=Segment.of(segment), refresh=SegmentRefresh.of(done))

    @strawberry.mutation(
        description="The size of a definition now and a sample of members, without storing "
        "anything. Role: marketer."
    )
    async def preview_segment(
        self, info: Info[Context, None], definition: SegmentConditionInput, sample: int = 10
    ) -> SegmentPreview:
        context = info.context
        services = context.acting("marketer")
        size = context.page_size(sample)
        found = await run_in_threadpool(service.preview, services, definition_of(definition), size)
        return SegmentPreview(
            size=found.size,
            sample=[
                PreviewMember(id=strawberry.ID(i), traits=cast(JSON, t)) for i, t in found.sample
            ],
        )
