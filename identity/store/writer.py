"""Writing observations: batched ``UNWIND`` writes, one transaction per chunk, with lineage.

Why it is fast: a chunk of observations is first aggregated in memory (one row per
identifier, per unordered pair, per trait set and per event name), so each Cypher statement
touches every node and relationship once per chunk, through the uniqueness constraints.

Why it is exact: a chunk's writes, its Segment ``messageId`` marks and the batch's running
counts commit in one transaction, guarded by the batch's ``chunks_done``. A load killed
half-way left whole chunks only; re-running it skips those and writes the rest, ending in
exactly the state of one clean load. A ``messageId`` already seen (in this load or an earlier
one) is counted as a duplicate and writes nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from neo4j import ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from identity.errors import StoreError
from identity.model import Observation, Party
from identity.store.driver import Graph, _translate

DEFAULT_LABELS = {
    "cookie": "Cookie",
    "email": "Email",
    "phone": "Phone",
    "device": "Device",
    "maid": "Maid",
    "crm_id": "CrmId",
    "dmp_id": "DmpId",
}
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EVIDENCE_CAP = 5
DUPLICATE = "duplicate_message_id"


def label_for(type_: str) -> str:
    """The node label of an identifier type: the default ones, else the type in CamelCase."""
    if type_ in DEFAULT_LABELS:
        return DEFAULT_LABELS[type_]
    if not _TYPE_NAME.match(type_):
        raise ValueError(f"identifier type {type_!r} is not a lower-case word")
    return "".join(part.capitalize() for part in type_.split("_"))


@dataclass
class Counts:
    """A load's running counts: ``read == accepted + rejected`` at every step."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    value_reasons: Counter[str] = field(default_factory=Counter)

    def copy(self) -> Counts:
        return replace(
            self, reasons=Counter(self.reasons), value_reasons=Counter(self.value_reasons)
        )

    def as_properties(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejected_reasons": json.dumps(dict(sorted(self.reasons.items()))),
            "rejected_values": sum(self.value_reasons.values()),
            "rejected_value_reasons": json.dumps(dict(sorted(self.value_reasons.items()))),
        }


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
class BatchState:
    status: str
    chunks_done: int
    chunk_size: int


@dataclass
class ChunkRows:
    """One chunk's observations, aggregated into the rows the write statements take."""

    identifiers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    traits: list[dict[str, Any]]
    events: list[dict[str, Any]]
    segments: list[dict[str, Any]]


def aggregate(observations: Iterable[Observation], batch_id: str) -> ChunkRows:
    """Fold a chunk into one row per identifier, pair, trait set, event stat and segment."""
    identifiers: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    traits: dict[str, dict[str, Any]] = {}
    events: dict[tuple[str, str], dict[str, Any]] = {}
    segments: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in observations:
        at = obs.at
        for ident in obs.identifiers:
            row = identifiers.get(ident.key)
            if row is None:
                identifiers[ident.key] = {
                    "key": ident.key,
                    "type": ident.type,
                    "value": ident.value,
                    "hashed": ident.hashed,
                    "label": label_for(ident.type),
                    "first": at,
                    "last": at,
                    "seen": 1,
                }
            else:
                row["first"] = min(row["first"], at)
                row["last"] = max(row["last"], at)
                row["seen"] += 1
        keys = sorted({i.key for i in obs.identifiers})
        evidence = f"{batch_id}:{obs.message_id or obs.record}"
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                link = links.get((a, b))
                if link is None:
                    links[(a, b)] = {
                        "a": a,
                        "b": b,
                        "first": at,
                        "last": at,
                        "count": 1,
                        "evidence": [evidence],
                    }
                else:
                    link["first"] = min(link["first"], at)
                    link["last"] = max(link["last"], at)
                    link["count"] += 1
                    if len(link["evidence"]) < EVIDENCE_CAP:
                        link["evidence"].append(evidence)
        primary = obs.primary
        if primary is None:
            continue
        if obs.traits:
            tkey = f"{primary.key}|{obs.source}"
            entry = traits.setdefault(tkey, {"tkey": tkey, "key": primary.key, "values": {}})
            for name, value in obs.traits.items():
                previous = entry["values"].get(name)
                if previous is None or previous[1] <= at:
                    entry["values"][name] = (value, at)
        for name in obs.events:
            stat = events.get((primary.key, name))
            if stat is None:
                events[(primary.key, name)] = {
                    "key": primary.key,
                    "name": name,
                    "count": 1,
                    "first": at,
                    "last": at,
                }
            else:
                stat["count"] += 1
                stat["first"] = min(stat["first"], at)
                stat["last"] = max(stat["last"], at)
        for membership in obs.segments:
            for ident in obs.identifiers:
                seg = segments.get((ident.key, membership.name))
                if seg is None:
                    segments[(ident.key, membership.name)] = {
                        "key": ident.key,
                        "name": membership.name,
                        "first": at,
                        "last": at,
                        "expires": membership.expires_at,
                    }
                else:
                    seg["first"] = min(seg["first"], at)
                    seg["last"] = max(seg["last"], at)
                    seg["expires"] = max(seg["expires"], membership.expires_at)
    trait_rows = []
    for entry in traits.values():
        for name, (value, at) in entry["values"].items():
            trait_rows.append(
                {"tkey": entry["tkey"], "key": entry["key"], "name": name, "value": value, "at": at}
            )
    return ChunkRows(
        identifiers=list(identifiers.values()),
        links=list(links.values()),
        traits=trait_rows,
        events=list(events.values()),
        segments=list(segments.values()),
    )


_WRITE_IDENTIFIERS = """
UNWIND $rows AS row
MERGE (i:Identifier {key: row.key})
ON CREATE SET i.type = row.type, i.value = row.value, i.hashed = row.hashed,
              i.first_seen = row.first, i.last_seen = row.last, i.seen = row.seen,
              i.sources = [$source], i.first_batch = $batch, i:$(row.label)
ON MATCH SET i.first_seen = CASE WHEN row.first < i.first_seen THEN row.first ELSE i.first_seen END,
             i.last_seen = CASE WHEN row.last > i.last_seen THEN row.last ELSE i.last_seen END,
             i.seen = i.seen + row.seen,
             i.sources = CASE WHEN $source IN i.sources THEN i.sources ELSE i.sources + $source END
SET i.last_batch = $batch
"""

# "first" < "second" < "third": the strongest party seen is the smallest string.
_WRITE_LINKS = """
UNWIND $rows AS row
MATCH (a:Identifier {key: row.a})
MATCH (b:Identifier {key: row.b})
MERGE (a)-[r:LINKED]->(b)
ON CREATE SET r.first_seen = row.first, r.last_seen = row.last, r.count = row.count,
              r.sources = [$source], r.party = $party, r.evidence = row.evidence
ON MATCH SET r.first_seen = CASE WHEN row.first < r.first_seen THEN row.first ELSE r.first_seen END,
             r.last_seen = CASE WHEN row.last > r.last_seen THEN row.last ELSE r.last_seen END,
             r.count = r.count + row.count,
             r.sources = CASE WHEN $source IN r.sources THEN r.sources ELSE r.sources + $source END,
             r.party = CASE WHEN $party < r.party THEN $party ELSE r.party END,
             r.evidence = CASE WHEN size(r.evidence) >= $cap THEN r.evidence
                               ELSE (r.evidence + row.evidence)[0..$cap] END
"""

_WRITE_TRAITS = """
UNWIND $rows AS row
MATCH (i:Identifier {key: row.key})
MERGE (t:TraitSet {key: row.tkey})
ON CREATE SET t.source = $source, t.identifier = row.key
MERGE (i)-[:HAS_TRAITS]->(t)
WITH t, row
WHERE t['at.' + row.name] IS NULL OR t['at.' + row.name] <= row.at
SET t['trait.' + row.name] = row.value, t['at.' + row.name] = row.at
"""

_WRITE_EVENTS = """
UNWIND $rows AS row
MATCH (i:Identifier {key: row.key})
MERGE (e:EventStats {key: row.key})
MERGE (i)-[:HAS_EVENTS]->(e)
WITH e, row, 'count.' + row.name AS c, 'first.' + row.name AS f, 'last.' + row.name AS l
SET e[c] = coalesce(e[c], 0) + row.count,
    e[f] = CASE WHEN e[f] IS NULL OR row.first < e[f] THEN row.first ELSE e[f] END,
    e[l] = CASE WHEN e[l] IS NULL OR row.last > e[l] THEN row.last ELSE e[l] END
"""

_WRITE_SEGMENTS = """
UNWIND $rows AS row
MATCH (i:Identifier {key: row.key})
MERGE (s:DmpSegment {name: row.name})
MERGE (i)-[m:IN_SEGMENT]->(s)
ON CREATE SET m.first_seen = row.first, m.last_seen = row.last, m.expires_at = row.expires,
              m.source = $source
ON MATCH SET m.first_seen = CASE WHEN row.first < m.first_seen THEN row.first ELSE m.first_seen END,
             m.last_seen = CASE WHEN row.last > m.last_seen THEN row.last ELSE m.last_seen END,
             m.expires_at = CASE WHEN row.expires > m.expires_at THEN row.expires
                                 ELSE m.expires_at END
"""


class ChunkAlreadyWritten(StoreError):
    """The batch moved past this chunk (another writer, or a resumed load)."""


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
                          b.started_at = $started_at, b.chunks_done = 0,
                          b.chunk_size = $chunk_size, b.read = 0, b.accepted = 0,
                          b.rejected = 0, b.rejected_values = 0
            ON MATCH SET b.attempts = CASE WHEN b.status = 'completed' THEN b.attempts
                                    ELSE coalesce(b.attempts, 1) + 1 END
            MERGE (b)-[:FROM]->(s)
            RETURN b.status AS status, b.chunks_done AS chunks_done, b.chunk_size AS chunk_size
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
        return BatchState(row["status"], int(row["chunks_done"]), int(row["chunk_size"]))

    def write_chunk(
        self, index: int, observations: Sequence[Observation], counts: Counts
    ) -> tuple[list[Observation], Counts]:
        """Write chunk ``index`` and the counts up to it in one transaction.

        Returns the observations dropped as duplicate ``messageId``s and the counts adjusted
        for them, as committed.
        """
        try:
            with self.graph.driver.session(database=self.graph.database) as session:
                return session.execute_write(self._write_chunk, index, observations, counts)
        except StoreError:
            raise
        except (Neo4jError, DriverError) as e:
            raise _translate(f"write chunk {index} of batch {self.batch.id}", e) from e

    def _write_chunk(
        self,
        tx: ManagedTransaction,
        index: int,
        observations: Sequence[Observation],
        counts: Counts,
    ) -> tuple[list[Observation], Counts]:
        batch = self.batch
        done = tx.run(
            "MATCH (b:Batch {id: $id}) RETURN b.chunks_done AS done", id=batch.id
        ).single()
        if done is None or done["done"] != index:
            raise ChunkAlreadyWritten(
                f"write chunk {index}", f"batch {batch.id} is at chunk {done and done['done']}"
            )
        kept, duplicates = self._drop_seen_messages(tx, observations)
        counts = counts.copy()
        if duplicates:
            counts.accepted -= len(duplicates)
            counts.rejected += len(duplicates)
            counts.reasons[DUPLICATE] += len(duplicates)
        rows = aggregate(kept, batch.id)
        common = {"batch": batch.id, "source": batch.source, "party": batch.party}
        for query, data in (
            (_WRITE_IDENTIFIERS, rows.identifiers),
            (_WRITE_LINKS, rows.links),
            (_WRITE_TRAITS, rows.traits),
            (_WRITE_EVENTS, rows.events),
            (_WRITE_SEGMENTS, rows.segments),
        ):
            if data:
                tx.run(query, {"rows": data, "cap": EVIDENCE_CAP, **common}).consume()
        tx.run(
            "MATCH (b:Batch {id: $id}) SET b.chunks_done = $next, b += $counts",
            id=batch.id,
            next=index + 1,
            counts=counts.as_properties(),
        ).consume()
        return duplicates, counts

    def _drop_seen_messages(
        self, tx: ManagedTransaction, observations: Sequence[Observation]
    ) -> tuple[list[Observation], list[Observation]]:
        ids = list(dict.fromkeys(o.message_id for o in observations if o.message_id))
        if not ids:
            return list(observations), []
        seen_before = {
            record["id"]
            for record in tx.run(
                "UNWIND $ids AS id MATCH (m:SeenMessage {id: id}) RETURN id", ids=ids
            )
        }
        kept: list[Observation] = []
        duplicates: list[Observation] = []
        fresh: set[str] = set()
        for obs in observations:
            mid = obs.message_id
            if mid is None:
                kept.append(obs)
            elif mid in seen_before or mid in fresh:
                duplicates.append(obs)
            else:
                fresh.add(mid)
                kept.append(obs)
        if fresh:
            tx.run(
                "UNWIND $ids AS id CREATE (:SeenMessage {id: id, batch: $batch})",
                ids=sorted(fresh),
                batch=self.batch.id,
            ).consume()
        return kept, duplicates

    def finish(self, counts: Counts, finished_at: datetime) -> None:
        """Mark the batch completed with its final counts."""
        self.graph.run(
            "finish batch",
            "MATCH (b:Batch {id: $id}) SET b.status = 'completed', b.finished_at = $at, "
            "b += $counts",
            {"id": self.batch.id, "at": finished_at, "counts": counts.as_properties()},
        )

    def fail(self, error: str, at: datetime) -> None:
        """Mark the batch failed; a re-run of the same input resumes it."""
        self.graph.run(
            "mark batch failed",
            "MATCH (b:Batch {id: $id}) WHERE b.status <> 'completed' "
            "SET b.status = 'failed', b.error = $error, b.failed_at = $at",
            {"id": self.batch.id, "error": error[:2000], "at": at},
        )
