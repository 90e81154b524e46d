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
    """One chunk's observations, aggregated into the rows the write statements take.

    An identifier row carries the event aggregates and traits recorded on it, so one
    statement writes the node with everything stated about it.
    """

    identifiers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    segments: list[dict[str, Any]]


def _millis(at: datetime) -> int:
    """Times travel as epoch milliseconds: the driver packs ints far faster than datetimes,
    and Cypher turns them back with ``datetime({epochMillis: ...})``."""
    return int(at.timestamp() * 1000)


def _span(row: dict[str, Any], at: int) -> None:
    row["first"] = min(row["first"], at)
    row["last"] = max(row["last"], at)


def aggregate(observations: Iterable[Observation], batch_id: str) -> ChunkRows:
    """Fold a chunk into one row per identifier, per unordered pair and per segment."""
    identifiers: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    segments: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in observations:
        at = _millis(obs.at)
        for ident in obs.identifiers:
            row = identifiers.get(ident.key)
            if row is None:
                identifiers[ident.key] = {
                    "key": ident.key, "type": ident.type, "value": ident.value,
                    "hashed": ident.hashed, "label": label_for(ident.type),
                    "first": at, "last": at, "seen": 1, "events": {}, "traits": {},
                }  # fmt: skip
            else:
                _span(row, at)
                row["seen"] += 1
        keys = sorted({i.key for i in obs.identifiers})
        evidence = f"{batch_id}:{obs.message_id or obs.record}"
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                link = links.get((a, b))
                if link is None:
                    links[(a, b)] = {
                        "a": a, "b": b, "first": at, "last": at, "count": 1,
                        "evidence": [evidence],
                    }  # fmt: skip
                else:
                    _span(link, at)
                    link["count"] += 1
                    if len(link["evidence"]) < EVIDENCE_CAP:
                        link["evidence"].append(evidence)
        primary = obs.primary
        if primary is None:
            continue
        target = identifiers[primary.key]
        for name, value in obs.traits.items():
            previous = target["traits"].get(name)
            if previous is None or previous["at"] <= at:
                target["traits"][name] = {"name": name, "value": value, "at": at}
        for name in obs.events:
            stat = target["events"].get(name)
            if stat is None:
                target["events"][name] = {"name": name, "count": 1, "first": at, "last": at}
            else:
                stat["count"] += 1
                _span(stat, at)
        for membership in obs.segments:
            expires = _millis(membership.expires_at)
            for ident in obs.identifiers:
                seg = segments.get((ident.key, membership.name))
                if seg is None:
                    segments[(ident.key, membership.name)] = {
                        "key": ident.key, "name": membership.name, "first": at, "last": at,
                        "expires": expires,
                    }  # fmt: skip
                else:
                    _span(seg, at)
                    seg["expires"] = max(seg["expires"], expires)
    for row in identifiers.values():
        row["events"] = list(row["events"].values())
        row["traits"] = list(row["traits"].values())
    return ChunkRows(list(identifiers.values()), list(links.values()), list(segments.values()))


# Property writes only where a value changes: an unchanged SET still costs a write.
# Event aggregates live on the identifier as event_count.<name>, event_first.<name> and
# event_last.<name>; traits as trait.<source>.<name> with their time in trait_at.<source>.<name>
# (latest observation wins per source).
_WRITE_IDENTIFIERS = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first}) AS first, datetime({epochMillis: row.last}) AS last
MERGE (i:Identifier {key: row.key})
ON CREATE SET i.type = row.type, i.value = row.value, i.first_seen = first, i.last_seen = last,
              i.seen = row.seen, i.sources = [$source], i:$(row.label)
ON MATCH SET i.seen = i.seen + row.seen
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
               OR i['trait_at.' + $source + '.' + t.name] <= datetime({epochMillis: t.at})] |
  SET i['trait.' + $source + '.' + t.name] = t.value,
      i['trait_at.' + $source + '.' + t.name] = datetime({epochMillis: t.at}))
"""

# "first" < "second" < "third": the strongest party seen is the smallest string. A link
# just created has r.count = row.count: only a matched one takes more evidence.
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
FOREACH (_ IN CASE WHEN r.count > row.count AND size(r.evidence) < $cap THEN [1] ELSE [] END |
  SET r.evidence = (r.evidence + row.evidence)[0..$cap])
"""

_WRITE_SEGMENTS = """
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
        fresh_ids = {
            record["id"]
            for record in tx.run(
                "UNWIND $ids AS id OPTIONAL MATCH (m:SeenMessage {id: id}) "
                "WITH id, m WHERE m IS NULL CREATE (:SeenMessage {id: id, batch: $batch}) "
                "RETURN id",
                ids=ids,
                batch=self.batch.id,
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
