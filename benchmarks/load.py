"""Load benchmark: ``idgraph load`` and ``idgraph backfill`` against a naive loader, in one run.

All read the same synthetic Segment events (``idgraph synth``, by default the shape of a
mobile-app stream: every event carries an anonymousId, a device id and an advertising id, a
quarter are ``identify`` calls) through the same parser and normalizer. The naive loader
writes each event in its own transaction with one MERGE per identifier and per pair (what a
first attempt usually looks like), on a prefix of the file (``--naive-events``: at its rate
the whole file would take hours). ``idgraph load`` streams the file into the online
database; ``idgraph backfill`` builds a new database offline with ``neo4j-admin database
import``, on a server of its own (it stops and starts it). Each of the two runs in a
process of its own, so its peak memory (with its children: the parser process,
``neo4j-admin``) is its own; the server's peak is read from ``/proc``. Reported: events per
second end to end (file -> database ready), the ratio to the load, peak RSS, where the
backfill's time goes by phase and the load's by statement.

    .venv/bin/python benchmarks/load.py                   # 1.8M events (100k people)
    .venv/bin/python benchmarks/load.py --people 20000    # 363k events
    .venv/bin/python benchmarks/load.py --people 40 --naive-events 60 --heap 512m \
        --pagecache 128m                                  # smoke size

Starts a throwaway local server in a temporary directory, its heap and page cache sized as
``idgraph neo4j start`` sizes them by default (``--heap``, ``--pagecache`` to change that).
With IDGRAPH_NEO4J_URI set, naive and load run on that server (wiped); the backfill always
runs on a throwaway server. Every idgraph setting
is the default but ``--chunk-size``'s. Writes JSON to benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _report import commit_measured, header, peak_rss_mb, process_peak_rss_mb, write
from bench_server import PASSWORD, benchmark_server, throwaway_server
from neo4j import ManagedTransaction
from rich.console import Console
from rich.table import Table

from identity.backfill.service import backfill
from identity.config import load_settings
from identity.context import ServiceContext
from identity.ingest.service import load_segment_file
from identity.model import Observation
from identity.normalize import make_normalizer
from identity.policy import Policy
from identity.store import chunk as chunk_module
from identity.store.chunk import Chunk, Prepared, prepare, write_chunk
from identity.store.driver import Graph, open_driver
from identity.store.local_server import LocalServer, ServerConfig
from identity.store.rows import Counts
from identity.store.schema import init_schema
from loaders.records import open_input
from loaders.segment_events import SegmentEventOptions, read_segment_events
from loaders.synth import SynthConfig, generate

console = Console()


class _TimedTx:
    """A transaction that runs each statement to completion and adds its time to ``seconds``
    under the statement's name in :mod:`identity.store.chunk`."""

    def __init__(self, tx: ManagedTransaction, seconds: dict[str, float]) -> None:
        self.tx = tx
        self.seconds = seconds
        self.names = {
            value: name.strip("_").lower().replace("_", " ")
            for name, value in vars(chunk_module).items()
            if name.startswith("_") and name.isupper() and isinstance(value, str)
        }

    def run(self, query: str, parameters: Any = None, **kwargs: Any) -> _Records:
        began = time.perf_counter()
        records = _Records(self.tx.run(query, parameters, **kwargs))
        name = self.names.get(query, "other")
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
        return records


class _Records(list[Any]):
    """A statement's records, all read, answering ``consume()`` as a result does."""

    def consume(self) -> None:
        return None


def _timed_write(
    tx: ManagedTransaction,
    chunk: Chunk,
    prepared: Prepared,
    counts: Counts,
    seconds: dict[str, float],
) -> None:
    write_chunk(_TimedTx(tx, seconds), chunk, prepared, counts)  # type: ignore[arg-type]


def breakdown(graph: Graph, path: Path, limit: int, chunk: int) -> dict[str, float]:
    """Where a load's time goes: the loader's own chunk writer over the first ``limit``
    events of a wiped database (one writer, one transaction per chunk), each of its
    statements timed on its own, and its Python preparation (deduplicate, aggregate)."""
    normalizer = make_normalizer(load_settings(), Policy())
    options = SegmentEventOptions(source="bench")
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    with open_input(path) as (_, stream):
        parsed = read_segment_events(stream, normalizer, options, now=datetime.now(UTC))
        observations = [o for o in itertools.islice(parsed, limit) if isinstance(o, Observation)]
    seconds["parse + normalize (Python)"] = time.perf_counter() - began
    graph.wipe()
    init_schema(graph)
    with graph.driver.session(database=graph.database) as session:
        for index, start in enumerate(range(0, len(observations), chunk)):
            part = observations[start : start + chunk]
            began = time.perf_counter()
            prepared = prepare(part, "breakdown")
            seconds["prepare: dedupe, aggregate (Python)"] = (
                seconds.get("prepare: dedupe, aggregate (Python)", 0.0)
                + time.perf_counter()
                - began
            )
            where = Chunk(f"breakdown#{index}", "breakdown", "bench", "first", 30, False)
            counts = Counts(read=len(part), accepted=len(part))
            began = time.perf_counter()
            statements = sum(seconds.get(n, 0.0) for n in seconds if "Python" not in n)
            session.execute_write(_timed_write, where, prepared, counts, seconds)
            spent = time.perf_counter() - began
            in_statements = sum(seconds.get(n, 0.0) for n in seconds if "Python" not in n)
            seconds["compute + commit (Python, Neo4j)"] = (
                seconds.get("compute + commit (Python, Neo4j)", 0.0)
                + spent
                - (in_statements - statements)
            )
    graph.wipe()
    init_schema(graph)
    return seconds


def _naive_write(tx: ManagedTransaction, obs: Observation) -> None:
    for ident in obs.identifiers:
        tx.run(
            "MERGE (i:Identifier {key: $key}) "
            "ON CREATE SET i.type = $type, i.value = $value, i.first_seen = $at, "
            "i.last_seen = $at, i.seen = 1 "
            "ON MATCH SET i.seen = i.seen + 1, i.last_seen = $at",
            key=ident.key,
            type=ident.type,
            value=ident.value,
            at=obs.at,
        ).consume()
    keys = sorted(i.key for i in obs.identifiers)
    for a, b in itertools.combinations(keys, 2):
        tx.run(
            "MATCH (a:Identifier {key: $a}), (b:Identifier {key: $b}) "
            "MERGE (a)-[r:LINKED]->(b) "
            "ON CREATE SET r.count = 1, r.first_seen = $at, r.last_seen = $at "
            "ON MATCH SET r.count = r.count + 1, r.last_seen = $at",
            a=a,
            b=b,
            at=obs.at,
        ).consume()


def naive_load(
    graph: Graph, path: Path, limit: int, options: SegmentEventOptions
) -> dict[str, Any]:
    normalizer = make_normalizer(load_settings(), Policy())
    started = time.perf_counter()
    events = 0
    with open_input(path) as (_, stream), graph.driver.session(database=graph.database) as s:
        for item in itertools.islice(
            read_segment_events(stream, normalizer, options, now=datetime.now(UTC)), limit
        ):
            events += 1
            if isinstance(item, Observation):
                s.execute_write(_naive_write, item)
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def _graph(uri: str, password: str) -> tuple[Graph, Any]:
    settings = load_settings(neo4j_uri=uri, neo4j_password=password)
    driver = open_driver(settings)
    return Graph(driver, settings.neo4j_database), driver


def idgraph_load(uri: str, password: str, path: Path, chunk: int) -> dict[str, Any]:
    """``idgraph load segment`` of ``path`` with the default settings but ``chunk``, in a
    process of its own (so that its peak memory is its own)."""
    graph, driver = _graph(uri, password)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as rejects:
            settings = load_settings(
                neo4j_uri=uri, neo4j_password=password, rejects_dir=Path(rejects),
                chunk_size=chunk,
            )  # fmt: skip
            report = load_segment_file(
                ServiceContext.create(graph, settings, Policy()), path, source="bench"
            )
    finally:
        driver.close()
    seconds = time.perf_counter() - started
    c = report.counts
    return {
        "events": c.read,
        "accepted": c.accepted,
        "rejected": c.rejected,
        "seconds": seconds,
        "events_per_s": c.read / seconds,
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def idgraph_backfill(config: ServerConfig, path: Path, chunk: int, workdir: Path) -> dict[str, Any]:
    """``idgraph backfill --segment path`` into the empty database of the server of ``config``, with
    the default settings but ``chunk``, in a process of its own."""
    server = LocalServer(config)
    graph, driver = _graph(server.uri, config.password)
    started = time.perf_counter()
    try:
        settings = load_settings(
            neo4j_uri=server.uri, neo4j_password=config.password, chunk_size=chunk,
            rejects_dir=workdir / "rejects", state_dir=workdir / "state",
        )  # fmt: skip
        report = backfill(
            ServiceContext.create(graph, settings, Policy()), [path], [], source="bench",
            server=server,
        )  # fmt: skip
    finally:
        driver.close()
    seconds = time.perf_counter() - started
    return {
        "events": report.totals.read,
        "accepted": report.totals.accepted,
        "rejected": report.totals.rejected,
        "seconds": seconds,
        "events_per_s": report.totals.read / seconds,
        "phases": report.phases,
        "rows": report.rows,
        "peak_rss_mb": peak_rss_mb(children=True),
    }


def _in_own_process(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def parse_only(path: Path, options: SegmentEventOptions) -> dict[str, Any]:
    normalizer = make_normalizer(load_settings(), Policy())
    started = time.perf_counter()
    with open_input(path) as (_, stream):
        events = sum(
            1 for _ in read_segment_events(stream, normalizer, options, now=datetime.now(UTC))
        )
    seconds = time.perf_counter() - started
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def main() -> int:
    logging.getLogger("neo4j").setLevel(logging.ERROR)  # retried deadlocks are expected
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--events-per-person", type=float, default=18.0)
    parser.add_argument(
        "--apps-only", action=argparse.BooleanOptionalAction, default=True,
        help="every event from a mobile app (anonymousId, device id, advertising id)",
    )  # fmt: skip
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--breakdown-events", type=int, default=50_000)
    parser.add_argument("--heap", default="auto", help="of the throwaway servers (default: auto)")
    parser.add_argument("--pagecache", default="auto", help="of the throwaway servers")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load.json")
    args = parser.parse_args()
    options = SegmentEventOptions(source="bench")
    sizes = {"heap": args.heap, "pagecache": args.pagecache}

    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        summary = generate(
            workdir / "data",
            SynthConfig(
                people=args.people, events_per_person=args.events_per_person,
                apps_only=args.apps_only,
            ),
        )  # fmt: skip
        events_file = summary.files["events"]
        console.print(
            f"synth: {summary.events:,} events for {summary.people:,} people in "
            f"{time.perf_counter() - started:.1f}s ({events_file.stat().st_size / 1e6:.0f} MB)"
        )
        parsing = parse_only(events_file, options)
        console.print(f"parse + normalize only: {parsing['events_per_s']:,.0f} events/s")
        with contextlib.ExitStack() as stack:
            external = os.environ.get("IDGRAPH_NEO4J_URI")
            if external:
                graph, uri = stack.enter_context(benchmark_server(workdir))
                password, server = load_settings().neo4j_password.get_secret_value(), None
            else:
                graph, server = stack.enter_context(throwaway_server(workdir, **sizes))
                uri, password = server.uri, PASSWORD
            console.print(f"Neo4j: {uri}")
            graph.wipe()
            init_schema(graph)
            naive = naive_load(graph, events_file, args.naive_events, options)
            console.print(f"naive: {naive['events']:,} events in {naive['seconds']:.1f}s")
            graph.wipe()
            ours = _in_own_process(idgraph_load, uri, password, events_file, args.chunk_size)
            ours["neo4j_peak_rss_mb"] = process_peak_rss_mb(server.status().pid if server else None)
            console.print(f"idgraph load: {ours['events']:,} events in {ours['seconds']:.1f}s")
            counts = _graph_counts(graph)
            # last, on a server warmed up by the loads above
            parts = breakdown(graph, events_file, args.breakdown_events, args.chunk_size)
        # a backfill builds a new database, as a user runs it: into an empty one of a server
        # of its own (it stops and starts it), started once the load's is stopped
        with throwaway_server(workdir / "backfill", **sizes) as (graph, server):
            bulk = _in_own_process(
                idgraph_backfill, server.config, events_file, args.chunk_size, workdir / "bf"
            )
            bulk["neo4j_peak_rss_mb"] = process_peak_rss_mb(server.status().pid)
            console.print(f"idgraph backfill: {bulk['events']:,} events in {bulk['seconds']:.1f}s")
            graph.forget_bookmarks()  # a new database replaced the one the driver knew
            bulk_counts = _graph_counts(graph)
    _print_tables(args, parsing, naive, ours, bulk, counts, bulk_counts, parts)
    write(
        args.out,
        {
            **header("load", commit_measured()),
            "people": args.people,
            "apps_only": args.apps_only,
            "chunk_size": args.chunk_size,
            "server_sizes": sizes if not os.environ.get("IDGRAPH_NEO4J_URI") else "external",
            "parse_only": parsing,
            "naive": naive,
            "idgraph": ours,
            "backfill": bulk,
            "breakdown_seconds": parts,
            "ratio": ours["events_per_s"] / naive["events_per_s"],
            "backfill_ratio": bulk["events_per_s"] / ours["events_per_s"],
            "graph": counts,
            "backfill_graph": bulk_counts,
        },
        console,
    )
    return 0


def _graph_counts(graph: Graph) -> dict[str, int]:
    rows = graph.read(
        "counts",
        "MATCH (i:Identifier) WITH count(i) AS ids "
        "MATCH ()-[r:LINKED]->() RETURN ids, count(r) AS links",
    )
    return {"ids": rows[0]["ids"], "links": rows[0]["links"]}


def _print_tables(
    args: argparse.Namespace,
    parsing: dict[str, Any],
    naive: dict[str, Any],
    ours: dict[str, Any],
    bulk: dict[str, Any],
    counts: dict[str, int],
    bulk_counts: dict[str, int],
    parts: dict[str, float],
) -> None:
    def mb(value: float | None) -> str:
        return f"{value:,.0f}" if value is not None else "-"

    table = Table(title="file -> Neo4j, Segment events (default settings)")
    for column in ("loader", "events", "seconds", "events/s", "vs load", "peak RSS MB",
                   "Neo4j peak RSS MB"):  # fmt: skip
        table.add_column(column, justify="right" if column != "loader" else "left")
    rows = [
        ("parse + normalize (no writes)", parsing, None, None),
        ("naive: one tx + MERGE per event", naive, None, None),
        (f"idgraph load (chunks of {args.chunk_size:,})", ours, ours["peak_rss_mb"],
         ours["neo4j_peak_rss_mb"]),
        ("idgraph backfill (neo4j-admin import)", bulk, bulk["peak_rss_mb"],
         bulk["neo4j_peak_rss_mb"]),
    ]  # fmt: skip
    for name, run, rss, server_rss in rows:
        table.add_row(
            name,
            f"{run['events']:,}",
            f"{run['seconds']:.1f}",
            f"{run['events_per_s']:,.0f}",
            f"{run['events_per_s'] / ours['events_per_s']:.2f}x",
            mb(rss),
            mb(server_rss),
        )
    console.print(table)
    console.print(
        f"graph after load: {counts['ids']:,} identifiers, {counts['links']:,} links; "
        f"after backfill: {bulk_counts['ids']:,}, {bulk_counts['links']:,}"
    )
    phases = Table(title="backfill: where the time goes")
    phases.add_column("phase")
    phases.add_column("seconds", justify="right")
    phases.add_column("share", justify="right")
    for name, value in bulk["phases"].items():
        phases.add_row(name, f"{value:.1f}", f"{value / bulk['seconds']:.0%}")
    console.print(phases)
    where = Table(
        title=f"load: where the time goes, first {args.breakdown_events:,} events, one writer, "
        "each statement of a chunk timed on its own"
    )
    where.add_column("step")
    where.add_column("seconds", justify="right")
    where.add_column("share", justify="right")
    total = sum(parts.values())
    for name, value in parts.items():
        where.add_row(name, f"{value:.2f}", f"{value / total:.0%}")
    console.print(where)


if __name__ == "__main__":
    sys.exit(main())
