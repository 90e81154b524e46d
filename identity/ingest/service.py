"""Loading a file or a request body: lineage, chunked writes, dead letters and resumption.

``load_segment_file`` and ``load_table_file`` are the services the CLI, the HTTP ingestion
(with the request body as an in-memory :class:`Input`) and the benchmarks call.

``load_file`` streams a file, or an :class:`Input` held in memory, through a loader
(``loaders.segment_events`` or ``loaders.table``), writes observations in chunks through
:class:`~identity.store.writer.BatchWriter` and every rejected record or value to an NDJSON
rejects file (an identifier erased on request is refused with reason ``forgotten``, and
its value is not written there). The batch id is derived from the source and the input's
SHA-256, so loading the same input again finds the completed batch and changes nothing, and
a load that was killed resumes after its last committed chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from identity.context import ServiceContext
from identity.errors import IdgraphError, InputError
from identity.ingest.parsing import Parse, SegmentParser, TableParser, parsed_chunks
from identity.ingest.rejects import RejectsFile
from identity.model import Party, Rejection
from identity.store.chunk import Prepared
from identity.store.driver import Graph
from identity.store.rows import DUPLICATE, Counts
from identity.store.writer import BatchInfo, BatchWriter
from loaders.records import open_input
from loaders.segment_events import SegmentEventOptions
from loaders.table import TableMapping, check_header

Progress = Callable[[int, int], None]
Opener = Callable[[], AbstractContextManager[tuple[IO[bytes], IO[bytes]]]]


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
    resumed_chunks: int = 0  # chunks an interrupted run had committed
    # kept only when the caller asks (``keep_rejections``): records refused whole (a
    # duplicate messageId included), and values refused inside accepted records
    rejections: tuple[Rejection, ...] = ()
    rejected_values: tuple[Rejection, ...] = ()


@dataclass(frozen=True)
class Input:
    """What one load reads: its name (the batch's ``file``), SHA-256, size and opener.

    ``open()`` gives (raw stream, decoded stream): progress is measured on the raw one.
    """

    name: str
    sha256: str
    size: int
    open: Opener
    path: Path | None = None  # a file (then large ones are parsed in a process beside)

    @classmethod
    def of_file(cls, path: Path) -> Input:
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"{path} is empty: nothing to load")
        return cls(str(path), file_sha256(path), size, lambda: open_input(path), path)

    @classmethod
    def of_bytes(cls, data: bytes, name: str) -> Input:
        if not data:
            raise InputError(f"{name} is empty: nothing to load")

        @contextlib.contextmanager
        def opener() -> Iterator[tuple[IO[bytes], IO[bytes]]]:
            stream = io.BytesIO(data)
            yield stream, stream

        return cls(name, hashlib.sha256(data).hexdigest(), len(data), opener)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_file(
    graph: Graph,
    data: Path | Input,
    parse: Parse,
    *,
    kind: str,
    source: str,
    party: Party,
    rejects_dir: Path,
    chunk_size: int,
    writers: int = 2,
    dedup_days: int = 30,
    progress: Progress | None = None,
    keep_rejections: bool = False,
) -> LoadReport:
    """Load one file, or an :class:`Input` held in memory, as one batch (see the module
    docstring for the guarantees; ``dedup_days``: see :mod:`identity.store.writer`).

    ``keep_rejections`` also returns every rejection in the report, for callers that answer
    with them (the HTTP ingestion; its inputs are small).
    """
    started = time.monotonic()
    if isinstance(data, Path):
        data = Input.of_file(data)
    now = datetime.now(UTC)
    batch = BatchInfo(
        id=f"{kind}-{source}-{data.sha256[:20]}",
        source=source,
        party=party,
        file=data.name,
        sha256=data.sha256,
        kind=kind,
        chunk_size=chunk_size,
        started_at=now,
        dedup_days=dedup_days,
    )
    writer = BatchWriter(graph, batch)
    state = writer.begin()
    if state.status == "completed":
        return LoadReport(
            batch.id,
            source,
            data.name,
            data.sha256,
            "already_loaded",
            writer.committed_counts(),
            None,
            time.monotonic() - started,
        )
    rejects = RejectsFile(rejects_dir / f"{batch.id}.ndjson", batch.id, keep=keep_rejections)
    pipeline = _ChunkPipeline(writer, writers, rejects)
    chunks = parsed_chunks(
        data.path, data.open, data.size, parse, now, state.chunk_size, batch.id, state.done
    )
    try:
        with contextlib.closing(chunks):  # a parser process stops with the load
            for chunk in chunks:
                for rejection in chunk.rejected:
                    rejects.add(rejection, whole_record=True)
                for value in chunk.rejected_values:
                    rejects.add(value, whole_record=False)
                if chunk.prepared is not None:
                    pipeline.submit(chunk.index, chunk.prepared, chunk.counts)
                if progress:
                    progress(chunk.position, data.size)
        pipeline.close()
        writer.finish(datetime.now(UTC))
    except BaseException as e:  # whatever stops the load, stop the writers and say so
        pipeline.abandon()
        with contextlib.suppress(IdgraphError):
            writer.fail(f"{type(e).__name__}: {e}", datetime.now(UTC))
        if isinstance(e, OSError | EOFError):
            raise InputError(f"{data.name}: could not be read to the end: {e}") from e
        raise
    finally:
        rejects_file = rejects.close()
    if progress:
        progress(data.size, data.size)
    return LoadReport(
        batch.id,
        source,
        data.name,
        data.sha256,
        "completed",
        writer.committed_counts(),
        rejects_file,
        time.monotonic() - started,
        len(state.done),
        tuple(rejects.records),
        tuple(rejects.values),
    )


class _ChunkPipeline:
    """Writes chunks on background threads while the caller parses on.

    Parsing is Python work and writing mostly waits on Neo4j; with ``writers`` concurrent
    transactions Neo4j also uses more than one core (chunk writes commute, see
    :mod:`identity.store.writer`). The queue holds at most ``writers`` chunks beyond those
    being written: memory stays bounded.
    """

    def __init__(self, writer: BatchWriter, writers: int, rejects: RejectsFile) -> None:
        self._writer = writer
        self._rejects = rejects
        self._queue: queue.Queue[tuple[int, Prepared, Counts] | None] = queue.Queue(writers)
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._run, name=f"idgraph-writer-{n}", daemon=True)
            for n in range(writers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, index: int, prepared: Prepared, counts: Counts) -> None:
        self._put((index, prepared, counts))

    def close(self) -> None:
        for _ in self._threads:
            self._put(None)
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error

    def abandon(self) -> None:
        if self._error is None:
            self._error = InputError("load abandoned")
        for thread in self._threads:
            thread.join(timeout=60)

    def _put(self, item: tuple[int, Prepared, Counts] | None) -> None:
        while True:
            if self._error is not None and item is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if not any(t.is_alive() for t in self._threads):
                    return

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                if self._error is not None:
                    return
                continue
            if item is None or self._error is not None:
                return
            index, prepared, counts = item
            try:
                outcome = self._writer.write_chunk(index, prepared, counts)
            except BaseException as e:
                self._error = e
                return
            if outcome is None:
                continue
            for rejection in outcome.forgotten_records:
                self._rejects.add(rejection, whole_record=True)
            for rejection in outcome.forgotten_values:
                self._rejects.add(rejection, whole_record=False)
            for dup in outcome.duplicates:
                self._rejects.add(
                    Rejection(
                        DUPLICATE,
                        f"messageId {dup.message_id!r} was already loaded",
                        dup.record,
                        "messageId",
                    ),
                    whole_record=True,
                )


def segment_parser(ctx: ServiceContext, source: str, party: Party) -> SegmentParser:
    """How loads (and backfills) read Segment events of ``source``: the policy's identifier
    types, the settings' record limit, the context's normalizer."""
    policy = ctx.policy
    options = SegmentEventOptions(
        source=source,
        party=party,
        user_id_type=policy.user_id_type,
        previous_id_type=policy.previous_id_type,
        external_id_types=policy.external_id_types,
        max_record_bytes=ctx.settings.max_record_bytes,
    )
    return SegmentParser(options, ctx.normalizer.config)


def load_segment_file(
    ctx: ServiceContext,
    path: Path | Input,
    *,
    source: str = "segment",
    party: Party = "first",
    progress: Progress | None = None,
    keep_rejections: bool = False,
) -> LoadReport:
    """Load a file of Segment-spec events as one batch of ``source``; ``path`` may be an
    :class:`Input` held in memory (an HTTP request body), loaded exactly as a file would be."""
    settings = ctx.settings
    return load_file(
        ctx.graph,
        path,
        segment_parser(ctx, source, party),
        kind="segment",
        source=source,
        party=party,
        rejects_dir=settings.rejects_path,
        chunk_size=settings.chunk_size,
        writers=settings.load_writers,
        dedup_days=settings.dedup_days,
        progress=progress,
        keep_rejections=keep_rejections,
    )


def load_table_file(
    ctx: ServiceContext,
    path: Path,
    mapping: TableMapping,
    *,
    progress: Progress | None = None,
) -> LoadReport:
    """Load a CSV table through its mapping; the header is checked before anything is written."""
    check_header(path, mapping)
    settings, normalizer = ctx.settings, ctx.normalizer
    return load_file(
        ctx.graph,
        path,
        TableParser(mapping, normalizer.config),
        kind="csv",
        source=mapping.source,
        party=mapping.party,
        rejects_dir=settings.rejects_path,
        chunk_size=settings.chunk_size,
        writers=settings.load_writers,
        dedup_days=settings.dedup_days,
        progress=progress,
    )
