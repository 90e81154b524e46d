"""Privacy: the right to be forgotten and the right of access.

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
- **export_profile**: everything held about one identity, as one JSON-ready document.

Erasure holds the resolve lock while it deletes, so that no resolve writes memberships of
identifiers being erased.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from neo4j.time import Date as Neo4jDate
from neo4j.time import DateTime as Neo4jDateTime

from identity.audiences.export import erasure_removals
from identity.config import Settings
from identity.errors import ConflictError, InputError, NotFoundError, ResolveBusyError
from identity.model import new_id
from identity.normalize import make_normalizer, parse_key
from identity.policy import Policy
from identity.resolve.service import ResolveReport, resolve_identities
from identity.steward.actions import MAX_ACTOR, MAX_REASON, audit_text
from identity.store.audiences import exported_identifiers, record_erasures
from identity.store.driver import Graph
from identity.store.privacy import erase as erase_identity
from identity.store.privacy import (
    identity_holding,
    plan_erasure,
    read_batches,
    read_export,
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


def _find(
    graph: Graph, settings: Settings, policy: Policy, id_: str | None, identifier: str | None
) -> tuple[str, str]:
    """(identity id, status) of the identity named by ``id_`` or by ``identifier``."""
    if (id_ is None) == (identifier is None):
        raise InputError("give exactly one of an identity id and an identifier (TYPE:VALUE)")
    if id_ is not None:
        found = survivor(graph, id_.strip())
        if found is None:
            raise NotFoundError(f"no identity {id_[:80]!r}")
        return found
    assert identifier is not None
    key = parse_key(make_normalizer(settings, policy), identifier)
    held = identity_holding(graph, key)
    if held is None:
        when = tombstoned(graph, key)
        if when is not None:
            raise NotFoundError(f"{identifier[:120]!r} was erased on {when}: nothing left of it")
        raise NotFoundError(f"no identity holds {identifier[:120]!r} (looked up as {key!r})")
    return held


def forget_profile(
    graph: Graph,
    settings: Settings,
    policy: Policy,
    *,
    id: str | None = None,
    identifier: str | None = None,
    reason: str,
    actor: str,
    wait: float = 30.0,
) -> ForgetResult:
    """Erase the identity named by ``id`` or ``identifier`` (``TYPE:VALUE``); see the module
    docstring. Raises NotFoundError for an unknown identity (naming when an identifier was
    erased), ConflictError when it was forgotten already, ResolveBusyError when a resolve
    holds the lock longer than ``wait`` seconds (nothing erased then)."""
    reason = _text("reason", reason, MAX_REASON)
    actor = _text("actor", actor, MAX_ACTOR)
    identity, status = _find(graph, settings, policy, id, identifier)
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
        report = resolve_identities(graph, settings, policy, wait=wait, actor=actor)
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


# -- access -----------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A driver value as JSON-ready data: times as ISO 8601 text."""
    if isinstance(value, Neo4jDateTime | Neo4jDate):
        return value.iso_format()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _identifier(row: dict[str, Any]) -> dict[str, Any]:
    """One identifier: its properties, its traits per source and its event aggregates."""
    props = dict(row["properties"])
    traits: dict[str, dict[str, Any]] = {}
    events: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for name, value in props.items():
        head, _, tail = name.partition(".")
        if head in ("trait", "trait_at") and "." in tail:
            source, _, trait = tail.partition(".")
            slot = traits.setdefault(source, {}).setdefault(trait, {})
            slot["value" if head == "trait" else "at"] = value
        elif head in ("event_count", "event_first", "event_last") and tail:
            events.setdefault(tail, {})[head.removeprefix("event_")] = value
        else:
            rest[name] = value
    return {
        **rest,
        "labels": sorted(row["labels"]),
        "traits": traits,
        "events": events,
        "links": [{"other": link["other"], **link["properties"]} for link in row["links"]],
        "dmp_segments": [{"name": s["name"], **s["properties"]} for s in row["dmp_segments"]],
        "audiences": row["audiences"],
    }


def _batch_ids(identifiers: list[dict[str, Any]]) -> list[str]:
    """The batches that wrote about these identifiers: the last one of each identifier and
    those named by its links' evidence (``<time> <batch>:<record>``)."""
    found: set[str] = set()
    for ident in identifiers:
        if ident.get("batch"):
            found.add(str(ident["batch"]))
        for link in ident["links"]:
            for evidence in link.get("evidence") or []:
                _, _, ref = str(evidence).partition(" ")
                batch, sep, _ = ref.partition(":")
                if sep:
                    found.add(batch)
    return sorted(found)


def export_profile(
    graph: Graph,
    settings: Settings,
    policy: Policy,
    *,
    id: str | None = None,
    identifier: str | None = None,
) -> dict[str, Any]:
    """Everything idgraph holds about one person (the right of access), as one JSON-ready
    document: the identity and its profile properties, each identifier with its properties,
    traits per source, event aggregates, links (other end, times, sources, party, evidence),
    DMP segments and audience exports, the segments it is in, its history (its own events
    and those of the identities merged into it) and the batches that wrote about it."""
    identity, _ = _find(graph, settings, policy, id, identifier)
    row = read_export(graph, identity)
    if row is None:
        raise NotFoundError(f"identity {identity} is gone")
    props = dict(row["identity"])
    names = ("id", "status", "created_at", "updated_at", "size")
    basics = {k: props.pop(k) for k in names if k in props}
    identifiers = [_identifier(r) for r in row["identifiers"]]
    document: dict[str, Any] = plain(
        {
            "exported_at": datetime.now(UTC),
            "identity": {**basics, "merged_ids": sorted(row["merged"])},
            "profile": props,
            "identifiers": identifiers,
            "segments": row["segments"],
            "history": [
                {**h["properties"], "identity": h["identity"], "role": h["role"]}
                for h in row["history"]
            ],
            "batches": read_batches(graph, _batch_ids(identifiers)),
        }
    )
    return document
