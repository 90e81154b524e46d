"""Segment services: create, read, change and delete segments, estimate and preview a
definition, refresh membership and read members and changes.

Definitions are validated by :func:`identity.segments.parse` against the policy's identifier
types and stored in their canonical JSON form. Membership is what the last refresh found: a
changed definition keeps the members until the next refresh (``Segment.stale`` says so).
``changes(since)`` is the net sync list: each identity appears at most once, as entered
(a member now, since a time after ``since``) or left (not a member now); applying them in
order to a copy taken at ``since`` gives the current membership.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.policy import Policy
from identity.segments.conditions import Condition
from identity.segments.language import parse, to_json, traits_of
from identity.store import outbox
from identity.store import segments as store
from identity.store.read_types import IdentityRow
from identity.store.reads import when
from identity.store.segment_query import compile_condition

MAX_NAME = 200
MAX_DESCRIPTION = 2000
STALE_REFRESH = timedelta(minutes=30)


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    description: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str
    definition_at: datetime | None
    refreshed_at: datetime | None
    size: int
    refreshing_since: datetime | None

    @property
    def stale(self) -> bool:
        """True when the members were not computed from the current definition."""
        return self.refreshed_at is None or (
            self.definition_at is not None and self.definition_at > self.refreshed_at
        )

    @classmethod
    def of(cls, row: dict[str, Any]) -> Segment:
        return cls(
            id=row["id"],
            name=row["name"],
            description=row["description"] or "",
            definition=json.loads(row["definition"]),
            created_at=when(row["created_at"]) or datetime.fromtimestamp(0, UTC),
            updated_at=when(row["updated_at"]) or datetime.fromtimestamp(0, UTC),
            created_by=row["created_by"] or "",
            definition_at=when(row["definition_at"]),
            refreshed_at=when(row["refreshed_at"]),
            size=int(row["size"] or 0),
            refreshing_since=when(row["refreshing_since"]),
        )


@dataclass(frozen=True)
class RefreshResult:
    segment: str
    refresh: str
    at: datetime
    entered: int
    left: int
    size: int
    ms: int


@dataclass(frozen=True)
class Preview:
    size: int
    sample: list[tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class Change:
    identity: str
    at: datetime
    change: str  # "entered" or "left"


def _now(now: datetime | None) -> datetime:
    """``now`` or the current time, to the millisecond (the precision times are read back)."""
    at = now or datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _name(name: str) -> str:
    text = name.strip()
    if not text or len(text) > MAX_NAME:
        raise InputError(f"a segment name must be 1 to {MAX_NAME} characters, got {len(text)}")
    return text


def _description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InputError(f"a segment description is at most {MAX_DESCRIPTION} characters")
    return description


def validate(policy: Policy, definition: Any) -> Condition:
    """The parsed tree, or SegmentDefinitionError listing each bad node's path and reason."""
    return parse(definition, policy.types)


def create_segment(
    ctx: ServiceContext,
    *,
    name: str,
    definition: Any,
    description: str = "",
    now: datetime | None = None,
) -> Segment:
    """Create a segment (no members until its first refresh), recorded as created by
    ``ctx.actor``; ConflictError on a taken name."""
    tree = validate(ctx.policy, definition)
    row = store.create(
        ctx.graph,
        id=f"seg-{secrets.token_hex(6)}",
        name=_name(name),
        description=_description(description),
        definition=json.dumps(to_json(tree)),
        actor=ctx.actor or "idgraph",
        now=_now(now),
    )
    return Segment.of(row)


def get_segment(ctx: ServiceContext, id_or_name: str) -> Segment:
    """A segment by id or name; NotFoundError otherwise."""
    row = store.find(ctx.graph, id_or_name)
    if row is None:
        raise NotFoundError(f"no segment {id_or_name[:120]!r}: `idgraph segment list` lists them")
    return Segment.of(row)


def list_segments(ctx: ServiceContext) -> list[Segment]:
    """All segments by name."""
    return [Segment.of(r) for r in store.list_all(ctx.graph)]


def update_segment(
    ctx: ServiceContext,
    id_or_name: str,
    *,
    name: str | None = None,
    description: str | None = None,
    definition: Any = None,
    now: datetime | None = None,
) -> Segment:
    """Change the name, description or definition; members stay until the next refresh."""
    current = get_segment(ctx, id_or_name)
    text = json.dumps(to_json(validate(ctx.policy, definition))) if definition is not None else None
    row = store.update(
        ctx.graph,
        current.id,
        name=_name(name) if name is not None else None,
        description=_description(description) if description is not None else None,
        definition=text,
        now=_now(now),
    )
    if row is None:
        raise NotFoundError(f"segment {current.id} was deleted meanwhile")
    return Segment.of(row)


def delete_segment(ctx: ServiceContext, id_or_name: str) -> Segment:
    """Delete a segment with its memberships and refresh records; the segment as it was."""
    current = get_segment(ctx, id_or_name)
    store.delete(ctx.graph, current.id)
    return current


def estimate(ctx: ServiceContext, definition: Any, now: datetime | None = None) -> int:
    """How many active identities match a definition now, without storing anything."""
    where, params = compile_condition(validate(ctx.policy, definition), _now(now))
    return store.count_matching(ctx.graph, where, params)


def preview(
    ctx: ServiceContext, definition: Any, sample: int = 10, now: datetime | None = None
) -> Preview:
    """The size and up to ``sample`` members (by identity id), each with up to five traits,
    those the definition looks at first."""
    tree = validate(ctx.policy, definition)
    where, params = compile_condition(tree, _now(now))
    size = store.count_matching(ctx.graph, where, params)
    wanted = traits_of(tree)
    found = []
    for identity, traits in (
        store.sample_matching(ctx.graph, where, params, sample) if sample else []
    ):
        order = [t for t in wanted if t in traits] + sorted(t for t in traits if t not in wanted)
        found.append((identity, {t: traits[t] for t in order[:5]}))
    return Preview(size=size, sample=found)


def refresh_segment(
    ctx: ServiceContext,
    id_or_name: str,
    *,
    now: datetime | None = None,
    stale_after: timedelta = STALE_REFRESH,
) -> RefreshResult:
    """Materialize the membership now: members that no longer match (or whose identity was
    merged away) leave, matching active identities enter; unchanged members are not touched.
    ConflictError while another refresh of the segment runs (one silent for ``stale_after``
    is taken over)."""
    segment = get_segment(ctx, id_or_name)
    at = _now(now)
    where, params = compile_condition(validate(ctx.policy, segment.definition), at)
    token = uuid.uuid4().hex
    store.lock(ctx.graph, segment.id, token, datetime.now(UTC), datetime.now(UTC) - stale_after)
    started = time.perf_counter()
    try:
        for earlier in outbox.unannounced_refreshes(ctx.graph, segment.id):
            outbox.announce_segment(ctx.graph, segment.id, earlier)  # a crashed refresh's
        refresh = f"ref-{secrets.token_hex(6)}"
        store.begin_refresh(ctx.graph, segment.id, refresh=refresh, now=at)
        left = store.remove_left(ctx.graph, segment.id, where, params, at, refresh)
        entered = store.add_entered(ctx.graph, segment.id, where, params, at, refresh)
        ms = int((time.perf_counter() - started) * 1000)
        size = store.record_refresh(
            ctx.graph, segment.id, refresh=refresh, entered=entered, left=left, ms=ms, now=at
        )
        outbox.announce_segment(ctx.graph, segment.id, refresh)
    finally:
        store.unlock(ctx.graph, segment.id, token)
    return RefreshResult(segment.id, refresh, at, entered, left, size, ms)


def members(
    ctx: ServiceContext, id_or_name: str, after: str | None, limit: int
) -> list[tuple[IdentityRow, datetime]]:
    """A page of members by identity id: (identity row, member since)."""
    segment = get_segment(ctx, id_or_name)
    rows = store.members(ctx.graph, segment.id, after, limit)
    return [
        (IdentityRow._make(r["identity"]), when(r["since"]) or segment.created_at) for r in rows
    ]


def changes(
    ctx: ServiceContext,
    id_or_name: str,
    since: datetime,
    after: tuple[int, str] | None = None,
    limit: int = 1000,
) -> list[Change]:
    """Entered and left after ``since``, by time then identity id (keyset ``after``)."""
    if since.tzinfo is None:
        raise InputError("since needs a time zone, e.g. 2026-11-01T00:00:00Z")
    segment = get_segment(ctx, id_or_name)
    return [
        Change(r["identity"], when(r["at"]) or since, r["change"])
        for r in store.changes(ctx.graph, segment.id, since, after, limit)
    ]


def refreshes(ctx: ServiceContext, id_or_name: str, last: int = 10) -> list[RefreshResult]:
    """The last refreshes of a segment, newest first."""
    segment = get_segment(ctx, id_or_name)
    return [
        RefreshResult(
            segment.id,
            r["id"],
            when(r["at"]) or segment.created_at,
            int(r["entered"]),
            int(r["left"]),
            int(r["size"]),
            int(r["ms"]),
        )
        for r in store.refreshes(ctx.graph, segment.id, last)
    ]
