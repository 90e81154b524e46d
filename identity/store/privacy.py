"""Erasure, access and tombstones in the graph (the Cypher of :mod:`identity.privacy.forget`).

An erasure runs in one transaction when the identity is small, else in transactions of
``ERASE_CHUNK`` identifiers, the last one finishing the work (scrubbing, the forgotten
identity, its event). Each transaction writes the tombstones of the identifiers it deletes, so
an erasure stopped half-way has left nothing deleted without its tombstone; running it again
(by identity id) finishes it. Every value travels as a parameter.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from identity.store.driver import Graph
from identity.store.outbox import LABELS

ERASE_CHUNK = 1000
# what a forgotten identity keeps: no profile property, nothing about the person
KEPT_PROPERTIES = ("id", "status", "created_at", "updated_at", "size")


def tombstone_hash(key: str) -> str:
    """The SHA-256 (hex) of an identifier key: all a tombstone keeps of it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def forgotten_among(tx: ManagedTransaction, keys: Iterable[str]) -> set[str]:
    """The ``keys`` whose hash has a tombstone (inside a load's chunk transaction)."""
    hashes = {tombstone_hash(k): k for k in keys}
    if not hashes:
        return set()
    record = tx.run(
        "UNWIND $hashes AS h MATCH (t:Tombstone {hash: h}) RETURN collect(h) AS found",
        hashes=sorted(hashes),
    ).single()
    return {hashes[h] for h in (record["found"] if record else [])}


def tombstoned(graph: Graph, key: str) -> str | None:
    """When ``key`` was erased (ISO time), or None."""
    rows = graph.read(
        "read tombstone",
        "MATCH (t:Tombstone {hash: $hash}) RETURN toString(t.at) AS at",
        {"hash": tombstone_hash(key)},
    )
    return str(rows[0]["at"]) if rows else None


def survivor(graph: Graph, id_: str) -> tuple[str, str] | None:
    """The identity ``id_`` is now (its survivor when merged) as (id, status), or None."""
    rows = graph.read(
        "find identity to erase",
        """
        MATCH (p:Identity {id: $id})
        OPTIONAL MATCH (p)-[:MERGED_INTO*1..50]->(w:Identity)
        WHERE NOT EXISTS { (w)-[:MERGED_INTO]->() }
        WITH coalesce(w, p) AS s LIMIT 1
        RETURN s.id AS id, s.status AS status
        """,
        {"id": id_},
    )
    return (rows[0]["id"], rows[0]["status"]) if rows else None


def identity_holding(graph: Graph, key: str) -> tuple[str, str] | None:
    """The identity holding identifier ``key`` as (id, status), or None."""
    rows = graph.read(
        "find identity of identifier",
        "MATCH (:Identifier {key: $key})-[:MEMBER_OF]->(p:Identity) "
        "RETURN p.id AS id, p.status AS status",
        {"key": key},
    )
    return (rows[0]["id"], rows[0]["status"]) if rows else None


@dataclass
class ErasurePlan:
    """What an erasure deletes and scrubs, read before it starts."""

    identity: str
    status: str
    members: list[tuple[str, str]]  # (key, value)
    losers: list[str]  # identity ids merged into it, at any depth
    # texts naming erased keys: (kind, id, text), kind "event" | "shared"
    texts: list[tuple[str, str, str]] = field(default_factory=list)
    steward_events: list[str] = field(default_factory=list)  # events with erased `keys`
    quarantines: list[str] = field(default_factory=list)  # quarantines sampling erased keys


def plan_erasure(graph: Graph, identity: str) -> ErasurePlan | None:
    """Read what erasing ``identity`` touches. Texts that may name an erased key (event
    reasons, shared verdicts) are found by one scan of the event log and of the shared
    identifiers (through their index): seconds per million events."""
    rows = graph.read(
        "read identity to erase",
        """
        MATCH (p:Identity {id: $id})
        RETURN p.status AS status,
               COLLECT { MATCH (p)<-[:MEMBER_OF]-(i:Identifier) RETURN [i.key, i.value] }
                 AS members,
               COLLECT { MATCH (l:Identity)-[:MERGED_INTO*1..50]->(p) RETURN DISTINCT l.id }
                 AS losers
        """,
        {"id": identity},
    )
    if not rows:
        return None
    row = rows[0]
    plan = ErasurePlan(
        identity,
        row["status"],
        [(k, v) for k, v in row["members"]],
        list(row["losers"]),
    )
    keys = [k for k, _ in plan.members]
    if not keys:
        return plan
    params = {"keys": keys}
    for kind, query in (
        (
            "event",
            "MATCH (e:IdentityEvent) WHERE e.reason IS NOT NULL "
            "AND any(k IN $keys WHERE e.reason CONTAINS k) RETURN collect([e.id, e.reason])",
        ),
        (
            "shared",
            "MATCH (i:Identifier) WHERE i.shared IS NOT NULL AND NOT i.key IN $keys "
            "AND any(k IN $keys WHERE i.shared_reason CONTAINS k) "
            "RETURN collect([i.key, i.shared_reason])",
        ),
    ):
        found = graph.read_collected(f"find {kind} texts naming erased keys", query, params)
        plan.texts.extend((kind, ident, text) for ident, text in found)
    plan.steward_events = graph.read_collected(
        "find steward events naming erased keys",
        "MATCH (e:IdentityEvent) WHERE e.kind = 'steward' AND any(k IN e.keys WHERE k IN $keys) "
        "RETURN collect(e.id)",
        params,
    )
    plan.quarantines = graph.read_collected(
        "find quarantines sampling erased keys",
        "MATCH (q:Quarantine) WHERE any(k IN q.sample WHERE k IN $keys) RETURN collect(q.id)",
        params,
    )
    return plan


@dataclass
class Erased:
    identifiers: int = 0
    links: int = 0
    neighbours: int = 0  # identifiers that lost a link, marked for the resolve


# Neighbours first (while the links exist), then the tombstones, then the identifiers with
# every relationship they have: LINKED, MEMBER_OF, IN_SEGMENT, EXPORTED.
_ERASE_CHUNK: LiteralString = """
UNWIND $keys AS k
MATCH (i:Identifier {key: k})
WITH collect(i) AS gone
CALL (gone) {
  UNWIND gone AS i
  MATCH (i)-[r:LINKED]-()
  RETURN count(DISTINCT r) AS links
}
CALL (gone) {
  UNWIND gone AS i
  MATCH (i)-[:LINKED]-(o:Identifier) WHERE NOT o IN gone
  WITH DISTINCT o
  SET o.batch = $batch, o.touched = $batch
  RETURN count(o) AS neighbours
}
CALL (gone) {
  UNWIND gone AS i
  MERGE (t:Tombstone {hash: i.tombstone})
  ON CREATE SET t.at = datetime({epochMillis: $at})
}
CALL (gone) {
  UNWIND gone AS i
  DETACH DELETE i
}
RETURN size(gone) AS identifiers, links, neighbours
"""

# the tombstone hash travels with the key; it is set on the node just before deleting it
_SET_HASHES: LiteralString = """
UNWIND $rows AS r
MATCH (i:Identifier {key: r.key})
SET i.tombstone = r.hash
"""

_BATCH: LiteralString = """
MERGE (s:Source {name: 'privacy'})
ON CREATE SET s.party = 'first', s.created_at = datetime({epochMillis: $at})
MERGE (b:Batch {id: $batch})
ON CREATE SET b.source = 'privacy', b.party = 'first', b.kind = 'privacy',
              b.status = 'completed', b.read = 0, b.accepted = 0, b.rejected = 0,
              b.started_at = datetime({epochMillis: $at}),
              b.finished_at = datetime({epochMillis: $at}), b.event = $event
MERGE (b)-[:FROM]->(s)
"""

_FINISH: tuple[LiteralString, ...] = (
    # the identities merged into it, with their segment memberships and merge links
    "UNWIND $losers AS id MATCH (l:Identity {id: id}) DETACH DELETE l",
    # the identity keeps its id and history, nothing about the person
    """
    MATCH (p:Identity {id: $identity})
    CALL (p) {
      // its segment memberships end now, as "left": a copy synced from changes(since) learns
      // to remove the person (the relationship holds only the time)
      MATCH (p)<-[r:INCLUDES]-(s:Segment)
      MERGE (s)-[l:LEFT]->(p)
      SET l.at = datetime({epochMillis: $at})
      DELETE r
    }
    SET p = {id: p.id, created_at: p.created_at, status: 'forgotten', size: 0,
             updated_at: datetime({epochMillis: $at})}
    CREATE (e:IdentityEvent:"""
    + LABELS
    + """ {id: $event, kind: 'forgotten', reason: $reason, actor: $actor,
                             at: datetime({epochMillis: $at}), identifiers: $identifiers,
                             batches: [$batch], recorded: datetime.realtime()})
           -[:AFFECTED {role: 'forgotten'}]->(p)
    """,
    """
    UNWIND $texts AS t
    MATCH (e:IdentityEvent {id: t.id}) WHERE t.kind = 'event'
    SET e.reason = t.text
    """,
    """
    UNWIND $texts AS t
    MATCH (i:Identifier {key: t.id}) WHERE t.kind = 'shared'
    SET i.shared_reason = t.text
    """,
    """
    UNWIND $steward AS id
    MATCH (e:IdentityEvent {id: id})
    SET e.keys = [k IN e.keys WHERE NOT k IN $keys],
        e.erased_keys = coalesce(e.erased_keys, 0) + size([k IN e.keys WHERE k IN $keys])
    """,
    """
    UNWIND $quarantines AS id
    MATCH (q:Quarantine {id: id})
    SET q.sample = [k IN q.sample WHERE NOT k IN $keys]
    """,
    # device reviews naming an erased key go (their reason names it too); the next resolve
    # makes the call again over what is left, if it still holds
    """
    MATCH (r:DeviceReview) WHERE any(k IN r.device + r.kept + r.other WHERE k IN $keys)
    DETACH DELETE r
    """,
    # match reviews of an erased record go (their scores are about the person, the steward's
    # reason may name them)
    """
    MATCH (v:MatchReview)
    WHERE COUNT { (v)-[:PAIR]->() } < 2
       OR EXISTS { (v)-[:PAIR]->(i:Identifier) WHERE i.key IN $keys }
    DETACH DELETE v
    """,
    # the keys the chunks of loads not yet resolved keep (resolved ones keep none)
    """
    MATCH (b:Batch) WHERE b.resolved_at IS NULL
    MATCH (c:BatchChunk {batch: b.id}) WHERE any(k IN c.keys WHERE k IN $keys)
    SET c.keys = [k IN c.keys WHERE NOT k IN $keys]
    """,
)


def erase(
    graph: Graph,
    plan: ErasurePlan,
    texts: Sequence[tuple[str, str, str]],
    *,
    reason: str,
    actor: str,
    at_ms: int,
    event: str,
    batch: str,
) -> Erased:
    """Delete the plan's identifiers (with tombstones) and finish the erasure: ``texts`` are
    the plan's texts with the erased keys scrubbed. See the module docstring."""
    keys = [k for k, _ in plan.members]
    chunks = [keys[i : i + ERASE_CHUNK] for i in range(0, len(keys), ERASE_CHUNK)] or [[]]
    base: dict[str, Any] = {"at": at_ms, "batch": batch, "event": event}
    finish: dict[str, Any] = {
        **base,
        "identity": plan.identity,
        "losers": plan.losers,
        "reason": reason,
        "actor": actor,
        "identifiers": len(keys),
        "texts": [{"kind": k, "id": i, "text": t} for k, i, t in texts],
        "steward": plan.steward_events,
        "quarantines": plan.quarantines,
        "keys": keys,
    }
    done = Erased()

    def work(tx: ManagedTransaction, chunk: list[str], first: bool, last: bool) -> None:
        if first:
            tx.run(_BATCH, base).consume()
        if chunk:
            tx.run(
                _SET_HASHES, {"rows": [{"key": k, "hash": tombstone_hash(k)} for k in chunk]}
            ).consume()
            record = tx.run(_ERASE_CHUNK, {**base, "keys": chunk}).single()
            if record is not None:
                done.identifiers += record["identifiers"]
                done.links += record["links"]
                done.neighbours += record["neighbours"]
        if last:
            for statement in _FINISH:
                tx.run(statement, finish).consume()

    for n, chunk in enumerate(chunks):
        graph.write(
            f"erase identity {plan.identity}",
            functools.partial(work, chunk=chunk, first=n == 0, last=n == len(chunks) - 1),
        )
    return done


# -- access: everything held about one identity ---------------------------------------------

_EXPORT: LiteralString = """
MATCH (p:Identity {id: $id})
RETURN properties(p) AS identity,
  COLLECT { MATCH (l:Identity)-[:MERGED_INTO*1..50]->(p) RETURN DISTINCT l.id } AS merged,
  COLLECT {
    MATCH (p)<-[:MEMBER_OF]-(i:Identifier)
    RETURN {properties: properties(i), labels: labels(i),
      links: COLLECT {
        MATCH (i)-[r:LINKED]-(o:Identifier)
        RETURN {other: o.key, properties: properties(r)} ORDER BY o.key },
      dmp_segments: COLLECT {
        MATCH (i)-[m:IN_SEGMENT]->(s:DmpSegment)
        RETURN {name: s.name, properties: properties(m)} ORDER BY s.name },
      audiences: COLLECT {
        MATCH (a:Audience)-[x:EXPORTED]->(i)
        RETURN {audience: a.id, segment: a.segment, run: x.run} ORDER BY a.id }
    } ORDER BY i.key
  } AS identifiers,
  COLLECT {
    MATCH (s:Segment)-[r:INCLUDES]->(p)
    RETURN {id: s.id, name: s.name, since: r.since} ORDER BY s.name
  } AS segments,
  COLLECT {
    MATCH (x:Identity)-[:MERGED_INTO*0..50]->(p)
    MATCH (e:IdentityEvent)-[a:AFFECTED]->(x)
    RETURN {properties: properties(e), identity: x.id, role: a.role} ORDER BY e.at, e.id
  } AS history
"""


def read_export(graph: Graph, identity: str) -> dict[str, Any] | None:
    """Everything stored about ``identity`` (raw driver values), or None."""
    rows = graph.read("export profile", _EXPORT, {"id": identity})
    return rows[0] if rows else None


def read_batches(graph: Graph, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The lineage of the given batches (those that exist)."""
    return [
        r["b"]
        for r in graph.read(
            "read batches of a profile",
            """
            UNWIND $ids AS id
            MATCH (b:Batch {id: id})
            RETURN b {.id, .source, .kind, .file, .started_at, .finished_at} AS b
            ORDER BY b.started_at, b.id
            """,
            {"ids": list(ids)},
        )
    ]
