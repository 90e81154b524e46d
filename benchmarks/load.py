"""Load benchmark: idgraph's chunked UNWIND loader against a naive loader, in one run.

Both read the same synthetic Segment events (``idgraph synth``) through the same parser and
normalizer, into the same Neo4j. The naive loader writes each event in its own transaction
with one MERGE per identifier and per pair (what a first attempt usually looks like); it runs
on a prefix of the file (``--naive-events``), since at its rate the whole file would take
hours. The report compares events per second, end to end (file -> Neo4j).

    .venv/bin/python benchmarks/load.py                   # 1M events (100k people)
    .venv/bin/python benchmarks/load.py --people 200 --naive-events 300   # smoke size

Uses IDGRAPH_NEO4J_URI when set; otherwise starts a throwaway local server in a temporary
directory, its heap and page cache sized as ``idgraph neo4j start`` sizes them by default.
Writes JSON to benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _report import commit_measured, header, write
from bench_server import benchmark_server
from neo4j import ManagedTransaction
from rich.console import Console
from rich.table import Table

from identity.config import load_settings
from identity.context import ServiceContext
from identity.ingest.service import load_segment_file
from identity.model import Observation
from identity.normalize import make_normalizer
from identity.policy import Policy
from identity.store import chunk as chunk_module
from identity.store.chunk import Chunk, Prepared, prepare, write_chunk
from identity.store.driver import Graph
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


def idgraph_load(graph: Graph, path: Path, chunk: int) -> dict[str, Any]:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as rejects:
        settings = load_settings(rejects_dir=Path(rejects), chunk_size=chunk)
        report = load_segment_file(
            ServiceContext.create(graph, settings, Policy()), path, source="bench"
        )
    seconds = time.perf_counter() - started
    c = report.counts
    return {
        "events": c.read,
        "accepted": c.accepted,
        "rejected": c.rejected,
        "seconds": seconds,
        "events_per_s": c.read / seconds,
    }


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
    parser.add_argument("--events-per-person", type=float, default=10.0)
    parser.add_argument("--naive-events", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=5_000)
    parser.add_argument("--breakdown-events", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "load.json")
    args = parser.parse_args()
    options = SegmentEventOptions(source="bench")

    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        summary = generate(
            workdir / "data",
            SynthConfig(people=args.people, events_per_person=args.events_per_person),
        )
        events_file = summary.files["events"]
        console.print(
            f"synth: {summary.events:,} events for {summary.people:,} people in "
            f"{time.perf_counter() - started:.1f}s ({events_file.stat().st_size / 1e6:.0f} MB)"
        )
        parsing = parse_only(events_file, options)
        console.print(f"parse + normalize only: {parsing['events_per_s']:,.0f} events/s")
        with benchmark_server(workdir) as (graph, uri):
            console.print(f"Neo4j: {uri}")
            graph.wipe()
            init_schema(graph)
            naive = naive_load(graph, events_file, args.naive_events, options)
            console.print(f"naive: {naive['events']:,} events in {naive['seconds']:.1f}s")
            graph.wipe()
            ours = idgraph_load(graph, events_file, args.chunk_size)
            console.print(f"idgraph: {ours['events']:,} events in {ours['seconds']:.1f}s")
            counts = graph.read(
                "counts",
                "MATCH (i:Identifier) WITH count(i) AS ids "
                "MATCH ()-[r:LINKED]->() RETURN ids, count(r) AS links",
            )
            # last, on a server warmed up by the loads above
            parts = breakdown(graph, events_file, args.breakdown_events, args.chunk_size)
    ratio = ours["events_per_s"] / naive["events_per_s"]
    table = Table(title="file -> Neo4j, Segment events")
    for column in ("loader", "events", "seconds", "events/s"):
        table.add_column(column, justify="right" if column != "loader" else "left")
    table.add_row(
        "parse + normalize (no writes)",
        f"{parsing['events']:,}",
        f"{parsing['seconds']:.1f}",
        f"{parsing['events_per_s']:,.0f}",
    )
    table.add_row(
        "naive: one tx + MERGE per event",
        f"{naive['events']:,}",
        f"{naive['seconds']:.1f}",
        f"{naive['events_per_s']:,.0f}",
    )
    table.add_row(
        f"idgraph: UNWIND chunks of {args.chunk_size:,}",
        f"{ours['events']:,}",
        f"{ours['seconds']:.1f}",
        f"{ours['events_per_s']:,.0f}",
    )
    console.print(table)
    console.print(
        f"idgraph / naive: {ratio:.1f}x; graph: {counts[0]['ids']:,} identifiers, "
        f"{counts[0]['links']:,} links"
    )
    where = Table(
        title=f"where the time goes: first {args.breakdown_events:,} events, one writer, "
        "each statement of a chunk timed on its own"
    )
    where.add_column("step")
    where.add_column("seconds", justify="right")
    where.add_column("share", justify="right")
    total = sum(parts.values())
    for name, value in parts.items():
        where.add_row(name, f"{value:.2f}", f"{value / total:.0%}")
    console.print(where)
    write(
        args.out,
        {
            **header("load", commit_measured()),
            "people": args.people,
            "chunk_size": args.chunk_size,
            "parse_only": parsing,
            "naive": naive,
            "idgraph": ours,
            "breakdown_seconds": parts,
            "ratio": ratio,
            "graph": counts[0],
        },
        console,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
