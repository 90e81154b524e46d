"""Retention: ``idgraph purge`` (and the server, every ``purge_interval_hours``).

What goes, as of ``now`` (each kind counted in the report):

- ``dmp_segments``: third-party segment memberships (``IN_SEGMENT``) whose ``expires_at``
  is past.
- ``third_party_links``: links of party ``third`` last seen longer ago than the TTL of their
  types (the shorter of the two ends' ``ttl_days``; a type without a TTL does not expire).
- ``retention_links``: links whose every source has a ``retention_days`` (``[sources.X]`` in
  the policy) and that were last seen longer ago than each of them: a link also seen by a
  source without retention, or recently enough for one of its sources, stays.
- ``traits``: trait values ``trait.<source>.<name>`` stated longer ago than ``<source>``'s
  retention (their ``trait_at``), with their time.
- ``third_party_identifiers``: identifiers seen only by third-party sources, past their
  type's TTL, with no link left.
- ``retention_identifiers``: identifiers whose every source has a retention that their last
  sighting is past (their links go with them).

Links and identifiers a steward forced stay (a steward's assertion is not an observation
that ages). Event aggregates are not per source: they go with their identifier. An identity
left with no identifier keeps its id and history with status ``purged`` (an IdentityEvent
``purged`` says so). Identifiers that lost anything are marked touched by a
``(:Batch {source: 'purge'})`` and the incremental resolve recomputes their identities and
profiles. The purge holds the resolve lock while it deletes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from identity.context import ServiceContext
from identity.errors import InputError, ResolveBusyError
from identity.policy import Policy
from identity.resolve.graph import DAY_MS
from identity.resolve.service import ResolveReport, resolve_identities
from identity.store import retention as store
from identity.store.runs import ResolveLock

STEPS = (
    "dmp_segments",
    "third_party_links",
    "retention_links",
    "traits",
    "third_party_identifiers",
    "retention_identifiers",
)

Progress = Callable[[str], None]  # the step starting


@dataclass
class PurgeReport:
    as_of: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)  # step -> rows (would be) deleted
    emptied_identities: int = 0  # identities left without identifiers (status purged)
    seconds: float = 0.0
    resolve: ResolveReport | None = None  # the resolve that applied it (None: dry run,
    # nothing purged, or the lock was busy: the next resolve applies it)


def cutoffs(policy: Policy, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """(type -> TTL cutoff, source -> retention cutoff), as epoch milliseconds."""
    now_ms = int(now.timestamp() * 1000)
    ttl = {
        t: now_ms - rule.ttl_days * DAY_MS
        for t, rule in policy.rules.items()
        if rule.ttl_days is not None
    }
    kept = {s: now_ms - days * DAY_MS for s, days in policy.retention_days.items()}
    return ttl, kept


def purge(
    ctx: ServiceContext,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    wait: float = 30.0,
    progress: Progress | None = None,
) -> PurgeReport:
    """Purge what is past its TTL or retention as of ``now`` (see the module docstring);
    ``dry_run`` counts what would go and changes nothing."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise InputError("purge needs a time with a time zone, e.g. 2026-11-01T00:00:00Z")
    graph = ctx.graph
    ttl, kept = cutoffs(ctx.policy, now)
    now_ms = int(now.timestamp() * 1000)
    batch = f"purge-{uuid.uuid4()}"
    params: dict[str, Any] = {
        "now": now_ms,
        "at": int(time.time() * 1000),
        "ttl": ttl,
        "kept": kept,
        "third": store.third_party_sources(graph),
        "batch": batch,
    }
    bounds = {
        "third_party_links": max(ttl.values(), default=None),
        "third_party_identifiers": max(ttl.values(), default=None),
        "retention_links": max(kept.values(), default=None),
        "retention_identifiers": max(kept.values(), default=None),
        "traits": max(kept.values(), default=None),
    }
    report = PurgeReport(as_of=now, dry_run=dry_run)
    lock = None if dry_run else ResolveLock(graph, batch)
    if lock is not None:
        lock.acquire(wait)
        store.begin(graph, batch, params["at"])
    try:
        for step in STEPS:
            if progress is not None:
                progress(step)
            if step != "dmp_segments" and bounds[step] is None:
                report.counts[step] = 0  # no TTL or retention applies
                continue
            step_params = {**params, "bound": bounds.get(step)}
            if dry_run:
                report.counts[step] = store.count(graph, step, step_params)
            elif step in store.IDENTIFIER_STEPS:
                deleted, emptied = store.delete_identifiers(
                    graph, step, step_params, lambda: store.heartbeat(graph, batch)
                )
                report.counts[step] = deleted
                report.emptied_identities += emptied
            else:
                report.counts[step] = store.delete(graph, step, step_params)
                store.heartbeat(graph, batch)
    finally:
        if lock is not None:
            lock.release()
    if not dry_run and any(report.counts.values()):
        try:
            report.resolve = resolve_identities(
                ctx.acting_as("idgraph purge"), as_of=now, wait=wait
            )
        except ResolveBusyError:
            report.resolve = None
    report.seconds = time.monotonic() - started
    return report
