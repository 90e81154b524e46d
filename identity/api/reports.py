"""The GraphQL types of stewards' and marketers' views: explanations, the review queue,
stats, and what a steward action did."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from identity.api.context import Context
from identity.api.types import Identifier, PageInfo, Profile, converted
from identity.store.read_types import LoadRow, RunRow
from identity.store.reads import when

if TYPE_CHECKING:
    from identity.api.matching import MatchScore


@strawberry.type(description="One link on an explanation path, and what the rules made of it.")
class Hop:
    a: str
    b: str
    verdict: str = strawberry.field(
        description="merged, third_party, cut, expired, blocked, shared, quarantined, limit or "
        "shared_device."
    )
    why: str
    sources: list[str]
    party: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    count: int
    evidence: list[str]
    forced: bool = strawberry.field(description="A steward forced it (the why says who, why).")
    match: Annotated[MatchScore, strawberry.lazy("identity.api.matching")] | None = (
        strawberry.field(
            default=None, description="Record matching's score of the pair, when it scored it."
        )
    )


@strawberry.type(description="Why two identifiers are, or are not, the same customer.")
class Explanation:
    a: str
    b: str
    same: bool
    summary: str
    identity_a: strawberry.ID | None
    identity_b: strawberry.ID | None
    path: list[Hop]


@strawberry.type
class SharedIdentifier:
    identifier: Identifier
    links: int


@strawberry.type
class SharedIdentifierConnection:
    edges: list[SharedIdentifierEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class SharedIdentifierEdge:
    cursor: str
    node: SharedIdentifier


@strawberry.type(description="A component too big to merge blindly, held for review.")
class Quarantine:
    id: strawberry.ID
    size: int
    sample: list[str]
    detected_at: datetime | None


@strawberry.type(
    description="Two sides of an identity that meet only on one device: split (their use of "
    "it alternates: two people) or kept together (one after the other there), until a "
    "steward settles it (force-merge the sides or cut the other side's device links; split "
    "off what was kept together)."
)
class SharedDevice:
    id: strawberry.ID
    type: str = strawberry.field(description="The type of the two sides' anchors (email).")
    split: bool
    reason: str
    device: list[str] = strawberry.field(description="The device's identifiers.")
    kept: list[str] = strawberry.field(description="Anchors of the side that keeps the device.")
    other: list[str] = strawberry.field(description="Anchors of the other side.")
    detected_at: datetime | None


@strawberry.type(description="What awaits a steward.")
class ReviewQueue:
    shared: SharedIdentifierConnection
    quarantines: list[Quarantine]
    shared_devices: list[SharedDevice]


@strawberry.type
class TypeCount:
    type: str
    count: int


@strawberry.type
class SizeCount:
    size: int
    identities: int


@strawberry.type
class ReasonCount:
    reason: str
    count: int


@strawberry.type(description="A load: its counts and its reasons for rejecting.")
class LoadInfo:
    batch: str
    source: str
    file: str | None
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    read: int
    accepted: int
    rejected: int
    reasons: list[ReasonCount] = strawberry.field(description="Whole records rejected.")
    value_reasons: list[ReasonCount] = strawberry.field(
        description="Values dropped from records that loaded."
    )

    @staticmethod
    def of(row: LoadRow) -> LoadInfo:
        return converted(
            LoadInfo,
            row,
            status=row.status or "unknown",
            started_at=when(row.started_at),
            finished_at=when(row.finished_at),
            reasons=_reasons(row.reasons),
            value_reasons=_reasons(row.value_reasons),
        )


def _reasons(pairs: list[list[Any]]) -> list[ReasonCount]:
    counted = [ReasonCount(reason=str(code), count=int(n)) for code, n in pairs]
    return sorted(counted, key=lambda r: (-r.count, r.reason))


@strawberry.type
class StepSeconds:
    step: str
    seconds: float


@strawberry.type(description="A resolve: what changed and how long each step took.")
class ResolveInfo:
    run: str
    mode: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    identifiers: int | None
    created: int | None
    merged: int | None
    split: int | None
    seconds: list[StepSeconds]
    error: str | None

    @staticmethod
    def of(row: RunRow) -> ResolveInfo:
        return converted(
            ResolveInfo,
            row,
            started_at=when(row.started_at),
            finished_at=when(row.finished_at),
            seconds=[StepSeconds(step=s, seconds=float(n)) for s, n in row.seconds],
        )


@strawberry.type
class Stats:
    identifiers: list[TypeCount]
    identifiers_total: int
    identities: int
    links: int
    sizes: list[SizeCount] = strawberry.field(description="How many identities of each size.")
    largest_identity: int
    last_load: LoadInfo | None
    last_resolve: ResolveInfo | None


@strawberry.type(description="What a steward action did.")
class StewardResult:
    action: str
    keys: list[str]
    reason: str
    actor: str
    event_id: strawberry.ID
    before: list[strawberry.ID] = strawberry.field(description="Identities before the action.")
    identity_ids: list[strawberry.ID]

    @strawberry.field(description="The affected identities, as they are now.")
    async def identities(self, info: Info[Context, None]) -> list[Profile]:
        rows = await info.context.loaders.identity_by_id.load_many(
            [str(i) for i in self.identity_ids]
        )
        return [Profile.from_row(r) for r in rows if r is not None]

    @staticmethod
    def of(done: Any) -> StewardResult:
        """The result of a steward action (:class:`identity.steward.actions.StewardResult`)."""
        return converted(
            StewardResult,
            done,
            event_id=strawberry.ID(done.event_id),
            before=[strawberry.ID(i) for i in done.before],
            identity_ids=[strawberry.ID(i) for i in done.identities],
        )
