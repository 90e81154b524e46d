"""Writing observations: batched ``UNWIND`` writes, one transaction per chunk, with lineage.

Why it is fast: a chunk of observations is first aggregated in memory (one row per
identifier, per unordered pair, per trait set and per event name), so each Cypher statement
touches every node and relationship once per chunk, through the uniqueness constraints.

Why it is exact: a chunk's writes, its Segment ``messageId`` marks, a ``(:BatchChunk)``
claim and the chunk's counts (added to the batch's) commit in one transaction. A load killed
half-way left whole chunks only; re-running it skips the claimed ones and writes the rest,
ending in exactly the state of one clean load. A ``messageId`` already seen (in this load or
an earlier one) is counted as a duplicate and writes nothing.

Erased identifiers stay erased: an identifier whose key's SHA-256 has a ``(:Tombstone)`` (see
:mod:`identity.privacy.forget`) is not written again; it is counted as a rejected value with reason
``forgotten``, and a record left with no identifier as a rejected record. The check costs
nothing while no tombstone exists: the chunk's claim asks whether any does.

Why chunks may be written concurrently (Neo4j then uses both cores): every write commutes.
Counts add, first/last seen take the min/max, traits keep the latest observation (ties broken
by value), and a link's evidence keeps its earliest references in a total order. Property
reads that feed a ``SET`` come after the statement's first write to that node, which takes
its lock (Neo4j locks before a ``SET`` that reads the property it writes), so no update is
lost; ``MERGE`` on unique keys serializes creations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from neo4j import ManagedTransaction

from identity.model import Observation, Party, Rejection
from identity.store.driver import Graph
from identity.store.privacy import forgotten_among
from identity.store.rows import DUPLICATE, EVIDENCE_CAP, Counts, aggregate, suppress_forgotten


@dataclass(frozen=True)
class BatchInfo:
    id: str
    source: str
    party: Party
    file: str
    sha256: str
    kind: str
    chunk_size: int
    started_at: datetime


@dataclass(frozen=True)
class ChunkOutcome:
    """What a chunk's write refused: duplicate ``messageId``s (whole records), and erased
    identifiers (records left with none, and the values dropped from the others)."""

    duplicates: list[Observation]
    forgotten_records: list[Rejection]
    forgotten_values: list[Rejection]


@dataclass(frozen=True)
class BatchState:
    status: str
    done: frozenset[int]  # indices of the chunks already committed
    chunk_size: int


# Property writes only where a value changes: an unchanged SET still costs a write.
# ``i.batch`` marks the identifier as touched by this batch: the next incremental resolve finds
# what to recompute through the index on it, without scanning the graph.
# Event aggregates live on the identifier as event_count.<name>, event_first.<name> and
# event_last.<name>; traits as trait.<source>.<name> with their time in trait_at.<source>.<name>
# (latest observation wins per source).
_WRITE_IDENTIFIERS = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first}) AS first, datetime({epochMillis: row.last}) AS last
MERGE (i:Identifier {key: row.key})
ON CREATE SET i.type = row.type, i.value = row.value, i.first_seen = first, i.last_seen = last,
              i.seen = row.seen, i.sources = [$source], i:$(row.label), i.batch = $batch
ON MATCH SET i.seen = i.seen + row.seen, i.batch = $batch
FOREACH (_ IN CASE WHEN row.hashed AND i.hashed IS NULL THEN [1] ELSE [] END |
  SET i.hashed = true)
FOREACH (_ IN CASE WHEN first < i.first_seen THEN [1] ELSE [] END | SET i.first_seen = first)
FOREACH (_ IN CASE WHEN last > i.last_seen THEN [1] ELSE [] END | SET i.last_seen = last)
FOREACH (_ IN CASE WHEN $source IN i.sources THEN [] ELSE [1] END |
  SET i.sources = i.sources + $source)
FOREACH (ev IN row.events |
  SET i['event_count.' + ev.name] = coalesce(i['event_count.' + ev.name], 0) + ev.count)
FOREACH (ev IN [e IN row.events WHERE i['event_first.' + e.name] IS NULL
                OR datetime({epochMillis: e.first}) < i['event_first.' + e.name]] |
  SET i['event_first.' + ev.name] = datetime({epochMillis: ev.first}))
FOREACH (ev IN [e IN row.events WHERE i['event_last.' + e.name] IS NULL
                OR datetime({epochMillis: e.last}) > i['event_last.' + e.name]] |
  SET i['event_last.' + ev.name] = datetime({epochMillis: ev.last}))
FOREACH (t IN [t IN row.traits WHERE i['trait_at.' + $source + '.' + t.name] IS NULL
               OR i['trait_at.' + $source + '.' + t.name] < datetime({epochMillis: t.at})
               OR (i['trait_at.' + $source + '.' + t.name] = datetime({epochMillis: t.at})
                   AND toString(i['trait.' + $source + '.' + t.name]) < toString(t.value))] |
  SET i['trait.' + $source + '.' + t.name] = t.value,
      i['trait_at.' + $source + '.' + t.name] = datetime({epochMillis: t.at}))
"""

# Most identifiers of a chunk carry no event or trait: they take the statement without those
# clauses, which costs a quarter less per row.
_WRITE_IDENTIFIERS_PLAIN = _WRITE_IDENTIFIERS[: _WRITE_IDENTIFIERS.index("FOREACH (ev IN")]

# "first" < "second" < "third": the strongest party seen is the smallest string. Evidence
# strings start with their time: the list keeps the earliest ones whatever the load order. A
# link just created has r.count = row.count: only a matched one can take more evidence.
_WRITE_LINKS = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first}) AS first, datetime({epochMillis: row.last}) AS last
MATCH (a:Identifier {key: row.a})
MATCH (b:Identifier {key: row.b})
MERGE (a)-[r:LINKED]->(b)
ON CREATE SET r.first_seen = first, r.last_seen = last, r.count = row.count,
              r.sources = [$source], r.party = $party, r.evidence = row.evidence
ON MATCH SET r.count = r.count + row.count
FOREACH (_ IN CASE WHEN first < r.first_seen THEN [1] ELSE [] END | SET r.first_seen = first)
FOREACH (_ IN CASE WHEN last > r.last_seen THEN [1] ELSE [] END | SET r.last_seen = last)
FOREACH (_ IN CASE WHEN $source IN r.sources THEN [] ELSE [1] END |
  SET r.sources = r.sources + $source)
FOREACH (_ IN CASE WHEN $party < r.party THEN [1] ELSE [] END | SET r.party = $party)
FOREACH (_ IN CASE WHEN r.count > row.count
                        AND (size(r.evidence) < $cap OR row.evidence[0] < last(r.evidence))
                   THEN [1] ELSE [] END |
  SET r.evidence = COLLECT {
    UNWIND r.evidence + row.evidence AS e WITH DISTINCT e RETURN e ORDER BY e LIMIT $cap
  })
"""

_WRITE_DMP_SEGMENTS = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first}) AS first, datetime({epochMillis: row.last}) AS last,
     datetime({epochMillis: row.expires}) AS expires
MATCH (i:Identifier {key: row.key})
MERGE (s:DmpSegment {name: row.name})
MERGE (i)-[m:IN_SEGMENT]->(s)
ON CREATE SET m.first_seen = first, m.last_seen = last, m.expires_at = expires,
              m.source = $source
ON MATCH SET m.first_seen = CASE WHEN first < m.first_seen THEN first ELSE m.first_seen END,
             m.last_seen = CASE WHEN last > m.last_seen THEN last ELSE m.last_seen END,
             m.expires_at = CASE WHEN expires > m.expires_at THEN expires
                                 ELSE m.expires_at END
"""


class BatchWriter:
    """Writes one batch's chunks; see the module docstring for the guarantees."""

    def __init__(self, graph: Graph, batch: BatchInfo) -> None:
        self.graph = graph
        self.batch = batch

    def begin(self) -> BatchState:
        """Create the batch (status ``running``), or find it as a previous run left it."""
        b = self.batch
        rows = self.graph.run(
            "begin batch",
            """
            MERGE (s:Source {name: $source})
            ON CREATE SET s.party = $party, s.created_at = $started_at
            MERGE (b:Batch {id: $id})
            ON CREATE SET b.source = $source, b.party = $party, b.file = $file,
                          b.sha256 = $sha256, b.kind = $kind, b.status = 'running',
                          b.started_at = $started_at, b.chunk_size = $chunk_size,
                          b.chunks_done = 0, b.read = 0, b.accepted = 0, b.rejected = 0,
                          b.rejected_values = 0
            ON MATCH SET b.attempts = CASE WHEN b.status = 'completed' THEN b.attempts
                                    ELSE coalesce(b.attempts, 1) + 1 END
            MERGE (b)-[:FROM]->(s)
            RETURN b.status AS status, b.chunk_size AS chunk_size,
                   COLLECT { MATCH (c:BatchChunk {batch: $id}) RETURN c.index } AS done
            """,
            {
                "id": b.id,
                "source": b.source,
                "party": b.party,
                "file": b.file,
                "sha256": b.sha256,
                "kind": b.kind,
                "chunk_size": b.chunk_size,
                "started_at": b.started_at,
            },
        )
        row = rows[0]
        return BatchState(row["status"], frozenset(row["done"]), int(row["chunk_size"]))

    def write_chunk(
        self, index: int, observations: Sequence[Observation], counts: Counts
    ) -> ChunkOutcome | None:
        """Write chunk ``index`` with its own counts in one transaction.

        Returns what was refused (duplicate ``messageId``s and erased identifiers, their
        counts moved from accepted to rejected as committed), or None when the chunk was
        already written.
        """
        return self.graph.write(
            f"write chunk {index} of batch {self.batch.id}",
            lambda tx: self._write_chunk(tx, index, observations, counts),
        )

    def _write_chunk(
        self,
        tx: ManagedTransaction,
        index: int,
        observations: Sequence[Observation],
        counts: Counts,
    ) -> ChunkOutcome | None:
        batch = self.batch
        claim = tx.run(
            "MERGE (c:BatchChunk {key: $key}) ON CREATE SET c.batch = $batch, c.index = $index, "
            "c.new = true ON MATCH SET c.new = false "
            "RETURN c.new AS new, EXISTS { MATCH (:Tombstone) } AS tombstones",
            key=f"{batch.id}#{index}",
            batch=batch.id,
            index=index,
        ).single()
        if claim is None or not claim["new"]:
            return None
        kept, duplicates = self._drop_seen_messages(tx, observations, index)
        counts = counts.copy()
        if duplicates:
            counts.accepted -= len(duplicates)
            counts.rejected += len(duplicates)
            counts.reasons[DUPLICATE] += len(duplicates)
        records: list[Rejection] = []
        values: list[Rejection] = []
        if claim["tombstones"]:
            erased = forgotten_among(tx, {i.key for o in kept for i in o.identifiers})
            if erased:
                kept, records, values = suppress_forgotten(kept, erased, counts)
        rows = aggregate(kept, batch.id)
        common = {"batch": batch.id, "source": batch.source, "party": batch.party}
        plain = [r for r in rows.identifiers if not (r["events"] or r["traits"])]
        stated = [r for r in rows.identifiers if r["events"] or r["traits"]]
        for query, data in (
            (_WRITE_IDENTIFIERS_PLAIN, plain),
            (_WRITE_IDENTIFIERS, stated),
            (_WRITE_LINKS, rows.links),
            (_WRITE_DMP_SEGMENTS, rows.dmp_segments),
        ):
            if data:
                tx.run(query, {"rows": data, "cap": EVIDENCE_CAP, **common}).consume()
        tx.run(
            """
            MATCH (b:Batch {id: $id})
            SET b.chunks_done = b.chunks_done + 1, b.read = b.read + $read,
                b.accepted = b.accepted + $accepted, b.rejected = b.rejected + $rejected,
                b.rejected_values = b.rejected_values + $rejected_values
            FOREACH (code IN keys($reasons) |
              SET b['rejected.' + code] = coalesce(b['rejected.' + code], 0) + $reasons[code])
            FOREACH (code IN keys($value_reasons) |
              SET b['rejected_value.' + code] =
                  coalesce(b['rejected_value.' + code], 0) + $value_reasons[code])
            """,
            id=batch.id,
            read=counts.read,
            accepted=counts.accepted,
            rejected=counts.rejected,
            rejected_values=sum(counts.value_reasons.values()),
            reasons=dict(counts.reasons),
            value_reasons=dict(counts.value_reasons),
        ).consume()
        return ChunkOutcome(duplicates, records, values)

    def _drop_seen_messages(
        self, tx: ManagedTransaction, observations: Sequence[Observation], index: int
    ) -> tuple[list[Observation], list[Observation]]:
        ids = sorted({o.message_id for o in observations if o.message_id})
        if not ids:
            return list(observations), []
        token = f"{self.batch.id}#{index}"
        fresh_ids = {
            record["id"]
            for record in tx.run(
                "UNWIND $ids AS id MERGE (m:SeenMessage {id: id}) ON CREATE SET m.chunk = $token "
                "WITH id, m WHERE m.chunk = $token RETURN id",
                ids=ids,
                token=token,
            )
        }
        kept: list[Observation] = []
        duplicates: list[Observation] = []
        for obs in observations:
            mid = obs.message_id
            if mid is None:
                kept.append(obs)
            elif mid in fresh_ids:
                fresh_ids.discard(mid)
                kept.append(obs)
            else:
                duplicates.append(obs)
        return kept, duplicates

    def committed_counts(self) -> Counts:
        """The batch's counts as committed so far."""
        rows = self.graph.read(
            "read batch counts",
            "MATCH (b:Batch {id: $id}) RETURN properties(b) AS p",
            {"id": self.batch.id},
        )
        p = rows[0]["p"]
        return Counts(
            read=int(p.get("read", 0)),
            accepted=int(p.get("accepted", 0)),
            rejected=int(p.get("rejected", 0)),
            reasons=Counter(
                {
                    k.removeprefix("rejected."): int(v)
                    for k, v in p.items()
                    if k.startswith("rejected.")
                }
            ),
            value_reasons=Counter(
                {
                    k.removeprefix("rejected_value."): int(v)
                    for k, v in p.items()
                    if k.startswith("rejected_value.")
                }
            ),
        )

    def finish(self, finished_at: datetime) -> None:
        """Mark the batch completed."""
        self.graph.run(
            "finish batch",
            "MATCH (b:Batch {id: $id}) SET b.status = 'completed', b.finished_at = $at",
            {"id": self.batch.id, "at": finished_at},
        )

    def fail(self, error: str, at: datetime) -> None:
        """Mark the batch failed; a re-run of the same input resumes it."""
        self.graph.run(
            "mark batch failed",
            "MATCH (b:Batch {id: $id}) WHERE b.status <> 'completed' "
            "SET b.status = 'failed', b.error = $error, b.failed_at = $at",
            {"id": self.batch.id, "error": error[:2000], "at": at},
        )
