"""GraphQL subscriptions (``graphql-transport-ws`` over WebSocket at ``/graphql``):
``identityEvents(kinds, after)`` and ``segmentChanges(segmentId, after)``.

Both follow the outbox (:mod:`identity.store.outbox`) by its numbers: an edge's cursor names
the entry (and, for segment changes, the identity within its page), so a client that
reconnects with the last cursor it saw resumes exactly after it, with nothing skipped and
nothing repeated. Without ``after`` a subscription starts at the outbox's end. The nodes are
the queries' own types (``IdentityEvent`` with its identities and roles, ``SegmentChange``).

The server's delivery worker numbers new entries and wakes :class:`OutboxFeed`; each
subscription then reads what is past its cursor. A connection authenticates with
``Authorization: Bearer KEY`` on the upgrade request or in ``connection_init``'s payload.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from identity.api.context import Context, Loaders
from identity.api.errors import ApiError
from identity.api.segments import SegmentChange, SegmentChangeEdge
from identity.api.types import (
    IdentityEvent,
    IdentityEventEdge,
    IdentityEventKind,
    decode_cursor,
    encode_cursor,
)
from identity.segments import service as segments
from identity.store import outbox
from identity.store.read_types import EventRow
from identity.store.reads import when

_PAGE = 100
_IDLE_CHECK = 30.0  # seconds a subscription waits before it looks again anyway


def _webhook_kind(kind: str) -> str:
    return "steward.action" if kind == "steward" else f"identity.{kind}"


def _event_kind(kind: str) -> str:
    return "steward" if kind == "steward.action" else kind.removeprefix("identity.")


class OutboxFeed:
    """The outbox's last number as this server knows it; subscriptions wait on it."""

    def __init__(self) -> None:
        self.latest = 0
        self._changed = asyncio.Condition()

    async def advance(self, latest: int) -> None:
        """The end as read from the graph (it only moves back when the database was
        emptied: a cursor must never be moved past entries that exist)."""
        if latest != self.latest:
            self.latest = latest
            async with self._changed:
                self._changed.notify_all()

    async def wait_beyond(self, position: int) -> None:
        """Until an entry past ``position`` is numbered (or a while has passed)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.latest > position), _IDLE_CHECK
                )


def _position(after: str | None, size: int) -> list[int] | None:
    value = decode_cursor(after)
    if value is None:
        return None
    if not (
        isinstance(value, list)
        and len(value) == size + 1
        and value[0] == "o"
        and all(isinstance(v, int) for v in value[1:])
    ):
        raise ApiError(
            "BAD_USER_INPUT",
            f"invalid cursor {after!r}: give a cursor from this subscription's edges",
        )
    return [int(v) for v in value[1:]]


async def _follow(
    info: Info[Context, None],
    start: int | None,
    kinds: Sequence[str] | None,
    segment: str | None = None,
) -> AsyncGenerator[outbox.OutboxRow, None]:
    """The outbox entries after ``start`` (None: the end now), forever."""
    context = info.context
    graph = context.services.graph
    feed: OutboxFeed = context.request.state.feed
    cursor = start if start is not None else await run_in_threadpool(outbox.latest, graph)
    while True:
        known = max(feed.latest, cursor)
        rows = await run_in_threadpool(
            outbox.read_after, graph, cursor, _PAGE, kinds=kinds, segment=segment
        )
        for row in rows:
            yield row
            cursor = row.seq
        if len(rows) == _PAGE:
            continue
        cursor = max(cursor, known)  # every entry up to what was known has been read
        await feed.wait_beyond(cursor)


def _fresh(info: Info[Context, None]) -> None:
    """New DataLoaders for each result: a connection lives long, and what its loaders cached
    (a profile, its identifiers) may since have changed or been erased."""
    context = info.context
    context.loaders = Loaders.fresh(context.reads)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Identity events as they commit (created, merged, split, steward, "
        "forgotten, purged), of `kinds`, each with its cursor: pass the last one as `after` "
        "to resume. Without `after`, from now on. Role: reader."
    )
    async def identity_events(
        self,
        info: Info[Context, None],
        kinds: list[IdentityEventKind] | None = None,
        after: str | None = None,
    ) -> AsyncGenerator[IdentityEventEdge, None]:
        info.context.require("read")
        position = _position(after, 1)
        wanted = [_webhook_kind(k.value) for k in (kinds or list(IdentityEventKind))]
        async for row in _follow(info, position[0] if position else None, wanted):
            event = EventRow(
                id=row.id,
                kind=_event_kind(row.kind),
                reason=row.reason,
                actor=row.actor,
                at=row.at,
                action=row.action,
                keys=row.keys,
                identities=row.identities,
            )
            _fresh(info)
            yield IdentityEventEdge(
                cursor=encode_cursor(["o", row.seq]), node=IdentityEvent.from_row(event)
            )

    @strawberry.subscription(
        description="Who enters and who leaves a segment (by id or name) at each refresh, "
        "each with its cursor: pass the last one as `after` to resume. Without `after`, from "
        "now on. Role: marketer."
    )
    async def segment_changes(
        self, info: Info[Context, None], segment_id: strawberry.ID, after: str | None = None
    ) -> AsyncGenerator[SegmentChangeEdge, None]:
        services = info.context.acting("marketer")
        segment = await run_in_threadpool(segments.get_segment, services, str(segment_id))
        position = _position(after, 2)
        start, skip = (position[0] - 1, position[1] + 1) if position else (None, 0)
        kinds = ["segment.entered", "segment.left"]
        async for row in _follow(info, start, kinds, segment.id):
            at = when(row.at) or segment.created_at
            first = skip if position and row.seq == position[0] else 0  # not if it was pruned
            for index, (identity, change) in enumerate(row.identities):
                if index < first:
                    continue
                _fresh(info)
                yield SegmentChangeEdge(
                    cursor=encode_cursor(["o", row.seq, index]),
                    node=SegmentChange(identity_id=strawberry.ID(identity), change=change, at=at),
                )
            position = None


# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
