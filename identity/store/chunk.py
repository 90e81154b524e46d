"""One chunk of observations written in one transaction: lock, read, compute, write.

1. **Lock and read** the chunk's existing identifiers, in key order (one ``MATCH`` by key and
   a ``SET`` of the batch marker, which takes each node's write lock): their internal ids and
   what the new values depend on, the deduplication codes of the messages' primary
   identifiers among them.
2. **Deduplicate**: a record whose ``messageId`` is already held by its primary identifier
   (or came earlier in the chunk) is a duplicate and writes nothing.
3. **Compute** every new value in Python (:mod:`identity.store.merge`): the nodes read are
   locked until commit, so no other writer can change them meanwhile.
4. **Write** only what changed, by internal id: new identifiers with ``CREATE`` (a unique
   key, so two writers creating the same one cannot both commit: the later one fails and
   the chunk is written again), changed ones with ``SET``; then the links between them (the
   chunk's nodes are locked, so reading which links exist and creating the others is safe),
   the DMP memberships and the batch's counts. The chunk's claim keeps the keys it touched:
   the next incremental resolve starts from them (an index on a property every chunk
   rewrites would cost a fifth of a load).

Per chunk that is a handful of statements whatever its size, each touching a row per
distinct identifier or pair, never a row per event.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from identity.model import Observation, Rejection
from identity.store.merge import (
    Stored,
    identifier_change,
    link_change,
    new_identifier,
    new_link,
)
from identity.store.privacy import forgotten_among
from identity.store.rows import (
    DUPLICATE,
    ChunkRows,
    Counts,
    aggregate,
    message_code,
    millis_of,
    suppress_forgotten,
)

_LOCK_AND_READ: LiteralString = """
UNWIND $rows AS row
MATCH (i:Identifier {key: row.key})
SET i.batch = $batch
RETURN row.key AS key, id(i) AS id, coalesce(i.seen, 0) AS seen,
       i.first_seen.epochMillis AS first, i.last_seen.epochMillis AS last,
       coalesce(i.sources, []) AS sources, i.hashed AS hashed,
       CASE WHEN row.codes THEN coalesce(i.msgs, []) END AS msgs,
       [t IN row.traits | [i['trait.' + $source + '.' + t],
                           i['trait_at.' + $source + '.' + t].epochMillis]] AS traits,
       [e IN row.events | [i['event_count.' + e], i['event_first.' + e].epochMillis,
                           i['event_last.' + e].epochMillis]] AS events
"""
_CREATE_IDENTIFIERS: LiteralString = """
UNWIND $rows AS row
CREATE (i:Identifier)
SET i = row.props, i:$(row.labels)
FOREACH (t IN row.times | SET i[t[0]] = datetime({epochMillis: t[1]}))
RETURN row.props.key AS key, id(i) AS id
"""
_UPDATE_IDENTIFIERS: LiteralString = """
UNWIND $rows AS row
MATCH (i) WHERE id(i) = row.id
SET i += row.props, i:$(row.labels)
FOREACH (t IN row.times | SET i[t[0]] = datetime({epochMillis: t[1]}))
"""
_READ_LINKS: LiteralString = """
UNWIND $pairs AS pair
MATCH (a) WHERE id(a) = pair[0]
MATCH (a)-[r:LINKED]->(b) WHERE id(b) = pair[1]
RETURN pair[0] AS a, pair[1] AS b, id(r) AS id, r.count AS count,
       r.first_seen.epochMillis AS first, r.last_seen.epochMillis AS last,
       r.sources AS sources, r.party AS party, r.evidence AS evidence
"""
_CREATE_LINKS: LiteralString = """
UNWIND $rows AS row
MATCH (a) WHERE id(a) = row.a
MATCH (b) WHERE id(b) = row.b
CREATE (a)-[r:LINKED]->(b)
SET r = row.props
FOREACH (t IN row.times | SET r[t[0]] = datetime({epochMillis: t[1]}))
"""
_UPDATE_LINKS: LiteralString = """
UNWIND $rows AS row
MATCH (a) WHERE id(a) = row.a
MATCH (a)-[r:LINKED]->() WHERE id(r) = row.id
SET r += row.props
FOREACH (t IN row.times | SET r[t[0]] = datetime({epochMillis: t[1]}))
"""
_WRITE_DMP_SEGMENTS: LiteralString = """
UNWIND $rows AS row
WITH row, datetime({epochMillis: row.first}) AS first, datetime({epochMillis: row.last}) AS last,
     datetime({epochMillis: row.expires}) AS expires
MATCH (i) WHERE id(i) = row.id
SET i:Stated
MERGE (s:DmpSegment {name: row.name})
MERGE (i)-[m:IN_SEGMENT]->(s)
ON CREATE SET m.first_seen = first, m.last_seen = last, m.expires_at = expires,
              m.source = $source
ON MATCH SET m.first_seen = CASE WHEN first < m.first_seen THEN first ELSE m.first_seen END,
             m.last_seen = CASE WHEN last > m.last_seen THEN last ELSE m.last_seen END,
             m.expires_at = CASE WHEN expires > m.expires_at THEN expires
                                 ELSE m.expires_at END
"""
_COUNT_CHUNK: LiteralString = """
MATCH (c:BatchChunk {key: $chunk})
SET c.keys = $keys
WITH c
MATCH (b:Batch {id: $id})
SET b.chunks_done = b.chunks_done + 1, b.read = b.read + $read,
    b.accepted = b.accepted + $accepted, b.rejected = b.rejected + $rejected,
    b.rejected_values = b.rejected_values + $rejected_values
FOREACH (code IN keys($reasons) |
  SET b['rejected.' + code] = coalesce(b['rejected.' + code], 0) + $reasons[code])
FOREACH (code IN keys($value_reasons) |
  SET b['rejected_value.' + code] = coalesce(b['rejected_value.' + code], 0) + $value_reasons[code])
"""


@dataclass(frozen=True)
class Chunk:
    """What one chunk's transaction needs to know besides its observations."""

    key: str  # of its (:BatchChunk) claim, which keeps the keys it touched
    batch: str
    source: str
    party: str
    dedup_days: int
    tombstones: bool  # whether any identifier was ever erased (then the chunk checks)


@dataclass(frozen=True)
class ChunkOutcome:
    """What a chunk's write refused: duplicate ``messageId``s (whole records), and erased
    identifiers (records left with none, and the values dropped from the others)."""

    duplicates: list[Observation]
    forgotten_records: list[Rejection]
    forgotten_values: list[Rejection]


@dataclass
class Prepared:
    """What a chunk's transaction can be handed ready: the rows of the records kept after the
    chunk's own duplicate messageIds, those duplicates, the rows the first statement locks and
    reads, and the kept records' message codes by primary identifier. Pure Python, so a parser
    process can prepare chunks while the writer writes others.

    The kept records themselves are needed only when the transaction refuses some of them
    (duplicates of earlier chunks, erased identifiers) and computes the rows again: rare, so
    they travel pickled (``packed``) and are unpickled on first use (:attr:`kept`)."""

    duplicates: list[Observation]
    rows: ChunkRows
    wanted: list[dict[str, Any]]
    messages: list[tuple[str, int]]  # (primary key, message code) of each kept record
    packed: bytes | None = None
    records: list[Observation] | None = None

    @property
    def kept(self) -> list[Observation]:
        if self.records is None:
            self.records = pickle.loads(self.packed) if self.packed is not None else []
        return self.records

    def pack(self) -> Prepared:
        """Ready to cross to another process: the kept records as one pickled blob."""
        if self.records is not None:
            self.packed, self.records = pickle.dumps(self.records, protocol=5), None
        return self


def prepare(observations: Sequence[Observation], batch: str) -> Prepared:
    """Everything a chunk's write can compute before it reads the database."""
    kept, duplicates = _first_of_each_message(observations)
    messages = [
        (obs.identifiers[0].key, message_code(obs.message_id, millis_of(obs.at)))
        for obs in kept
        if obs.message_id is not None and obs.identifiers
    ]
    return Prepared(duplicates, aggregate(kept, batch), _wanted(kept), messages, records=kept)


def write_chunk(
    tx: ManagedTransaction, chunk: Chunk, prepared: Prepared, counts: Counts
) -> ChunkOutcome:
    """Write one chunk (see the module docstring); ``counts`` is adjusted for what was
    refused and added to the batch's."""
    counts = counts.copy()
    stored = _lock_and_read(tx, chunk, prepared.wanted)
    kept: list[Observation] | None = None  # the prepared rows hold until a record is refused
    more: list[Observation] = []
    if _holds_a_message(prepared, stored):
        kept, more = _drop_held_messages(prepared.kept, stored)
    duplicates = prepared.duplicates + more
    if duplicates:
        counts.accepted -= len(duplicates)
        counts.rejected += len(duplicates)
        counts.reasons[DUPLICATE] += len(duplicates)
    records: list[Rejection] = []
    values: list[Rejection] = []
    if chunk.tombstones:
        erased = forgotten_among(tx, {row["key"] for row in prepared.wanted})
        if erased:
            kept, records, values = suppress_forgotten(
                prepared.kept if kept is None else kept, erased, counts
            )
    rows = prepared.rows if kept is None else aggregate(kept, chunk.batch)
    ids = _write_identifiers(tx, chunk, rows.identifiers, stored)
    _write_links(tx, chunk, rows.links, ids, stored)
    segments = [{**row, "id": ids[row["key"]]} for row in rows.dmp_segments]
    if segments:
        tx.run(_WRITE_DMP_SEGMENTS, rows=segments, source=chunk.source).consume()
    tx.run(
        _COUNT_CHUNK,
        chunk=chunk.key,
        keys=[row["key"] for row in rows.identifiers],
        id=chunk.batch,
        read=counts.read,
        accepted=counts.accepted,
        rejected=counts.rejected,
        rejected_values=sum(counts.value_reasons.values()),
        reasons=dict(counts.reasons),
        value_reasons=dict(counts.value_reasons),
    ).consume()
    return ChunkOutcome(duplicates, records, values)


def _first_of_each_message(
    observations: Sequence[Observation],
) -> tuple[list[Observation], list[Observation]]:
    """Within the chunk, a ``messageId`` counts once: its first record is kept."""
    seen: set[str] = set()
    kept: list[Observation] = []
    duplicates: list[Observation] = []
    for obs in observations:
        if obs.message_id is None:
            kept.append(obs)
        elif obs.message_id in seen:
            duplicates.append(obs)
        else:
            seen.add(obs.message_id)
            kept.append(obs)
    return kept, duplicates


def _wanted(observations: list[Observation]) -> list[dict[str, Any]]:
    """The first statement's rows: every identifier of the chunk, in key order, with what
    must be read of it (its message codes, the traits and events stated on it)."""
    wanted: dict[str, dict[str, Any]] = {}
    for obs in observations:
        idents = obs.identifiers
        for ident in idents:
            if ident.key not in wanted:
                wanted[ident.key] = {"key": ident.key, "codes": False, "traits": (), "events": ()}
        if idents and (obs.message_id is not None or obs.traits or obs.events):
            row = wanted[idents[0].key]  # the primary: traits, events and messages go on it
            if obs.message_id is not None:
                row["codes"] = True
            if obs.traits:
                row["traits"] = {*row["traits"], *obs.traits}
            if obs.events:
                row["events"] = {*row["events"], *obs.events}
    return [
        {**row, "traits": sorted(row["traits"]), "events": sorted(row["events"])}
        for _, row in sorted(wanted.items())
    ]


def _lock_and_read(
    tx: ManagedTransaction, chunk: Chunk, wanted: list[dict[str, Any]]
) -> dict[str, Stored]:
    """The chunk's existing identifiers, locked (in key order) and read."""
    by_key = {row["key"]: row for row in wanted}
    found: dict[str, Stored] = {}
    for record in tx.run(_LOCK_AND_READ, rows=wanted, batch=chunk.batch, source=chunk.source):
        row = by_key[record["key"]]
        traits, events = row["traits"], row["events"]
        found[record["key"]] = Stored(
            id=record["id"],
            seen=record["seen"],
            first=record["first"],
            last=record["last"],
            sources=list(record["sources"]),
            hashed=record["hashed"],
            msgs=list(record["msgs"]) if record["msgs"] is not None else None,
            traits={t: (v, at) for t, (v, at) in zip(traits, record["traits"], strict=True)},
            events={
                e: (count, first, last)
                for e, (count, first, last) in zip(events, record["events"], strict=True)
            },
        )
    return found


def _holds_a_message(prepared: Prepared, stored: dict[str, Stored]) -> bool:
    """Whether the primary identifier of a kept record already holds its message's code."""
    held: dict[str, set[int]] = {}
    for key, code in prepared.messages:
        known = stored.get(key)
        if known is not None and known.msgs:
            codes = held.setdefault(key, set(known.msgs))
            if code in codes:
                return True
    return False


def _drop_held_messages(
    observations: list[Observation], stored: dict[str, Stored]
) -> tuple[list[Observation], list[Observation]]:
    """Records whose message code their (existing, locked) primary already holds."""
    kept: list[Observation] = []
    duplicates: list[Observation] = []
    held: dict[str, set[int]] = {}
    for obs in observations:
        primary = obs.primary
        known = stored.get(primary.key) if primary is not None else None
        if obs.message_id is None or primary is None or known is None or not known.msgs:
            kept.append(obs)
            continue
        codes = held.setdefault(primary.key, set(known.msgs))
        if message_code(obs.message_id, millis_of(obs.at)) in codes:
            duplicates.append(obs)
        else:
            kept.append(obs)
    return kept, duplicates


def _write_identifiers(
    tx: ManagedTransaction,
    chunk: Chunk,
    rows: list[dict[str, Any]],
    stored: dict[str, Stored],
) -> dict[str, int]:
    """Create the new identifiers and update the changed ones; every key's internal id."""
    ids = {key: s.id for key, s in stored.items()}
    created, updated = [], []
    for row in rows:
        known = stored.get(row["key"])
        # :Stated marks what profiles are built from: identifiers with traits or events
        stated = ["Stated"] if row["traits"] or row["events"] else []
        if known is None:
            change = new_identifier(row, chunk.source, chunk.batch, chunk.dedup_days)
            labels = [row["label"], *stated]
            created.append({"props": change.props, "times": change.times, "labels": labels})
        else:
            change = identifier_change(known, row, chunk.source, chunk.dedup_days)
            if change:
                updated.append(
                    {"id": known.id, "props": change.props, "times": change.times,
                     "labels": stated}
                )  # fmt: skip
    if created:
        for record in tx.run(_CREATE_IDENTIFIERS, rows=created):
            ids[record["key"]] = record["id"]
    if updated:
        tx.run(_UPDATE_IDENTIFIERS, rows=updated).consume()
    return ids


def _write_links(
    tx: ManagedTransaction,
    chunk: Chunk,
    rows: list[dict[str, Any]],
    ids: dict[str, int],
    stored: dict[str, Stored],
) -> None:
    """Create the new links and update the changed ones (the ends are locked)."""
    if not rows:
        return
    pairs = [[ids[r["a"]], ids[r["b"]]] for r in rows if r["a"] in stored and r["b"] in stored]
    existing: dict[tuple[int, int], dict[str, Any]] = {}
    if pairs:
        for record in tx.run(_READ_LINKS, pairs=pairs):
            existing[(record["a"], record["b"])] = record.data()
    created, updated = [], []
    for row in rows:
        a, b = ids[row["a"]], ids[row["b"]]
        held = existing.get((a, b))
        if held is None:
            change = new_link(row, chunk.source, chunk.party)
            created.append({"a": a, "b": b, "props": change.props, "times": change.times})
        else:
            change = link_change(held, row, chunk.source, chunk.party)
            if change:
                updated.append({"a": a, "id": held["id"], "props": change.props,
                                "times": change.times})  # fmt: skip
    if created:
        tx.run(_CREATE_LINKS, rows=created).consume()
    if updated:
        tx.run(_UPDATE_LINKS, rows=updated).consume()
