"""The review band of record matching: pairs a steward accepts or rejects.

Accepting writes the matched link forced (as ``force_merge`` does; being matched, the two
records count as one customer under the limits); rejecting writes it cut. Either way the
decision is a steward action (audit event, incremental resolve) and stays: a later
``idgraph match run`` neither queues the pair again nor changes the link.
"""

from __future__ import annotations

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.steward.actions import Request, StewardResult
from identity.store import matching as store

MAX_PAGE = 500


def open_reviews(
    ctx: ServiceContext, *, source: str | None = None, first: int = 50, after: str | None = None
) -> list[store.ReviewRow]:
    """Open reviews, most probable first; a page of ``first`` after the review ``after``."""
    if not 1 <= first <= MAX_PAGE:
        raise InputError(f"first must be between 1 and {MAX_PAGE}, got {first}")
    if after is not None and store.review(ctx.graph, after) is None:
        raise NotFoundError(
            f"no match review {after!r} to page after (decided or gone: start over)"
        )
    return store.reviews(ctx.graph, source=source, status="open", first=first, after=after)


def decide(
    ctx: ServiceContext, review_id: str, *, accept: bool, reason: str, wait: float = 30.0
) -> StewardResult:
    """Accept (``accept``) or reject an open review, as the steward ``ctx.actor``."""
    request = Request(ctx, reason, wait)
    row = store.review(ctx.graph, review_id)
    if row is None:
        raise NotFoundError(f"no match review {review_id!r} (or one of its records was erased)")
    if row.status != "open":
        raise InputError(f"match review {review_id} was {row.status} by {row.decided_by} already")
    held = request.pair(row.a, row.b)
    if accept:
        for end in held:
            if end.blocked:
                raise InputError(
                    f"{end.key} is blocked (by {end.blocked_by}: {end.blocked_reason}); a block "
                    "is stronger than an accepted match: unblock it first"
                )
    return request.apply(
        "accept_match" if accept else "reject_match",
        held,
        lambda audit: store.decide_review(ctx.graph, row, accept=accept, audit=audit),
    )
