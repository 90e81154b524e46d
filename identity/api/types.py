"""The GraphQL types: identities (profiles), identifiers, links, events, explanations, stats.

Types are built from the store's rows (:mod:`identity.store.reads`); a field that needs more
data asks a DataLoader of the request context, so nothing is read that is not asked for.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

import strawberry
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.traits import (
    Consent,
    DmpSegment,
    EventAggregate,
    IdentifierCount,
    ProfileView,
    Trait,
    observed_traits,
)
from identity.store.read_types import EventRow, IdentifierRow, IdentityRow, LinkRow, Page
from identity.store.reads import instant, when

DEFAULT_PAGE = 50
T = TypeVar("T")


def converted(cls: type[T], source: Any, **fields: Any) -> T:
    """The GraphQL type ``cls`` filled from ``source`` (a store row or a service's result)
    field by field where the names match; ``fields`` give the others (ids, epoch-ms times).
    One conversion for every type, rather than a copy of each field at each call site."""
    if isinstance(source, tuple):
        values: dict[str, Any] = source._asdict()  # type: ignore[attr-defined]
    else:
        values = {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    settable = _settable(cls)  # type: ignore[arg-type]
    copied = {k: v for k, v in values.items() if k in settable and k not in fields}
    return cls(**copied, **fields)


@functools.cache
def _settable(cls: type[Any]) -> frozenset[str]:
    """The fields of a GraphQL type that take a value (not those computed by a resolver)."""
    return frozenset(
        f.name for f in dataclasses.fields(cls) if getattr(f, "base_resolver", None) is None
    )


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, default=str).encode()).decode()


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise ApiError("BAD_USER_INPUT", f"invalid cursor {cursor[:40]!r}") from e


def key_cursor(cursor: str | None) -> str | None:
    value = decode_cursor(cursor)
    if value is not None and not isinstance(value, str):
        raise ApiError("BAD_USER_INPUT", f"invalid cursor {cursor!r}")
    return value


def event_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        at, event = value
        return datetime.fromisoformat(at), str(event)
    except (TypeError, ValueError) as e:
        raise ApiError("BAD_USER_INPUT", f"invalid cursor {cursor!r}") from e


@strawberry.input(description="An identifier as an app knows it; normalized like loaders do.")
class IdentifierInput:
    type: str = strawberry.field(description="cookie, email, phone, device, maid, crm_id, ...")
    value: str


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


def page_info(fetched: int, limit: int, edges: Sequence[Any]) -> PageInfo:
    """Pages are read one item longer than asked: an extra item means there is a next page."""
    return PageInfo(has_next_page=fetched > limit, end_cursor=edges[-1].cursor if edges else None)


@strawberry.enum(description="What happened to identities.")
class IdentityEventKind(Enum):
    CREATED = "created"
    MERGED = "merged"
    SPLIT = "split"
    STEWARD = "steward"
    FORGOTTEN = "forgotten"
    PURGED = "purged"


@strawberry.type(description="An identity the event touched, and how (created, merged, ...).")
class AffectedIdentity:
    id: strawberry.ID
    role: str

    @strawberry.field(
        description="That identity as it is now (its survivor when it was merged since)."
    )
    async def current(self, info: Info[Context, None]) -> Profile | None:
        row = await info.context.loaders.identity_by_id.load(str(self.id))
        return Profile.from_row(row, str(self.id)) if row else None


@strawberry.type(description="A change to identities: created, merged, split, steward action.")
class IdentityEvent:
    id: strawberry.ID
    kind: str
    reason: str | None
    actor: str | None
    at: datetime
    action: str | None = strawberry.field(description="The steward action, for kind steward.")
    keys: list[str] = strawberry.field(description="Identifiers a steward action named.")
    identities: list[AffectedIdentity]

    @classmethod
    def from_row(cls, row: EventRow) -> IdentityEvent:
        return converted(
            cls,
            row,
            id=strawberry.ID(row.id),
            at=instant(row.at),
            identities=[AffectedIdentity(id=strawberry.ID(i), role=r) for i, r in row.identities],
        )

    @property
    def cursor(self) -> str:
        return encode_cursor([self.at.isoformat(), str(self.id)])


@strawberry.type
class IdentityEventEdge:
    cursor: str
    node: IdentityEvent


@strawberry.type
class IdentityEventConnection:
    edges: list[IdentityEventEdge]
    page_info: PageInfo

    @classmethod
    def of(cls, rows: list[EventRow], first: int) -> IdentityEventConnection:
        events = [IdentityEvent.from_row(r) for r in rows[:first]]
        edges = [IdentityEventEdge(cursor=e.cursor, node=e) for e in events]
        return cls(edges=edges, page_info=page_info(len(rows), first, edges))


@strawberry.type(description="Why an identifier merges nothing: too many people use it.")
class SharedInfo:
    kind: str = strawberry.field(description="direct, two_hop or bridge")
    reason: str | None


@strawberry.type(description="A link between two identifiers: seen together, with evidence.")
class Link:
    other_key: str
    first_seen: datetime | None
    last_seen: datetime | None
    count: int
    sources: list[str]
    party: str | None
    evidence: list[str] = strawberry.field(description="(batch, record) references, capped.")
    cut: bool
    cut_reason: str | None
    cut_by: str | None
    forced: bool
    forced_reason: str | None
    forced_by: str | None

    @strawberry.field(description="The identifier at the other end.")
    async def other(self, info: Info[Context, None]) -> Identifier:
        row = await info.context.loaders.identifier.load(self.other_key)
        if row is None:
            raise ApiError("NOT_FOUND", f"identifier {self.other_key!r} no longer exists")
        return Identifier.from_row(row)

    @classmethod
    def from_row(cls, row: LinkRow) -> Link:
        first, last = when(row.first_seen), when(row.last_seen)
        return converted(
            cls, row, other_key=row.other, first_seen=first, last_seen=last, count=row.times_seen
        )


@strawberry.type
class LinkEdge:
    cursor: str
    node: Link


@strawberry.type
class LinkConnection:
    edges: list[LinkEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="One identifier: a cookie, an email, a device id, ...")
class Identifier:
    key: str = strawberry.field(description="type:normalized value, unique.")
    type: str
    value: str = strawberry.field(description="Normalized (a SHA-256 when hashed is true).")
    hashed: bool
    first_seen: datetime | None
    last_seen: datetime | None
    seen: int = strawberry.field(description="How many records carried it.")
    sources: list[str]
    shared: SharedInfo | None
    blocked: bool
    blocked_reason: str | None

    @classmethod
    def from_row(cls, row: IdentifierRow) -> Identifier:
        return converted(
            cls,
            row,
            first_seen=when(row.first_seen),
            last_seen=when(row.last_seen),
            shared=SharedInfo(kind=row.shared, reason=row.shared_reason) if row.shared else None,
        )

    @strawberry.field(description="The identity (profile) this identifier belongs to.")
    async def identity(self, info: Info[Context, None]) -> Profile | None:
        row = await info.context.loaders.identity_by_key.load(self.key)
        return Profile.from_row(row) if row else None

    @strawberry.field(description="Its links, by the other end's key.")
    async def links(
        self, info: Info[Context, None], first: int = DEFAULT_PAGE, after: str | None = None
    ) -> LinkConnection:
        limit = info.context.page_size(first)
        page = await info.context.loaders.links.load(((key_cursor(after), limit + 1), self.key))
        rows, total = page or Page([], 0)
        links = [Link.from_row(r) for r in rows[:limit]]
        edges = [LinkEdge(cursor=encode_cursor(link.other_key), node=link) for link in links]
        return LinkConnection(
            edges=edges,
            page_info=page_info(len(rows), limit, edges),
            total_count=total,
        )


@strawberry.type
class IdentifierEdge:
    cursor: str
    node: Identifier


@strawberry.type
class IdentifierConnection:
    edges: list[IdentifierEdge]
    page_info: PageInfo
    total_count: int


def members_args(types: list[str] | None, after: str | None, limit: int) -> tuple[Any, ...]:
    """The members loader's batch arguments for a page of ``limit`` (read one more)."""
    return (tuple(types) if types else None, key_cursor(after), limit + 1)


@strawberry.type(description="A customer: an identity and everything known through it.")
class Profile:
    id: strawberry.ID
    requested_id: strawberry.ID | None = strawberry.field(
        description="The id asked for, when it was not this one: it was merged into this one."
    )
    status: str
    created_at: datetime
    updated_at: datetime
    size: int = strawberry.field(description="Number of identifiers.")

    @strawberry.field(description="True when the id asked for was merged into this identity.")
    def redirected(self) -> bool:
        return self.requested_id is not None

    @classmethod
    def from_row(cls, row: IdentityRow, asked: str | None = None) -> Profile:
        """The profile of ``row``; ``asked``, the id asked for when it may be a merged one."""
        return converted(
            cls,
            row,
            id=strawberry.ID(row.id),
            requested_id=strawberry.ID(asked) if asked is not None and asked != row.id else None,
            created_at=instant(row.created_at),
            updated_at=instant(row.updated_at),
            size=int(row.size or 0),
        )

    @strawberry.field(description="Its identifiers by key, optionally of some types only.")
    async def identifiers(
        self,
        info: Info[Context, None],
        types: list[str] | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> IdentifierConnection:
        limit = info.context.page_size(first)
        page = await info.context.loaders.members.load(
            (members_args(types, after, limit), str(self.id))
        )
        rows, total = page or Page([], 0)
        nodes = [Identifier.from_row(r) for r in rows[:limit]]
        edges = [IdentifierEdge(cursor=encode_cursor(n.key), node=n) for n in nodes]
        return IdentifierConnection(
            edges=edges,
            page_info=page_info(len(rows), limit, edges),
            total_count=total,
        )

    async def _view(self, info: Info[Context, None]) -> ProfileView:
        """The materialized profile, read and parsed once per request (the loader caches)."""
        return await info.context.loaders.profile.load(str(self.id)) or ProfileView()

    @strawberry.field(
        description="Its traits: per name, the value the policy's precedence rules chose among "
        "its identifiers' (source order, then the most recent; consent_* the most recent), "
        "with where and when it was seen."
    )
    async def traits(self, info: Info[Context, None]) -> list[Trait]:
        return (await self._view(info)).traits

    @strawberry.field(
        description="Every trait as loaded: one per identifier, source and name, newest first "
        "(what `traits` chose from)."
    )
    async def trait_observations(self, info: Info[Context, None]) -> list[Trait]:
        members = await info.context.loaders.attributes.load(str(self.id))
        return observed_traits(members or [])

    @strawberry.field(description="Event counts, first and last time, per event name.")
    async def events(self, info: Info[Context, None]) -> list[EventAggregate]:
        return (await self._view(info)).events

    @strawberry.field(description="Consents, from the consent_<purpose> traits chosen.")
    async def consents(self, info: Info[Context, None]) -> list[Consent]:
        return (await self._view(info)).consents

    @strawberry.field(description="When any of its identifiers was first seen.")
    async def first_seen(self, info: Info[Context, None]) -> datetime | None:
        return (await self._view(info)).first_seen

    @strawberry.field(description="When any of its identifiers was last seen.")
    async def last_seen(self, info: Info[Context, None]) -> datetime | None:
        return (await self._view(info)).last_seen

    @strawberry.field(description="How many identifiers of each type it holds.")
    async def identifier_counts(self, info: Info[Context, None]) -> list[IdentifierCount]:
        return (await self._view(info)).counts

    @strawberry.field(
        description="Third-party (DMP) segments reaching it through its identifiers, until "
        "they expire; an expired one is not listed."
    )
    async def dmp_segments(self, info: Info[Context, None]) -> list[DmpSegment]:
        return (await self._view(info)).dmp_segments(datetime.now(UTC))

    @strawberry.field(
        description="Its identity events, newest first, with those of identities merged into it."
    )
    async def history(
        self, info: Info[Context, None], first: int = 20, after: str | None = None
    ) -> IdentityEventConnection:
        limit = info.context.page_size(first)
        args = (event_cursor(after), limit + 1)
        rows = await info.context.loaders.history.load((args, str(self.id)))
        return IdentityEventConnection.of(rows or [], limit)
