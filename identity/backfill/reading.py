"""Reading the input files into the staging database, record by record, as a load reads them.

Each file goes through the load's own parser (:func:`loaders.segment_events.
read_segment_events` or :func:`loaders.table.read_table`, with the normalizer of the
context) in one streaming pass, cut into chunks and counted by the load's own
:func:`identity.ingest.parsing.chunks_of` (chunks of ``IDGRAPH_CHUNK_SIZE`` records, rejected
ones included), and every rejection goes to the batch's rejects file in the load's order and
format
(:class:`identity.ingest.rejects.RejectsFile`). Erased identifiers are dropped with the
load's :func:`identity.store.rows.suppress_forgotten`; its rejections wait in the staging
database, since a load only reports them for records that are not duplicates, which the
aggregation decides later (:func:`add_late_rejections`).

Memory: one chunk of records plus the staging buffer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from identity.backfill.staging import Staged, Staging
from identity.ingest.parsing import Parse, chunks_of
from identity.ingest.rejects import RejectsFile
from identity.ingest.service import Input, Progress
from identity.model import Observation, Party, Rejection
from identity.store.privacy import tombstone_hash
from identity.store.rows import DUPLICATE, Counts, suppress_forgotten


@dataclass(frozen=True)
class FileSpec:
    """One input file and how a load would read it."""

    input: Input
    kind: str  # segment | csv
    source: str
    party: Party
    parse: Parse

    @property
    def batch_id(self) -> str:
        return f"{self.kind}-{self.source}-{self.input.sha256[:20]}"


@dataclass
class FileResult:
    """What reading one file gave; ``counts`` as the batch will hold them once the
    duplicates are known (:meth:`settle`)."""

    spec: FileSpec
    number: int
    counts: Counts = field(default_factory=Counts)
    chunks: int = 1
    rejects_file: Path | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    status: str = "completed"  # or already_loaded: the same batch as an earlier file

    def settle(self, duplicates: int, forgotten_records: int, forgotten_values: int) -> None:
        """Move duplicates and wholly erased records from accepted to rejected, and count
        erased values, as a load's chunks do."""
        c = self.counts
        for code, n in ((DUPLICATE, duplicates), ("forgotten", forgotten_records)):
            if n:
                c.accepted -= n
                c.rejected += n
                c.reasons[code] += n
        if forgotten_values:
            c.value_reasons["forgotten"] += forgotten_values


class _LateRejects(RejectsFile):
    """A batch's rejects file added to after reading (appended to when reading wrote one)."""

    def __init__(self, path: Path, batch_id: str, *, append: bool) -> None:
        super().__init__(path, batch_id)
        self.append = append

    def _add(self, rejection: Rejection) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a" if self.append else "w", encoding="utf-8")
        super()._add(rejection)


def stage_file(
    staging: Staging,
    spec: FileSpec,
    result: FileResult,
    *,
    seq: int,
    chunk_base: int,
    chunk_size: int,
    tombstones: frozenset[str],
    rejects_dir: Path,
    progress: Progress | None = None,
) -> int:
    """Read ``spec`` into ``staging`` (records numbered from ``seq``, chunks from
    ``chunk_base``), filling ``result``; returns the next record number."""
    started = time.monotonic()
    now = datetime.now(UTC)
    staging.add_file(result.number, spec.batch_id, spec.source, spec.party)
    rejects = RejectsFile(rejects_dir / f"{spec.batch_id}.ndjson", spec.batch_id)
    erased = _erased_among(tombstones)
    chunks = 0
    try:
        with spec.input.open() as (raw, stream):
            # the load's own chunking and counting, so that chunks end where a load's do
            for chunk in chunks_of(spec.parse, raw, stream, now, chunk_size):
                chunks += 1
                result.counts.add(chunk.counts)
                for rejection in chunk.rejected:
                    rejects.add(rejection, whole_record=True)
                for value in chunk.rejected_values:
                    rejects.add(value, whole_record=False)
                for obs in chunk.observations:
                    staging.add(_staged(seq, result.number, chunk_base + chunk.index, obs, erased))
                    seq += 1
                if progress:
                    progress(chunk.position, spec.input.size)
    finally:
        result.rejects_file = rejects.close()
    staging.flush()
    result.chunks = chunks
    result.seconds = time.monotonic() - started
    return seq


def _erased_among(tombstones: frozenset[str]) -> Callable[[Observation], set[str]]:
    def erased(obs: Observation) -> set[str]:
        if not tombstones:
            return set()
        return {i.key for i in obs.identifiers if tombstone_hash(i.key) in tombstones}

    return erased


def _staged(
    seq: int, file: int, chunk: int, obs: Observation, erased: Callable[[Observation], set[str]]
) -> Staged:
    gone = erased(obs)
    if not gone:
        return Staged(seq, file, chunk, obs, obs)
    kept, records, values = suppress_forgotten([obs], gone, Counts())
    return Staged(seq, file, chunk, obs, kept[0] if kept else None, (records, values))


def add_late_rejections(
    con: duckdb.DuckDBPyConnection, result: FileResult, rejects_dir: Path
) -> None:
    """Append to the batch's rejects file what the aggregation refused: the erased
    identifiers of records that are not duplicates, then the duplicates."""
    batch = result.spec.batch_id
    rejects = _LateRejects(
        rejects_dir / f"{batch}.ndjson", batch, append=result.rejects_file is not None
    )
    try:
        cursor = con.cursor()
        cursor.execute(
            "SELECT p.whole, p.code, p.message, p.record FROM pending p "
            "ANTI JOIN dup d ON d.seq = p.seq WHERE p.file = ? ORDER BY p.seq, NOT p.whole",
            [result.number],
        )
        while rows := cursor.fetchmany(10_000):
            for whole, code, message, record in rows:
                rejects.add(Rejection(code, message, record), whole_record=bool(whole))
        cursor.execute("SELECT msg, record FROM dup WHERE file = ? ORDER BY seq", [result.number])
        while rows := cursor.fetchmany(10_000):
            for msg, record in rows:
                rejects.add(
                    Rejection(DUPLICATE, f"messageId {msg!r} was already loaded", record,
                              "messageId"),
                    whole_record=True,
                )  # fmt: skip
        cursor.close()
    finally:
        path = rejects.close()
    if path is not None:
        result.rejects_file = path
