"""Writing a batch: its lineage, its chunks (each one transaction), its counts.

Why it is fast: a chunk of observations is aggregated in memory (one row per identifier, per
unordered pair and per DMP membership), its existing identifiers are locked and read once,
and what changes is computed in Python and written by internal id: a handful of statements
per chunk, each a row per distinct identifier or pair (:mod:`identity.store.chunk`).

Why it is exact: a chunk's writes, a ``(:BatchChunk)`` claim and the chunk's counts (added to
the batch's) commit in one transaction. A load killed half-way left whole chunks only;
re-running it skips the claimed ones and writes the rest, ending in exactly the state of one
clean load.

Duplicates: a record whose Segment ``messageId`` was loaded before is counted as a duplicate
and writes nothing. Each identifier keeps the codes of the messages it was the primary
identifier of (the userId, else the anonymousId: a retried message is identical, so it has
the same one), over the last ``IDGRAPH_DEDUP_DAYS`` days of its events: a retry older than
that, or one that reaches another primary, is not caught. The same file loaded again is
always caught, by its SHA-256.

Erased identifiers stay erased: an identifier whose key's SHA-256 has a ``(:Tombstone)`` (see
:mod:`identity.privacy.forget`) is not written again; it is counted as a rejected value with
reason ``forgotten``, and a record left with no identifier as a rejected record. The check
costs nothing while no tombstone exists: the chunk's claim asks whether any does.

Why chunks may be written concurrently (Neo4j then uses both cores): a chunk locks the
identifiers it reads before it reads them, in key order, and holds them until it commits, so
two chunks touching one identifier take turns; two chunks creating the same identifier cannot
both commit (its key is unique), and the one that fails is written again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from neo4j import ManagedTransaction

from identity.errors import StoreError
from identity.model import Party
from identity.store.chunk import Chunk, ChunkOutcome, Prepared, write_chunk
from identity.store.driver import Graph
from identity.store.rows import Counts

_CREATE_RACES = 5  # times a chunk is written again when another writer created its new keys


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
    dedup_days: int = 30


@dataclass(frozen=True)
class BatchState:
    status: str
    done: frozenset[int]  # indices of the chunks already committed
    chunk_size: int


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

    def write_chunk(self, index: int, prepared: Prepared, counts: Counts) -> ChunkOutcome | None:
        """Write chunk ``index`` with its own counts in one transaction.

        Returns what was refused (duplicate ``messageId``s and erased identifiers, their
        counts moved from accepted to rejected as committed), or None when the chunk was
        already written.
        """
        operation = f"write chunk {index} of batch {self.batch.id}"
        for attempt in range(_CREATE_RACES):
            try:
                return self.graph.write(
                    operation, lambda tx: self._write_chunk(tx, index, prepared, counts)
                )
            except StoreError as e:
                # another writer created one of this chunk's new identifiers first
                if "ConstraintValidationFailed" not in str(e) or attempt == _CREATE_RACES - 1:
                    raise
        raise AssertionError("unreachable")

    def _write_chunk(
        self,
        tx: ManagedTransaction,
        index: int,
        prepared: Prepared,
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
        chunk = Chunk(
            f"{batch.id}#{index}",
            batch.id,
            batch.source,
            batch.party,
            batch.dedup_days,
            claim["tombstones"],
        )
        return write_chunk(tx, chunk, prepared, counts)

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
