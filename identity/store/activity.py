"""What the console's overview and review queue read: recent loads with their reasons for
rejecting, recent resolves with their timings, the largest identities and the latest merges
into large ones."""

from __future__ import annotations

from typing import Any

from identity.store.driver import AsyncGraph
from identity.store.read_types import EventRow, LoadRow, RunRow
from identity.store.reads import EVENT_COLUMNS

# properties a load and a resolve keep per reason and per step (``rejected.<code>``, ...)
_REJECTED, _REJECTED_VALUE, _SECONDS = "rejected.", "rejected_value.", "seconds."


async def recent_loads(reads: AsyncGraph, limit: int) -> list[LoadRow]:
    """The latest loads (not steward actions), newest first."""
    records = await reads.read(
        "recent loads",
        "MATCH (b:Batch) WHERE b.started_at IS NOT NULL AND b.source <> 'steward' "
        "WITH b ORDER BY b.started_at DESC LIMIT $limit "
        "RETURN [b.id, b.source, b.file, b.status, b.started_at.epochMillis, "
        "  b.finished_at.epochMillis, coalesce(b.read, 0), coalesce(b.accepted, 0), "
        "  coalesce(b.rejected, 0), "
        "  [k IN keys(b) WHERE k STARTS WITH $rejected | [substring(k, size($rejected)), b[k]]], "
        "  [k IN keys(b) WHERE k STARTS WITH $value | [substring(k, size($value)), b[k]]]]",
        {"limit": limit, "rejected": _REJECTED, "value": _REJECTED_VALUE},
    )
    return [LoadRow._make(r[0]) for r in records]


async def recent_resolves(reads: AsyncGraph, limit: int) -> list[RunRow]:
    """The latest resolves, newest first."""
    records = await reads.read(
        "recent resolves",
        "MATCH (r:ResolveRun) WITH r ORDER BY r.started_at DESC LIMIT $limit "
        "RETURN [r.id, r.mode, r.status, r.started_at.epochMillis, r.finished_at.epochMillis, "
        "  r.identifiers, r.created, r.merged, r.split, "
        "  [k IN keys(r) WHERE k STARTS WITH $seconds | [substring(k, size($seconds)), r[k]]], "
        "  r.error]",
        {"limit": limit, "seconds": _SECONDS},
    )
    return [RunRow._make(r[0]) for r in records]


async def largest_identities(reads: AsyncGraph, limit: int) -> list[str]:
    """The ids of the largest active identities, largest first."""
    records = await reads.read(
        "largest identities",
        "MATCH (p:Identity) WHERE p.status = 'active' "
        "RETURN p.id ORDER BY p.size DESC, p.id LIMIT $limit",
        {"limit": limit},
    )
    return [r[0] for r in records]


async def large_merges(reads: AsyncGraph, min_size: int, limit: int) -> list[EventRow]:
    """The latest merges whose surviving identity now holds ``min_size`` identifiers or more,
    newest first (among the latest 2,000 merges)."""
    records = await reads.read(
        "large merges",
        "MATCH (e:IdentityEvent) WHERE e.kind = 'merged' "
        "WITH e ORDER BY e.at DESC, e.id DESC LIMIT 2000 "
        "MATCH (e)-[:AFFECTED {role: 'survivor'}]->(s:Identity) "
        "WHERE s.status = 'active' AND s.size >= $min_size "
        f"WITH e ORDER BY e.at DESC, e.id DESC LIMIT $limit RETURN {EVENT_COLUMNS}",
        {"min_size": min_size, "limit": limit},
    )
    return [EventRow._make(r[0]) for r in records]


def seconds_properties(seconds: dict[str, float]) -> dict[str, float]:
    """A resolve's step timings as the properties :func:`recent_resolves` reads."""
    return {_SECONDS + step: value for step, value in seconds.items()}


async def segments_of(reads: AsyncGraph, identity: str) -> list[tuple[str, str, int | None]]:
    """The marketers' segments ``identity`` is a member of: ``[id, name, since ms]``."""
    records = await reads.read(
        "segments of an identity",
        "MATCH (s:Segment)-[r:INCLUDES]->(:Identity {id: $id}) "
        "RETURN [s.id, s.name, r.since.epochMillis] ORDER BY s.name",
        {"id": identity},
    )
    return [(str(r[0][0]), str(r[0][1]), r[0][2]) for r in records]


async def device_reviews(reads: AsyncGraph, limit: int) -> list[dict[str, Any]]:
    """Open calls on possible shared devices, splits first, newest first."""
    records = await reads.read(
        "review devices",
        "MATCH (r:DeviceReview) WHERE r.status = 'open' "
        "RETURN [r.id, r.type, r.split, r.reason, r.device, r.kept, r.other, "
        "  r.detected_at.epochMillis] "
        "ORDER BY r.split DESC, r.detected_at DESC, r.id LIMIT $limit",
        {"limit": limit},
    )
    fields = ("id", "type", "split", "reason", "device", "kept", "other", "detected_at")
    return [dict(zip(fields, r[0], strict=True)) for r in records]
