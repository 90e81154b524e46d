"""``idgraph backfill``: a new database built from files at bulk speed, as loads would leave it.

Loads write chunk by chunk in transactions; a backfill reads the same files with the same
parsers and normalizer, computes what the loads would have written, and hands it to
``neo4j-admin database import full`` with the server stopped. The steps, each timed:

1. **parse**: every file, in the order given (the order its loads would have run in),
   streamed through the load's parser into an on-disk DuckDB database
   (:mod:`identity.backfill.reading`, :mod:`identity.backfill.staging`); rejects files as a
   load writes them.
2. **aggregate**: duplicates decided as a load decides them, then one row per identifier,
   link, trait, event aggregate and DMP membership (:mod:`identity.backfill.aggregate`).
3. **csv**: the import files, gzipped, with their headers (:mod:`identity.backfill.csvfiles`).
4. **import**: ``neo4j-admin database import full`` (the database found is put back if it
   fails; :mod:`identity.store.bulk`), between a **restart**'s stop and start of the server.
5. **schema**: the migrations (:func:`identity.store.schema.init_schema`) and the indexes
   online.
6. **finish**: with Cypher, what is small or what the importer cannot take: sources,
   batches and their chunk claims (so that loading a backfilled file again says "already
   loaded"), the tombstones kept by ``--replace``, odd property names and value types.

Memory stays bounded: Python holds one record and a staging buffer; DuckDB works within
``IDGRAPH_BACKFILL_MEMORY`` and spills to ``<state dir>/backfill``; neo4j-admin runs with
``IDGRAPH_BACKFILL_HEAP`` of heap. Time is linear in the input plus the sorts of step 2.
"""

from __future__ import annotations

import glob
import os
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from identity.backfill.aggregate import aggregate, file_counts, find_duplicates
from identity.backfill.csvfiles import ImportFiles, extra_values, write_import_files
from identity.backfill.reading import FileResult, FileSpec, add_late_rejections, stage_file
from identity.backfill.staging import Staging
from identity.config import Settings
from identity.context import ServiceContext
from identity.errors import IdgraphError, InputError
from identity.ingest.parsing import TableParser
from identity.ingest.service import Input, LoadReport, Progress, segment_parser
from identity.model import PARTIES, Party
from identity.store import bulk_writes
from identity.store.bulk import import_database
from identity.store.local_server import LocalServer, ServerConfig
from identity.store.rows import EVIDENCE_CAP, Counts
from identity.store.schema import init_schema
from loaders.table import check_header, load_mapping

PHASES = ("parse", "aggregate", "csv", "import", "restart", "schema", "finish")
FileProgress = Callable[[Path], AbstractContextManager[Progress | None]]


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill did: a load's report per file, the totals, seconds per phase (see
    :data:`PHASES`) and the rows written (identifiers, links, ...)."""

    files: tuple[LoadReport, ...]
    totals: Counts
    phases: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())

    @property
    def records_per_second(self) -> float:
        return self.totals.read / self.seconds if self.seconds else 0.0


def local_server(settings: Settings) -> LocalServer:
    """The local server a backfill rebuilds, started if it is not running. An external
    server (``IDGRAPH_NEO4J_URI``) is refused: the import needs the server's files."""
    if settings.neo4j_uri:
        raise InputError(
            f"idgraph backfill builds the database files of the local server, but "
            f"IDGRAPH_NEO4J_URI points at {settings.neo4j_uri}: run the backfill on the "
            "database host with its server stopped (neo4j-admin database import), or load "
            "the files with `idgraph load`"
        )
    server = LocalServer(ServerConfig.from_settings(settings))
    server.start()
    return server


def expand(pattern: Path) -> list[Path]:
    """The files a command-line argument names: a glob's matches (sorted), else itself."""
    text = str(pattern)
    if not any(c in text for c in "*?["):
        return [pattern]
    found = sorted(glob.glob(text))
    if not found:
        raise InputError(f"no file matches {text}")
    return [Path(p) for p in found]


def backfill(
    ctx: ServiceContext,
    segment_files: Sequence[Path],
    csv_files: Sequence[tuple[Path, Path]],
    *,
    replace: bool = False,
    source: str = "segment",
    party: str = "first",
    server: LocalServer | None = None,
    file_progress: FileProgress | None = None,
) -> BackfillReport:
    """Build the database from ``segment_files`` then ``csv_files`` ((file, mapping) pairs;
    globs allowed), in that order; see the module docstring. ``server``: the local server of
    ``ctx.graph`` (default: the settings'). Refuses a database holding data unless
    ``replace``; with it, the old database's tombstones are kept and applied."""
    settings = ctx.settings
    if party not in PARTIES:
        raise InputError(f"--party must be one of {', '.join(PARTIES)}, got {party!r}")
    specs = _specs(ctx, segment_files, csv_files, source, party)
    if server is None:
        server = local_server(settings)
    existing = bulk_writes.data_nodes(ctx.graph)
    if existing and not replace:
        raise InputError(
            f"the database already holds data ({existing:,} nodes): a backfill builds a new "
            "database. Load new files into it with `idgraph load`, or pass --replace to "
            "replace it (its tombstones are kept: erased people stay erased)"
        )
    tombstones = bulk_writes.read_tombstones(ctx.graph) if existing else []
    work = settings.state_dir / "backfill" / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
    phases = dict.fromkeys(PHASES, 0.0)
    staging = Staging(work / "staging", memory=settings.backfill_memory)
    try:
        clock = time.monotonic()
        results = _parse(staging, specs, settings, tombstones, file_progress)
        phases["parse"], clock = time.monotonic() - clock, time.monotonic()
        rows = {"duplicates": find_duplicates(staging.con, settings.dedup_days)}
        aggregate(staging.con, settings.dedup_days, EVIDENCE_CAP)
        read = [r for r in results if r.status == "completed"]
        settled = file_counts(staging.con)
        for result in read:
            result.settle(*settled[result.number])
            add_late_rejections(staging.con, result, settings.rejects_path)
        phases["aggregate"], clock = time.monotonic() - clock, time.monotonic()
        files = write_import_files(staging.con, work / "import")
        rows.update(files.counts)
        phases["csv"], clock = time.monotonic() - clock, time.monotonic()
        server.stop()
        try:
            imported = import_database(
                server, files.nodes, files.relationships, work_dir=work,
                heap=settings.backfill_heap, database=settings.neo4j_database,
            )  # fmt: skip
        finally:
            server.start()
        phases["import"] = imported.seconds
        phases["restart"], clock = time.monotonic() - clock - imported.seconds, time.monotonic()
        bulk_writes.reconnect(ctx.graph)
        init_schema(ctx.graph, data_current=True)
        bulk_writes.await_indexes(ctx.graph)
        phases["schema"], clock = time.monotonic() - clock, time.monotonic()
        _finish(ctx, staging, read, tombstones, files, rows)
        phases["finish"] = time.monotonic() - clock
    except duckdb.Error as e:
        state = (
            "the import was done, the rest was not"
            if phases["import"]
            else "nothing was imported, the database is as it was"
        )
        raise IdgraphError(
            f"backfill: the staging database failed ({type(e).__name__}: {e}); {state}. "
            "Out of memory: raise "
            f"IDGRAPH_BACKFILL_MEMORY (now {settings.backfill_memory}); out of disk: free "
            f"space under {work.parent}"
        ) from e
    finally:
        staging.close()
    shutil.rmtree(work, ignore_errors=True)
    return BackfillReport(tuple(_report(r) for r in results), _totals(results), phases, rows)


def _specs(
    ctx: ServiceContext,
    segment_files: Sequence[Path],
    csv_files: Sequence[tuple[Path, Path]],
    source: str,
    party: Party,
) -> list[FileSpec]:
    """Every input checked before anything is written: files readable and not empty,
    mappings valid, CSV headers holding the mapped columns."""
    parser = segment_parser(ctx, source, party)
    specs = [
        FileSpec(Input.of_file(path), "segment", source, party, parser)
        for pattern in segment_files
        for path in expand(pattern)
    ]
    for pattern, mapping_file in csv_files:
        mapping = load_mapping(mapping_file, ctx.policy.types)
        for path in expand(pattern):
            check_header(path, mapping)
            specs.append(
                FileSpec(
                    Input.of_file(path), "csv", mapping.source, mapping.party,
                    TableParser(mapping, ctx.normalizer.config),
                )
            )  # fmt: skip
    if not specs:
        raise InputError("nothing to backfill: give --segment or --csv files")
    return specs


def _parse(
    staging: Staging,
    specs: list[FileSpec],
    settings: Settings,
    tombstones: list[dict[str, Any]],
    file_progress: FileProgress | None,
) -> list[FileResult]:
    hashes = frozenset(str(t["hash"]) for t in tombstones if "hash" in t)
    results: list[FileResult] = []
    first: dict[str, FileResult] = {}
    seq = chunk_base = 0
    for number, spec in enumerate(specs):
        result = FileResult(spec, number)
        results.append(result)
        earlier = first.get(spec.batch_id)
        if earlier is not None:  # the same content from the same source: one batch
            result.status, result.counts = "already_loaded", earlier.counts
            continue
        first[spec.batch_id] = result
        progress = file_progress(Path(spec.input.name)) if file_progress else nullcontext()
        with progress as bar:
            seq = stage_file(
                staging, spec, result, seq=seq, chunk_base=chunk_base,
                chunk_size=settings.chunk_size, tombstones=hashes,
                rejects_dir=settings.rejects_path, progress=bar,
            )  # fmt: skip
        chunk_base += result.chunks
    return results


def _finish(
    ctx: ServiceContext,
    staging: Staging,
    read: list[FileResult],
    tombstones: list[dict[str, Any]],
    files: ImportFiles,
    rows: dict[str, int],
) -> None:
    finished = datetime.now(UTC)
    sources: dict[str, dict[str, Any]] = {}
    batches = []
    for r in read:
        spec, c = r.spec, r.counts
        sources.setdefault(
            spec.source, {"name": spec.source, "party": spec.party, "created_at": r.started_at}
        )
        batch: dict[str, Any] = {
            "id": spec.batch_id, "source": spec.source, "party": spec.party,
            "file": spec.input.name, "sha256": spec.input.sha256, "kind": spec.kind,
            "status": "completed", "started_at": r.started_at, "finished_at": finished,
            "chunk_size": ctx.settings.chunk_size, "chunks_done": r.chunks, "read": c.read,
            "accepted": c.accepted, "rejected": c.rejected,
            "rejected_values": sum(c.value_reasons.values()),
        }  # fmt: skip
        batch.update({f"rejected.{k}": n for k, n in c.reasons.items() if n})
        batch.update({f"rejected_value.{k}": n for k, n in c.value_reasons.items() if n})
        batches.append(batch)
    chunks = ((r.spec.batch_id, i) for r in read for i in range(r.chunks))
    bulk_writes.write_lineage(ctx.graph, list(sources.values()), batches, chunks)
    bulk_writes.write_tombstones(ctx.graph, tombstones)
    rows["tombstones"] = len(tombstones)
    bulk_writes.rename_properties(ctx.graph, files.renames)
    rows["renamed_properties"] = len(files.renames)
    rows["properties_set_after"] = bulk_writes.set_identifier_values(
        ctx.graph, extra_values(staging.con)
    )


def _report(result: FileResult) -> LoadReport:
    spec = result.spec
    return LoadReport(
        spec.batch_id, spec.source, spec.input.name, spec.input.sha256, result.status,
        result.counts, result.rejects_file, result.seconds,
    )  # fmt: skip


def _totals(results: list[FileResult]) -> Counts:
    total = Counts()
    for r in results:
        if r.status != "completed":
            continue
        total.add(r.counts)
    return total
