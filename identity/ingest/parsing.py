"""Parsing an input into chunks, in this process or in a parser process beside it.

A load is two kinds of work: preparing chunks (parsing JSON or CSV, normalization,
aggregation: Python) and writing them (Neo4j). Python runs one thread at a time, so
preparing a large file's chunks in a separate process lets that run on one core while the
load writes from another: the parser process reads the file, cuts it into chunks of
``chunk_size`` records, prepares each (:func:`identity.store.chunk.prepare`) and sends it
with its rejections and counts through a bounded queue (memory holds a few chunks whatever
the file's size). Small inputs (an HTTP request body, a file under :data:`PROCESS_ABOVE` bytes) are
parsed in this process: starting a process costs a few tenths of a second.

A parser is a picklable description (:class:`SegmentParser`, :class:`TableParser`) that builds
its normalizer where it runs; any other callable works in this process only.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from identity.errors import InputError
from identity.model import Observation, Rejection
from identity.normalize import Normalizer, NormalizerConfig
from identity.store.chunk import Prepared, prepare
from identity.store.rows import Counts
from loaders.records import open_input
from loaders.segment_events import SegmentEventOptions, read_segment_events
from loaders.table import TableMapping, read_table

Parse = Callable[[IO[bytes], datetime], Iterator[Observation | Rejection]]
PROCESS_ABOVE = 8 * 1024 * 1024  # bytes: a smaller file is parsed in this process
_AHEAD = 3  # chunks the parser process may have parsed ahead of the writers


@dataclass(frozen=True)
class SegmentParser:
    """Segment-spec events, as :func:`loaders.segment_events.read_segment_events` reads them."""

    options: SegmentEventOptions
    normalizer: NormalizerConfig

    def __call__(self, stream: IO[bytes], now: datetime) -> Iterator[Observation | Rejection]:
        return read_segment_events(stream, Normalizer(self.normalizer), self.options, now=now)


@dataclass(frozen=True)
class TableParser:
    """A CSV table through its mapping, as :func:`loaders.table.read_table` reads it."""

    mapping: TableMapping
    normalizer: NormalizerConfig

    def __call__(self, stream: IO[bytes], now: datetime) -> Iterator[Observation | Rejection]:
        return read_table(stream, self.mapping, Normalizer(self.normalizer), now=now)


@dataclass
class ParsedChunk:
    """One chunk of records: its counts, its observations prepared for writing (see
    :func:`identity.store.chunk.prepare`; None for a chunk an interrupted run wrote), the
    records rejected whole and the values rejected inside accepted ones, and how far into
    the raw input it ends (for progress)."""

    index: int
    counts: Counts = field(default_factory=Counts)
    observations: list[Observation] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    rejected_values: list[Rejection] = field(default_factory=list)
    position: int = 0
    prepared: Prepared | None = None

    def ready(self, batch: str, skip: frozenset[int]) -> ParsedChunk:
        """The chunk with its observations prepared for ``batch`` (unless in ``skip``)."""
        if self.index not in skip:
            self.prepared = prepare(self.observations, batch)
        self.observations = []
        return self


def chunks_of(
    parse: Parse, raw: IO[bytes], stream: IO[bytes], now: datetime, chunk_size: int
) -> Iterator[ParsedChunk]:
    """The chunks of ``stream``; always at least one (an input of no records is one empty
    chunk, so that its batch records its counts)."""
    chunk = ParsedChunk(0)
    for item in parse(stream, now):
        counts = chunk.counts
        counts.read += 1
        if isinstance(item, Rejection):
            counts.rejected += 1
            counts.reasons[item.code] += 1
            chunk.rejected.append(item)
        else:
            counts.accepted += 1
            chunk.observations.append(item)
            for value in item.rejected_values:
                counts.value_reasons[value.code] += 1
                chunk.rejected_values.append(value)
        if counts.read == chunk_size:
            chunk.position = raw.tell()
            yield chunk
            chunk = ParsedChunk(chunk.index + 1)
    if chunk.counts.read or chunk.index == 0:
        chunk.position = raw.tell()
        yield chunk


def parsed_chunks(
    path: Path | None,
    opener: Callable[[], Any],
    size: int,
    parse: Parse,
    now: datetime,
    chunk_size: int,
    batch: str,
    skip: frozenset[int],
) -> Generator[ParsedChunk, None, None]:
    """The input's chunks, prepared for writing ``batch``, from a parser process when the
    input is a large enough file and ``parse`` a picklable parser, else from this process;
    the chunks in ``skip`` (written by an interrupted run) come without observations."""
    if path is None or size < PROCESS_ABOVE or not isinstance(parse, SegmentParser | TableParser):
        with opener() as (raw, stream):
            for chunk in chunks_of(parse, raw, stream, now, chunk_size):
                yield chunk.ready(batch, skip)
        return
    yield from _from_process(path, parse, now, chunk_size, batch, skip)


def _from_process(
    path: Path,
    parse: SegmentParser | TableParser,
    now: datetime,
    chunk_size: int,
    batch: str,
    skip: frozenset[int],
) -> Iterator[ParsedChunk]:
    context = multiprocessing.get_context("spawn")
    channel: Any = context.Queue(_AHEAD)
    worker = context.Process(
        target=_parse_file,
        args=(path, parse, now, chunk_size, batch, skip, channel),
        name="idgraph-parser",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            try:
                item = channel.get(timeout=1.0)
            except queue.Empty:
                if not worker.is_alive():
                    raise InputError(
                        f"{path}: the parser process stopped (exit code {worker.exitcode})"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, tuple):  # (exception type name, message) from the parser
                kind, message = item
                if kind in ("OSError", "EOFError"):
                    raise OSError(message)
                raise InputError(message)
            yield item
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join(timeout=10)
        channel.close()


def _parse_file(
    path: Path,
    parse: SegmentParser | TableParser,
    now: datetime,
    chunk_size: int,
    batch: str,
    skip: frozenset[int],
    channel: Any,
) -> None:
    """The parser process: every chunk of ``path``, prepared, into ``channel``, then None
    (or an exception's type and message)."""
    try:
        with open_input(path) as (raw, stream):
            for chunk in chunks_of(parse, raw, stream, now, chunk_size):
                ready = chunk.ready(batch, skip)
                if ready.prepared is not None:
                    ready.prepared.pack()  # unpickled by the writer only if it needs them
                channel.put(ready)
        channel.put(None)
    except (OSError, EOFError) as e:
        channel.put((type(e).__name__, f"{e}"))
    except Exception as e:  # an input the parser cannot read at all: said, not raised here
        channel.put((type(e).__name__, str(e)))
