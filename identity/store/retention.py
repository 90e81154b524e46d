"""The retention purge in the graph (the Cypher of :mod:`identity.privacy.retention`).

Times travel as epoch milliseconds: ``$ttl`` maps an identifier type to its TTL cutoff (now
minus the type's ``ttl_days``), ``$kept`` maps a source to its retention cutoff (now minus its
``retention_days``); a type or source without one is absent from the map. Each step bounds its
scan through an index on ``last_seen`` where there is one (``$bound``: the latest cutoff) and
deletes in transactions of ``_ROWS`` rows (bounded memory). Whatever loses something is marked
touched (``i.touched``) for the incremental resolve that follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from identity.store.driver import Graph
from identity.store.outbox import LABELS

_ROWS = 5000

# A third-party link past the TTL of its types (the shorter one, as resolution reads it).
_THIRD_EXPIRED: LiteralString = """(r.party = 'third' AND NOT coalesce(r.forced, false)
  AND any(c IN [$ttl[startNode(r).type], $ttl[endNode(r).type]] WHERE c IS NOT NULL
          AND r.last_seen.epochMillis < c))"""
# A link whose every source has a retention that its last sighting is past.
# A steward's rejection of a match (a cut matched link) is a decision, kept like a forced link.
_RETENTION_EXPIRED: LiteralString = """(size(r.sources) > 0 AND NOT coalesce(r.forced, false)
  AND NOT (coalesce(r.matched, false) AND coalesce(r.cut, false))
  AND all(s IN r.sources WHERE $kept[s] IS NOT NULL AND r.last_seen.epochMillis < $kept[s]))"""

LINK_STEPS: dict[str, LiteralString] = {
    "third_party_links": _THIRD_EXPIRED,
    "retention_links": _RETENTION_EXPIRED,
}

# An identifier seen only by third-party sources, past its type's TTL, with no link that
# outlives the purge.
_THIRD_IDENTIFIER: LiteralString = (
    """(size(i.sources) > 0 AND all(s IN i.sources WHERE s IN $third)
  AND $ttl[i.type] IS NOT NULL AND i.last_seen.epochMillis < $ttl[i.type]
  AND NOT EXISTS { MATCH (i)-[r:LINKED]-() WHERE NOT ("""
    + _THIRD_EXPIRED
    + " OR "
    + _RETENTION_EXPIRED
    + ")})"
)
# An identifier whose every source has a retention its last sighting is past.
_RETENTION_IDENTIFIER: LiteralString = """(size(i.sources) > 0
  AND all(s IN i.sources WHERE $kept[s] IS NOT NULL AND i.last_seen.epochMillis < $kept[s]))"""

IDENTIFIER_STEPS: dict[str, LiteralString] = {
    "third_party_identifiers": _THIRD_IDENTIFIER,
    "retention_identifiers": _RETENTION_IDENTIFIER,
}

_SEGMENTS_MATCH: LiteralString = """
MATCH (i:Identifier)-[m:IN_SEGMENT]->(:DmpSegment)
WHERE m.expires_at < datetime({epochMillis: $now})
"""
_TRAITS_MATCH: LiteralString = """
MATCH (i:Identifier)
WITH i, [k IN keys(i) WHERE k STARTS WITH 'trait_at.'
         AND $kept[split(k, '.')[1]] IS NOT NULL
         AND i[k] < datetime({epochMillis: $kept[split(k, '.')[1]]})] AS old
WHERE size(old) > 0
"""


def _links_match(expired: LiteralString) -> LiteralString:
    return (
        """
        MATCH (a:Identifier)-[r:LINKED]->(b:Identifier)
        WHERE r.last_seen < datetime({epochMillis: $bound}) AND """
        + expired
    )


def _identifiers_match(expired: LiteralString) -> LiteralString:
    return (
        """
        MATCH (i:Identifier)
        WHERE i.last_seen < datetime({epochMillis: $bound}) AND """
        + expired
    )


def third_party_sources(graph: Graph) -> list[str]:
    """The sources loaded as third-party."""
    return graph.read_collected(
        "read third-party sources",
        "MATCH (s:Source) WHERE s.party = 'third' RETURN collect(s.name)",
    )


def begin(graph: Graph, batch: str, at_ms: int) -> None:
    """The completed ``(:Batch {source: 'purge'})`` the purge marks identifiers with."""
    graph.run(
        "record purge batch",
        """
        MERGE (s:Source {name: 'purge'})
        ON CREATE SET s.party = 'first', s.created_at = datetime({epochMillis: $at})
        CREATE (b:Batch {id: $batch, source: 'purge', party: 'first', kind: 'purge',
                         status: 'completed', read: 0, accepted: 0, rejected: 0,
                         started_at: datetime({epochMillis: $at}),
                         finished_at: datetime({epochMillis: $at})})-[:FROM]->(s)
        """,
        {"batch": batch, "at": at_ms},
    )


def heartbeat(graph: Graph, run: str) -> None:
    """Keep the resolve lock the purge holds from looking abandoned."""
    graph.run(
        "purge heartbeat",
        "MATCH (l:ResolveLock {id: 'resolve'}) WHERE l.run = $run SET l.heartbeat = datetime()",
        {"run": run},
    )


def count(graph: Graph, step: str, params: dict[str, Any]) -> int:
    """How many rows ``step`` would delete (a dry run)."""
    if step == "dmp_segments":
        query: LiteralString = _SEGMENTS_MATCH + " RETURN count(m) AS n"
    elif step == "traits":
        query = _TRAITS_MATCH + " RETURN sum(size(old)) AS n"
    elif step in LINK_STEPS:
        query = _links_match(LINK_STEPS[step]) + " RETURN count(r) AS n"
    else:
        query = _identifiers_match(IDENTIFIER_STEPS[step]) + " RETURN count(i) AS n"
    rows = graph.read(f"count purge {step}", query, params)
    return int(rows[0]["n"] or 0) if rows else 0


def delete(graph: Graph, step: str, params: dict[str, Any]) -> int:
    """Delete what ``step`` purges, in transactions of ``_ROWS`` rows; the number deleted
    (traits: the number of trait values)."""
    if step == "dmp_segments":
        query: LiteralString = (
            _SEGMENTS_MATCH
            + """
            CALL (i, m) { DELETE m SET i.batch = $batch, i.touched = $batch }
              IN TRANSACTIONS OF 5000 ROWS
            RETURN count(*) AS n
            """
        )
    elif step == "traits":
        query = (
            _TRAITS_MATCH
            + """
            CALL (i, old) {
              FOREACH (k IN old | SET i[k] = null, i['trait.' + substring(k, 9)] = null)
              SET i.batch = $batch, i.touched = $batch
            } IN TRANSACTIONS OF 5000 ROWS
            RETURN sum(size(old)) AS n
            """
        )
    elif step in LINK_STEPS:
        query = (
            _links_match(LINK_STEPS[step])
            + """
            CALL (a, r, b) {
              DELETE r
              SET a.batch = $batch, b.batch = $batch, a.touched = $batch, b.touched = $batch
            }
              IN TRANSACTIONS OF 5000 ROWS
            RETURN count(*) AS n
            """
        )
    else:
        raise ValueError(f"{step}: identifiers go through delete_identifiers")
    rows = graph.run_autocommit(f"purge {step}", query, params)
    return int(rows[0]["n"] or 0) if rows else 0


_DELETE_IDENTIFIERS: LiteralString = """
WITH i LIMIT $limit
OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
WITH i, p
CALL (i) { MATCH (i)-[:LINKED]-(o:Identifier) SET o.batch = $batch, o.touched = $batch }
CALL (i, p) {
  MATCH (p)<-[:MEMBER_OF]-(m:Identifier) WHERE m <> i SET m.batch = $batch, m.touched = $batch
}
DETACH DELETE i
RETURN count(*) AS n, collect(DISTINCT p.id) AS identities
"""

# An identity left without identifiers keeps its id and history, nothing else.
_EMPTIED: LiteralString = (
    """
UNWIND $ids AS id
MATCH (p:Identity {id: id})
WHERE p.status = 'active' AND NOT EXISTS { (p)<-[:MEMBER_OF]-() }
SET p = {id: p.id, created_at: p.created_at, status: 'purged', size: 0,
         updated_at: datetime({epochMillis: $at})}
CREATE (:IdentityEvent:"""
    + LABELS
    + """ {id: replace(randomUUID(), '-', ''), kind: 'purged',
                        reason: 'every identifier expired (retention and third-party TTL)',
                        actor: 'idgraph purge', at: datetime({epochMillis: $at}),
                        batches: [$batch], recorded: datetime.realtime()})
       -[:AFFECTED {role: 'purged'}]->(p)
RETURN count(p) AS n
"""
)


def delete_identifiers(
    graph: Graph, step: str, params: dict[str, Any], between: Callable[[], None]
) -> tuple[int, int]:
    """Delete the identifiers ``step`` purges, ``_ROWS`` per transaction, calling ``between``
    after each; their neighbours and co-members are marked touched, and an identity left
    without identifiers is marked ``purged`` in the same transaction. Returns (identifiers
    deleted, identities emptied)."""
    query = _identifiers_match(IDENTIFIER_STEPS[step]) + _DELETE_IDENTIFIERS
    deleted = emptied = 0

    def work(tx: ManagedTransaction) -> tuple[int, int]:
        record = tx.run(query, {**params, "limit": _ROWS}).single()
        if record is None or not record["n"]:
            return 0, 0
        marked = tx.run(_EMPTIED, {**params, "ids": record["identities"]}).single()
        return int(record["n"]), int(marked["n"]) if marked else 0

    while True:
        n, m = graph.write(f"purge {step}", work, query=query, parameters=params)
        deleted, emptied = deleted + n, emptied + m
        between()
        if n < _ROWS:
            return deleted, emptied
