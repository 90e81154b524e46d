"""The right to be forgotten: erasing a person, leaving tombstones.

- **forget_profile**: erases an identity (a merged id is followed to its survivor): its
  identifiers with their traits, event aggregates, links, DMP segments and audience exports,
  the identities merged into it, and its segment memberships. What stays: the
  ``(:Identity {id, status: 'forgotten', created_at, updated_at, size: 0})`` with its history,
  one ``(:IdentityEvent {kind: 'forgotten', reason, actor, at, identifiers})`` without any key,
  and one ``(:Tombstone {hash, at})`` per erased identifier (SHA-256 of its key), so that a
  later load refuses the same identifiers (reason ``forgotten``, see
  :mod:`identity.store.writer`). Texts elsewhere that named an erased key (merge and split
  reasons, shared verdicts, steward events' ``keys``, quarantine samples) are scrubbed. The
  identifiers that lost a link are marked touched by a ``(:Batch {source: 'privacy'})`` and an
  incremental resolve recomputes them at once, as a steward action does.
The right of access (everything held about a person) is :mod:`identity.privacy.access`.

Erasure holds the resolve lock while it deletes, so that no resolve writes memberships of
identifiers being erased.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from identity.audiences.export import erasure_removals
from identity.context import ServiceContext
from identity.errors import ConflictError, InputError, NotFoundError, ResolveBusyError
from identity.model import new_id
from identity.normalize import parse_key
from identity.resolve.service import ResolveReport, resolve_identities
from identity.steward.audit import MAX_ACTOR, MAX_REASON, audit_text
from identity.store.audiences import exported_identifiers, record_erasures
from identity.store.privacy import erase as erase_identity
from identity.store.privacy import (
    identity_holding,
    plan_erasure,
    survivor,
    tombstoned,
)
from identity.store.runs import ResolveLock

ERASED = "[erased]"


@dataclass
class ForgetResult:
    identity: str  # the identity erased (the survivor of the id given)
    identifiers: int  # identifiers erased, one tombstone each
    links: int  # LINKED relationships deleted
    merged_ids: int  # identities merged into it, deleted
    neighbours: int  # identifiers that lost a link, recomputed
    scrubbed: int  # texts, steward events and quarantines that named an erased key
    event_id: str
    report: ResolveReport | None  # the incremental resolve that applied it (None: busy)


def scrub(text: str, needles: Iterable[str]) -> str:
    """``text`` with every whole occurrence of a needle replaced by ``[erased]``.

    Whole: not inside a longer key (``cookie:ab`` is not erased from ``cookie:abc``); keys in
    reasons are separated by spaces, commas, semicolons and parentheses.
    """
    words = sorted({n for n in needles if n}, key=len, reverse=True)
    if not words:
        return text
    pattern = r"(?<![^\s,;()])(?:" + "|".join(map(re.escape, words)) + r")(?![^\s,;()])"
    return re.sub(pattern, ERASED, text)


def _text(name: str, value: str, limit: int) -> str:
    return audit_text(name, value, limit, needed_by="forgetting a profile", kept_in="the event log")


def find_identity(ctx: ServiceContext, id_: str | None, identifier: str | None) -> tuple[str, str]:
    """(identity id, status) of the identity named by ``id_`` or by ``identifier``."""
    if (id_ is None) == (identifier is None):
        raise InputError("give exactly one of an identity id and an identifier (TYPE:VALUE)")
    if id_ is not None:
        found = survivor(ctx.graph, id_.strip())
        if found is None:
            raise NotFoundError(f"no identity {id_[:80]!r}")
        return found
    assert identifier is not None
    key = parse_key(ctx.normalizer, identifier)
    held = identity_holding(ctx.graph, key)
    if held is None:
        when = tombstoned(ctx.graph, key)
        if when is not None:
            raise NotFoundError(f"{identifier[:120]!r} was erased on {when}: nothing left of it")
        raise NotFoundError(f"no identity holds {identifier[:120]!r} (looked up as {key!r})")
    return held


def forget_profile(
    ctx: ServiceContext,
    *,
    id: str | None = None,
    identifier: str | None = None,
    reason: str,
    wait: float = 30.0,
) -> ForgetResult:
    """Erase the identity named by ``id`` or ``identifier`` (``TYPE:VALUE``); see the module
    docstring. Raises NotFoundError for an unknown identity (naming when an identifier was
    erased), ConflictError when it was forgotten already, ResolveBusyError when a resolve
    holds the lock longer than ``wait`` seconds (nothing erased then). The erasure is recorded
    as ``ctx.actor``'s."""
    reason = _text("reason", reason, MAX_REASON)
    actor = _text("actor", ctx.actor or "", MAX_ACTOR)
    graph = ctx.graph
    identity, status = find_identity(ctx, id, identifier)
    if status == "forgotten":
        raise ConflictError(f"identity {identity} was forgotten already: nothing left to erase")
    lock = ResolveLock(graph, f"forget-{uuid.uuid4()}")
    lock.acquire(wait)
    try:
        plan = plan_erasure(graph, identity)
        if plan is None:
            raise NotFoundError(f"identity {identity} is gone (erased meanwhile?)")
        keys = [k for k, _ in plan.members]
        texts = [(kind, ident, scrub(text, keys)) for kind, ident, text in plan.texts]
        needles = [*keys, *(v for _, v in plan.members if len(v) >= 3)]
        event = new_id()
        owed = erasure_removals(exported_identifiers(graph, keys))
        done = erase_identity(
            graph,
            plan,
            texts,
            reason=scrub(reason, needles),
            actor=actor,
            at_ms=int(time.time() * 1000),
            event=event,
            batch=f"privacy-{uuid.uuid4()}",
        )
        if owed:
            record_erasures(graph, owed, datetime.now(UTC))
    finally:
        lock.release()
    report: ResolveReport | None
    try:
        report = resolve_identities(ctx.acting_as(actor), wait=wait)
    except ResolveBusyError:
        report = None  # the privacy batch stays pending: the next resolve applies it
    return ForgetResult(
        identity=identity,
        identifiers=done.identifiers,
        links=done.links,
        merged_ids=len(plan.losers),
        neighbours=done.neighbours,
        scrubbed=len(texts) + len(plan.steward_events) + len(plan.quarantines),
        event_id=event,
        report=report,
    )
