"""Loading a file: lineage, chunked writes, dead letters and resumption.

``load_segment_file`` and ``load_table_file`` are the services the CLI, the HTTP ingestion and
the benchmarks call.

``load_file`` streams a file through a loader (``loaders.segment`` or ``loaders.table``),
writes observations in chunks through :class:`~identity.store.writer.BatchWriter` and every
rejected record or value to an NDJSON rejects file. The batch id is derived from the source
and the file's SHA-256, so loading the same file again finds the completed batch and changes
nothing, and a load that was killed resumes after its last committed chunk.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from identity.config import Settings
from identity.errors import IdgraphError, InputError
from identity.model import Observation, Party, Rejection
from identity.normalize import Normalizer, NormalizerConfig
from identity.policy import Policy
from identity.store.driver import Graph
from identity.store.writer import DUPLICATE, BatchInfo, BatchWriter, Counts
from loaders.segment import SegmentOptions, read_segment
from loaders.table import TableMapping, check_header, read_table

Progress = Callable[[int, int], None]
Parse = Callable[[IO[bytes], datetime], Iterator[Observation | Rejection]]


@dataclass(frozen=True)
class LoadReport:
    """What a load did; ``counts.read == counts.accepted + counts.rejected``."""

    batch_id: str
    source: str
    file: str
    sha256: str
    status: str  # "completed" or "already_loaded"
    counts: Counts
    rejects_file: Path | None
    seconds: float
    resumed_at_chunk: int = 0


def make_normalizer(settings: Settings, policy: Policy) -> Normalizer:
    """The normalizer loaders use, configured from the settings and the policy."""
    from identity.normalize import DEFAULT_BLOCKED

    blocked = {
        t: frozenset(DEFAULT_BLOCKED.get(t, frozenset())) | policy.blocked.get(t, frozenset())
        for t in set(DEFAULT_BLOCKED) | set(policy.blocked)
    }
    return Normalizer(
        NormalizerConfig(
            default_region=settings.default_region,
            hash_pii=settings.hash_pii,
            types=policy.types,
            blocked=blocked,
            blocked_patterns=dict(policy.blocked_patterns),
        )
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def open_input(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(raw file, decoded stream): gzip is recognised by its magic bytes, not the name."""
    try:
        raw = path.open("rb")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield raw, unzipped  # type: ignore[misc]
        else:
            yield raw, raw


def _reference_line(record: str) -> int | None:
    head = record.split("#", 1)[0]
    return int(head) if head.isdigit() else None


class _Rejects:
    """The rejects file, opened at the first rejection."""

    def __init__(self, path: Path, batch_id: str) -> None:
        self.path = path
        self.batch_id = batch_id
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()

    def add(self, rejection: Rejection) -> None:
        with self._lock:
            self._add(rejection)

    def _add(self, rejection: Rejection) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8")
        entry: dict[str, Any] = {
            "batch": self.batch_id,
            "record": rejection.record,
            "line": _reference_line(rejection.record),
            "field": rejection.field,
            "code": rejection.code,
            "message": rejection.message,
            "raw": rejection.raw,
        }
        self._handle.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def close(self) -> Path | None:
        if self._handle is None:
            return None
        self._handle.close()
        return self.path


def load_file(
    graph: Graph,
    path: Path,
    parse: Parse,
    *,
    kind: str,
    source: str,
    party: Party,
    rejects_dir: Path,
    chunk_size: int,
    progress: Progress | None = None,
) -> LoadReport:
    """Load one file as one batch (see the module docstring for the guarantees)."""
    started = time.monotonic()
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path} is empty: nothing to load")
    sha = file_sha256(path)
    now = datetime.now(UTC)
    batch = BatchInfo(
        id=f"{kind}-{source}-{sha[:20]}",
        source=source,
        party=party,
        file=str(path),
        sha256=sha,
        kind=kind,
        chunk_size=chunk_size,
        started_at=now,
    )
    writer = BatchWriter(graph, batch)
    state = writer.begin()
    if state.status == "completed":
        return LoadReport(
            batch.id,
            source,
            str(path),
            sha,
            "already_loaded",
            _committed_counts(graph, batch.id),
            None,
            time.monotonic() - started,
        )
    rejects = _Rejects(rejects_dir / f"{batch.id}.ndjson", batch.id)
    pipeline = _ChunkPipeline(writer, graph, state.chunks_done, rejects)
    counts = Counts()
    buffer: list[Observation] = []
    try:
        with open_input(path) as (raw, stream):
            for item in parse(stream, now):
                counts.read += 1
                if isinstance(item, Rejection):
                    counts.rejected += 1
                    counts.reasons[item.code] += 1
                    rejects.add(item)
                else:
                    counts.accepted += 1
                    buffer.append(item)
                    for value in item.rejected_values:
                        counts.value_reasons[value.code] += 1
                        rejects.add(value)
                if counts.read % state.chunk_size == 0:
                    pipeline.submit(buffer, counts)
                    buffer = []
                    if progress:
                        progress(raw.tell(), size)
            if buffer or counts.read % state.chunk_size or counts.read == 0:
                pipeline.submit(buffer, counts)
        final = pipeline.close()
        writer.finish(final, datetime.now(UTC))
    except (IdgraphError, KeyboardInterrupt, OSError, EOFError, gzip.BadGzipFile) as e:
        pipeline.abandon()
        with contextlib.suppress(IdgraphError):
            writer.fail(f"{type(e).__name__}: {e}", datetime.now(UTC))
        if isinstance(e, OSError | EOFError):
            raise InputError(f"{path}: could not be read to the end: {e}") from e
        raise
    finally:
        rejects_file = rejects.close()
    if progress:
        progress(size, size)
    return LoadReport(
        batch.id,
        source,
        str(path),
        sha,
        "completed",
        final,
        rejects_file,
        time.monotonic() - started,
        state.chunks_done,
    )


class _ChunkPipeline:
    """Writes chunks, in order, on one background thread while the caller parses on.

    Parsing is Python work and writing mostly waits on Neo4j, so on two cores the two
    overlap. The queue holds at most two chunks: memory stays bounded. Chunks below
    ``chunks_done`` were committed by an interrupted run and are skipped; the counts
    committed with the last of them are taken up again (they include its duplicates).
    """

    def __init__(self, writer: BatchWriter, graph: Graph, chunks_done: int, rejects: _Rejects):
        self._writer = writer
        self._graph = graph
        self._chunks_done = chunks_done
        self._rejects = rejects
        self._queue: queue.Queue[tuple[int, list[Observation], Counts] | None] = queue.Queue(2)
        self._index = 0
        self._duplicates = 0
        self._committed = Counts()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="idgraph-writer", daemon=True)
        self._thread.start()

    def submit(self, observations: list[Observation], counts: Counts) -> None:
        item = (self._index, observations, counts.copy())
        self._index += 1
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> Counts:
        self._put_end()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._committed

    def abandon(self) -> None:
        self._put_end()
        self._thread.join(timeout=60)

    def _put_end(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                index, observations, counts = item
                if self._error is not None:
                    continue
                if index < self._chunks_done:
                    if index == self._chunks_done - 1:
                        self._committed = _committed_counts(self._graph, self._writer.batch.id)
                        self._duplicates = self._committed.reasons[DUPLICATE]
                    continue
                if self._duplicates:
                    counts.accepted -= self._duplicates
                    counts.rejected += self._duplicates
                    counts.reasons[DUPLICATE] += self._duplicates
                duplicates, self._committed = self._writer.write_chunk(index, observations, counts)
                self._duplicates += len(duplicates)
                for dup in duplicates:
                    self._rejects.add(
                        Rejection(
                            DUPLICATE,
                            f"messageId {dup.message_id!r} was already loaded",
                            dup.record,
                            "messageId",
                        )
                    )
        except BaseException as e:
            self._error = e
            while self._queue.get() is not None:
                pass


def load_segment_file(
    graph: Graph,
    path: Path,
    settings: Settings,
    policy: Policy,
    *,
    source: str = "segment",
    party: Party = "first",
    progress: Progress | None = None,
) -> LoadReport:
    """Load a file of Segment-spec events as one batch of ``source``."""
    normalizer = make_normalizer(settings, policy)
    options = SegmentOptions(
        source=source,
        party=party,
        user_id_type=policy.user_id_type,
        previous_id_type=policy.previous_id_type,
        external_id_types=policy.external_id_types,
        max_record_bytes=settings.max_record_bytes,
    )
    return load_file(
        graph,
        path,
        lambda stream, now: read_segment(stream, normalizer, options, now=now),
        kind="segment",
        source=source,
        party=party,
        rejects_dir=settings.rejects_path,
        chunk_size=settings.chunk_size,
        progress=progress,
    )


def load_table_file(
    graph: Graph,
    path: Path,
    mapping: TableMapping,
    settings: Settings,
    policy: Policy,
    *,
    progress: Progress | None = None,
) -> LoadReport:
    """Load a CSV table through its mapping; the header is checked before anything is written."""
    check_header(path, mapping)
    normalizer = make_normalizer(settings, policy)
    return load_file(
        graph,
        path,
        lambda stream, now: read_table(stream, mapping, normalizer, now=now),
        kind="csv",
        source=mapping.source,
        party=mapping.party,
        rejects_dir=settings.rejects_path,
        chunk_size=settings.chunk_size,
        progress=progress,
    )


def _committed_counts(graph: Graph, batch_id: str) -> Counts:
    rows = graph.read(
        "read batch counts",
        "MATCH (b:Batch {id: $id}) RETURN b.read AS read, b.accepted AS accepted, "
        "b.rejected AS rejected, b.rejected_reasons AS reasons, "
        "b.rejected_value_reasons AS value_reasons",
        {"id": batch_id},
    )
    row = rows[0]
    from collections import Counter

    return Counts(
        read=int(row["read"] or 0),
        accepted=int(row["accepted"] or 0),
        rejected=int(row["rejected"] or 0),
        reasons=Counter(json.loads(row["reasons"] or "{}")),
        value_reasons=Counter(json.loads(row["value_reasons"] or "{}")),
    )
