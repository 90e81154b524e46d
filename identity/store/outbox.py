"""The outbox: what changed, in the order it committed, for webhooks and subscriptions.

An outbox entry is written by the same transaction as the change it announces, so a crash
between the change and its announcement loses nothing:

- every ``(:IdentityEvent)`` (created, merged, split, steward, forgotten, purged) is created
  with the labels ``:Outbox:Unsequenced`` (:data:`LABELS`) and a ``recorded`` time taken
  once the transaction holds its identities' locks;
- a segment refresh tags each membership it changes with its refresh id (``announce``) in
  the transaction that changes it; :func:`announce_segment` turns the tagged changes into
  ``(:SegmentPage:Outbox:Unsequenced)`` pages of at most :data:`PAGE_IDENTITIES` identities,
  untagging them in the same transaction.

**Sequencing.** Transactions commit in an order no timestamp gives (a run's events carry the
run's start). :func:`sequence` numbers the unsequenced entries 1, 2, 3... under the lock of
one ``(:OutboxSequence)`` node, by ``recorded`` time: two changes of one identity take that
identity's lock in turn, so the later one is recorded after the earlier committed, and the
numbers keep every identity's order. A reader following ``seq`` never sees an entry appear
behind its cursor: an entry gets its number only once committed, and numbers only grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import LiteralString, NamedTuple

from neo4j import ManagedTransaction

from identity.store.driver import Graph

LABELS: LiteralString = "Outbox:Unsequenced"
PAGE_IDENTITIES = 1000
_SEQUENCE_BATCH = 5000

# the webhook kind of an entry: identity.created, steward.action, segment.entered, ...
KIND: LiteralString = (
    "CASE WHEN e:SegmentPage THEN e.kind WHEN e.kind = 'steward' THEN 'steward.action' "
    "ELSE 'identity.' + e.kind END"
)
_ROW: LiteralString = (
    "[e.seq, e.id, " + KIND + ", e.at.epochMillis, e.reason, e.actor, e.action, "
    "coalesce(e.keys, []), "
    "CASE WHEN e:SegmentPage THEN [x IN e.identities | [x, e.change]] "
    # a steward action's "after" identities are added later, by its resolve: left out, so an
    # entry says the same whenever it is read (the resolve's own events say what followed)
    "ELSE COLLECT { MATCH (e)-[a:AFFECTED]->(p:Identity) WHERE a.role <> 'after' "
    "RETURN [p.id, a.role] "
    "ORDER BY a.role DESC, p.id } END, "
    "e.segment, e.refresh, e.page]"
)


class OutboxRow(NamedTuple):
    seq: int
    id: str
    kind: str  # identity.merged, steward.action, segment.entered, ...
    at: int  # epoch ms of the change
    reason: str | None
    actor: str | None
    action: str | None  # the steward action
    keys: list[str]  # identifiers a steward action named (erased ones scrubbed)
    identities: list[list[str]]  # [identity id, role]
    segment: str | None
    refresh: str | None
    page: int | None


def sequence(graph: Graph, batch: int = _SEQUENCE_BATCH) -> int:
    """Number the committed, unsequenced entries after the last number given, oldest
    recorded first; how many were numbered (at most ``batch``: call again while it is)."""

    def work(tx: ManagedTransaction) -> int:
        # from the count store; nothing is written, nor locked, while there is nothing to do
        waiting = tx.run("MATCH (e:Unsequenced) RETURN count(e) AS n").single(strict=True)["n"]
        if not waiting:
            return 0
        last = tx.run(
            "MERGE (c:OutboxSequence {id: 'outbox'}) ON CREATE SET c.last = 0 "
            "SET c.taken_at = datetime.realtime() RETURN c.last AS last"
        ).single(strict=True)["last"]
        found = tx.run(
            # recorded before this statement began: an entry recorded later may belong to a
            # transaction that follows one still committing, which the scan could miss
            "MATCH (e:Unsequenced) WHERE e.recorded < datetime.statement() "
            "WITH e ORDER BY e.recorded LIMIT $batch "  # along the index: a backlog costs no sort
            "RETURN collect(elementId(e)) AS ids",
            batch=batch,
        ).single(strict=True)["ids"]
        if not found:
            return 0
        tx.run(
            "UNWIND range(0, size($ids) - 1) AS i MATCH (e) WHERE elementId(e) = $ids[i] "
            "SET e.seq = $last + 1 + i REMOVE e:Unsequenced",
            ids=found,
            last=last,
        ).consume()
        tx.run(
            "MATCH (c:OutboxSequence {id: 'outbox'}) SET c.last = $last",
            last=last + len(found),
        ).consume()
        return len(found)

    return graph.write("sequence the outbox", work)


def latest(graph: Graph) -> int:
    """The last number given (0 before the first)."""
    rows = graph.read(
        "outbox position", "MATCH (c:OutboxSequence {id: 'outbox'}) RETURN c.last AS last"
    )
    return int(rows[0]["last"]) if rows else 0


def pending(graph: Graph) -> int:
    """Entries committed but not numbered yet."""
    return int(
        graph.read("outbox unsequenced", "MATCH (e:Unsequenced) RETURN count(e) AS n")[0]["n"]
    )


def read_after(
    graph: Graph,
    after: int,
    limit: int,
    *,
    kinds: Sequence[str] | None = None,
    segment: str | None = None,
) -> list[OutboxRow]:
    """Numbered entries after ``after``, in order, of ``kinds`` (webhook kinds) or of one
    ``segment``'s pages."""
    records = graph.read_collected(
        "read the outbox",
        "MATCH (e:Outbox) WHERE e.seq > $after "
        "  AND ($kinds IS NULL OR " + KIND + " IN $kinds) "
        "  AND ($segment IS NULL OR e.segment = $segment) "
        "WITH e ORDER BY e.seq LIMIT $limit "
        "RETURN collect(" + _ROW + ")",
        {
            "after": after,
            "limit": limit,
            "kinds": list(kinds) if kinds else None,
            "segment": segment,
        },
    )
    return [OutboxRow._make(r) for r in records]


def read_numbered(graph: Graph, seqs: Sequence[int]) -> dict[int, OutboxRow]:
    """The entries with these numbers."""
    records = graph.read_collected(
        "read outbox entries",
        "UNWIND $seqs AS n MATCH (e:Outbox {seq: n}) RETURN collect(" + _ROW + ")",
        {"seqs": list(seqs)},
    )
    return {int(r[0]): OutboxRow._make(r) for r in records}


def identifiers_of(graph: Graph, ids: Sequence[str], limit: int) -> dict[str, list[str]]:
    """Up to ``limit`` identifier keys of each identity, as held now (none once erased)."""
    rows = graph.read(
        "identifiers of identities",
        "UNWIND $ids AS id MATCH (p:Identity {id: id}) "
        "RETURN id, COLLECT { MATCH (i:Identifier)-[:MEMBER_OF]->(p) RETURN i.key "
        "ORDER BY i.key LIMIT $limit } AS keys",
        {"ids": list(ids), "limit": limit},
    )
    return {r["id"]: list(r["keys"]) for r in rows}


_PAGE: dict[str, LiteralString] = {
    "entered": """
        MATCH (s:Segment {id: $segment})-[r:INCLUDES {announce: $refresh}]->(p:Identity)
        WITH r, p LIMIT $size
        REMOVE r.announce
        WITH collect(p.id) AS ids
        """,
    "left": """
        MATCH (s:Segment {id: $segment})-[r:LEFT {announce: $refresh}]->(p:Identity)
        WITH r, p LIMIT $size
        REMOVE r.announce
        WITH collect(p.id) AS ids
        """,
}
_WRITE_PAGE: LiteralString = (
    """
        MATCH (f:SegmentRefresh {id: $refresh})
        WITH f, ids WHERE size(ids) > 0
        SET f.pages = coalesce(f.pages, 0) + 1
        CREATE (:SegmentPage:"""
    + LABELS
    + """ {id: $refresh + '-' + toString(f.pages),
                kind: 'segment.' + $change, change: $change, segment: $segment,
                refresh: $refresh, page: f.pages, identities: ids, at: f.at,
                recorded: datetime.realtime()})
        RETURN size(ids) AS n
"""
)


def announce_segment(graph: Graph, segment: str, refresh: str) -> int:
    """Turn a refresh's tagged membership changes into outbox pages (left first, then
    entered), each page in the transaction that untags its changes; then mark the refresh
    announced. How many changes were announced. Safe to run again after a crash."""
    done = 0
    for change in ("left", "entered"):
        while True:
            rows = graph.run(
                f"announce segment changes ({change})",
                _PAGE[change] + _WRITE_PAGE,
                {
                    "segment": segment,
                    "refresh": refresh,
                    "size": PAGE_IDENTITIES,
                    "change": change,
                },
            )
            if not rows:
                break
            done += int(rows[0]["n"])
    graph.run(
        "segment refresh announced",
        "MATCH (f:SegmentRefresh {id: $refresh}) SET f.announced = true",
        {"refresh": refresh},
    )
    return done


def unannounced_refreshes(graph: Graph, segment: str) -> list[str]:
    """Refreshes of a segment whose changes were not all announced (a crash), oldest first."""
    rows = graph.read(
        "unannounced segment refreshes",
        "MATCH (f:SegmentRefresh {segment: $segment}) WHERE f.announced IS NULL "
        "RETURN f.id AS id ORDER BY f.at",
        {"segment": segment},
    )
    return [r["id"] for r in rows]


def prune(graph: Graph, before: datetime, below: int) -> int:
    """Delete segment pages numbered below ``below`` (every webhook is past them) and
    recorded before ``before``; identity events stay (they are history). How many went."""
    rows = graph.run_autocommit(
        "prune segment pages",
        "MATCH (e:SegmentPage) WHERE e.seq < $below AND e.recorded < $before "
        "CALL (e) { DELETE e } IN TRANSACTIONS OF 10000 ROWS RETURN count(*) AS n",
        {"before": before, "below": below},
    )
    return int(rows[0]["n"]) if rows else 0
