"""Steward actions: a person overrides what the rules decided, and it takes effect at once.

- **cut_link(a, b)**: the ``LINKED`` relationship between ``a`` and ``b`` gets ``cut: true``
  (with ``cut_reason``, ``cut_by``, ``cut_at``); a cut link never merges, so the two sides
  split unless something else holds them together. A cut wins over everything, a forced
  link included (the link keeps its forced flag, inactive while cut).
- **restore_link(a, b)**: removes a cut; the link merges again if the rules allow (or, if it
  was forced before it was cut, as a forced link again).
- **force_merge(a, b)**: the steward asserts ``a`` and ``b`` are the same customer. Their link
  (created if there is none: party ``first``, sources ``['steward']``, count 1) gets ``forced:
  true`` (with ``forced_reason``, ``forced_by``, ``forced_at``) and loses any cut. A forced link
  merges whatever its party, sources or age (TTL) and whatever the shared verdict of its ends
  (a shared identifier it ends at still merges nothing else), and it goes first when a limit
  splits a component. It does not beat a block (refused here when an end is blocked: unblock
  it first), a limit that its own two ends break (two crm ids under a limit of 1 stay apart,
  the refusal recorded as a limit conflict), or the circuit breaker. It takes no part in
  judging what is shared.
- **block_identifier(key)**: ``blocked: true`` (with ``blocked_reason``, ``blocked_by``,
  ``blocked_at``) on the identifier: none of its links merges, it stands alone, as if the
  policy's block list named it. **unblock_identifier(key)** removes it.

Repeating an action (cutting a cut link, blocking a blocked identifier) restates it with the
new reason and actor. Every action writes one audit ``(:IdentityEvent {kind: 'steward',
action, reason, actor, at, keys, run})`` linked ``-[:AFFECTED {role: 'before'|'after'}]->`` to
the identities holding its identifiers before and after, then applies itself through an
incremental resolve (:func:`identity.resolve.service.resolve_identities`): its identifiers are
marked touched by a completed ``(:Batch {source: 'steward'})``, and the merge and split events
of that resolve carry the steward as actor. That resolve also applies whatever else was
pending (batches loaded since the last one). If another resolve holds the lock longer than
``wait`` seconds, the action stays recorded and the next resolve applies it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError, ResolveBusyError
from identity.model import new_id
from identity.normalize import parse_key
from identity.resolve.service import ResolveReport, resolve_identities
from identity.steward.audit import MAX_ACTOR, MAX_REASON, audit_text
from identity.store.identities import identities_of
from identity.store.steward import (
    Audit,
    Held,
    read_identifiers,
    read_link,
    record_action,
    record_after,
)


@dataclass
class StewardResult:
    action: str  # cut_link | restore_link | force_merge | block_identifier | unblock_identifier
    keys: list[str]  # the identifier keys acted on (normalized "type:value")
    reason: str
    actor: str
    event_id: str  # id of the audit IdentityEvent
    before: list[str]  # identity ids holding `keys` before the action, distinct, sorted
    identities: list[str]  # identity ids holding `keys` after the action, distinct, sorted
    report: ResolveReport  # the incremental resolve that applied it


def cut_link(
    ctx: ServiceContext, a: str, b: str, *, reason: str, wait: float = 30.0
) -> StewardResult:
    """Cut the link between ``a`` and ``b`` (see the module docstring)."""
    request = Request(ctx, reason, wait)
    a_, b_ = request.pair(a, b)
    if read_link(ctx.graph, a_.key, b_.key) is None:
        raise NotFoundError(f"no link between {a_.key} and {b_.key}: nothing to cut")
    return request.apply("cut_link", [a_, b_])


def restore_link(
    ctx: ServiceContext, a: str, b: str, *, reason: str, wait: float = 30.0
) -> StewardResult:
    """Remove the cut of the link between ``a`` and ``b``."""
    request = Request(ctx, reason, wait)
    a_, b_ = request.pair(a, b)
    link = read_link(ctx.graph, a_.key, b_.key)
    if link is None:
        raise NotFoundError(f"no link between {a_.key} and {b_.key}: nothing to restore")
    if not link.cut:
        raise NotFoundError(f"the link {a_.key} - {b_.key} is not cut: nothing to restore")
    return request.apply("restore_link", [a_, b_])


def force_merge(
    ctx: ServiceContext, a: str, b: str, *, reason: str, wait: float = 30.0
) -> StewardResult:
    """Assert ``a`` and ``b`` are the same customer: force (or create) the link between them."""
    request = Request(ctx, reason, wait)
    ends = request.pair(a, b)
    for end in ends:
        if end.blocked:
            raise InputError(
                f"{end.key} is blocked (by {end.blocked_by}: {end.blocked_reason}); a block "
                "is stronger than a forced link: unblock it first"
            )
    return request.apply("force_merge", ends)


def block_identifier(
    ctx: ServiceContext, key: str, *, reason: str, wait: float = 30.0
) -> StewardResult:
    """Block ``key``: none of its links merges, it stands alone."""
    request = Request(ctx, reason, wait)
    return request.apply("block_identifier", request.known([key]))


def unblock_identifier(
    ctx: ServiceContext, key: str, *, reason: str, wait: float = 30.0
) -> StewardResult:
    """Lift a steward's block of ``key``; its links merge again if the rules allow."""
    request = Request(ctx, reason, wait)
    held = request.known([key])
    if not held[0].blocked:
        raise NotFoundError(f"{held[0].key} is not blocked: nothing to unblock")
    return request.apply("unblock_identifier", held)


def _text(name: str, value: str, limit: int) -> str:
    return audit_text(name, value, limit, needed_by="a steward action", kept_in="the audit trail")


class Request:
    """One steward action on its way: who asks and why (checked first), and where."""

    def __init__(self, ctx: ServiceContext, reason: str, wait: float) -> None:
        self.reason = _text("reason", reason, MAX_REASON)
        self.actor = _text("actor", ctx.actor or "", MAX_ACTOR)
        self.ctx = ctx.acting_as(self.actor)
        self.graph = ctx.graph
        self.wait = wait

    def known(self, given: list[str]) -> list[Held]:
        """The identifiers ``given`` names (normalized as loads do), each in the graph."""
        keys = [parse_key(self.ctx.normalizer, g) for g in given]
        held = read_identifiers(self.graph, keys)
        for key, typed in zip(keys, given, strict=True):
            if key not in held:
                raise NotFoundError(f"unknown identifier {typed!r} (looked up as {key!r})")
        return [held[key] for key in keys]

    def pair(self, a: str, b: str) -> list[Held]:
        ends = self.known([a, b])
        if ends[0].key == ends[1].key:
            raise InputError(f"{a!r} and {b!r} are the same identifier ({ends[0].key})")
        return ends

    def record(
        self,
        action: str,
        keys: list[str],
        before: list[str],
        write: Callable[[Audit], bool],
        *,
        holding: list[str] | None = None,
    ) -> tuple[str, list[str], ResolveReport]:
        """Write the action with its audit (``write``: False when its precondition no longer
        holds), then apply it by an incremental resolve; the audit event's id, the identities
        holding ``holding`` (default: ``keys``) after, and the resolve's report."""
        event = new_id()
        audit = Audit(
            self.reason, self.actor, int(time.time() * 1000), event, f"steward-{uuid.uuid4()}",
            before,
        )  # fmt: skip
        if not write(audit):  # another steward changed it between the check and the write
            raise NotFoundError(f"{action} {' - '.join(keys)}: changed meanwhile, nothing done")
        try:
            report = resolve_identities(self.ctx, wait=self.wait)
        except ResolveBusyError as e:
            raise ResolveBusyError(
                f"{action} recorded (event {event}); it takes effect at the next resolve: {e}"
            ) from e
        after = identities_of(self.graph, holding if holding is not None else keys)
        record_after(self.graph, event, report.run, after)
        return event, after, report

    def apply(
        self, action: str, held: list[Held], write: Callable[[Audit], bool] | None = None
    ) -> StewardResult:
        """Record the action with its audit event (``write``: how, when not the store's own
        statement for ``action``), then resolve incrementally to apply it."""
        keys = [h.key for h in held]
        before = sorted({h.identity for h in held if h.identity is not None})
        event, after, report = self.record(
            action,
            keys,
            before,
            write
            or (lambda audit: record_action(self.graph, action=action, keys=keys, audit=audit)),
        )
        return StewardResult(
            action=action,
            keys=keys,
            reason=self.reason,
            actor=self.actor,
            event_id=event,
            before=before,
            identities=after,
            report=report,
        )
