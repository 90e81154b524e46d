"""Resolve benchmark: full and incremental resolution of a person-like graph, in one run.

Set-up (reported, not part of any measure; ``benchmarks/person_graph.py``) writes
``--identifiers`` identifiers and about twice as many links straight into Neo4j with batched
``UNWIND ... CREATE`` statements, shaped as the loaders write them
(:mod:`identity.store.writer`). People hold a crm id and/or an email, a few cookies, sometimes a
phone, an app install (device and maid) and a DMP id; their identifiers are linked as their
Segment events would link them (each cookie to the person's crm id and email, anchors to each
other, an app install to the anchors and the app's cookie, some aliases between cookies).
They say what loads would have stored: CRM traits on crm ids, a name on emails, page views
on cookies, app opens on devices (what profiles are built from). Then
what makes the guards work: third-party DMP links (a few to the wrong person); direct-shared
identifiers: friends logging in on someone else's browser (a cookie tying two crm ids), kiosk
cookies linked to 30 people's crm ids and emails, family tablets (device, maid, cookie) linked
to two crm ids; two-hop shared: store emails typed on 40 people's cookies; bridges: family
emails typed on the browsers of two people who each have their own email; limit splits:
customers whose crm id holds four phone numbers (limit 3). The seed fixes the graph; every link
was last seen within the last 20 days, so no TTL (dmp_id: 30 days) expires anything.

Then, on that graph:

1. **full resolve** end to end, ``resolve_identities(full=True)``: read links from Neo4j,
   compute, write the changes. Twice: the first run creates every identity, the second finds
   them all unchanged. Each split into read, compute, write and the rest (lock, run records).
2. **the compute step alone**, on the snapshot a full run reads (``read_full``): the engine
   (``identity.resolve.engine.resolve``) and the change plan (``lineage.plan``), side by side
   with connected components of the same links by scipy (``csgraph`` on the integer ends, CSR
   built included), by idgraph's key path (``identity.resolve.components``, interning and
   canonical sort included) and by networkx (``Graph`` built included). Best of ``--repeat``.
3. **incremental resolve**: ``--batches`` batches of ``--batch-events`` Segment events, each
   loaded with the real loader (``load_segment_file``), then resolved (``resolve_identities``,
   incremental). Events come back on a known cookie, log in on a new browser, browse
   anonymously, arrive new, open an app, log in on a friend's browser or on a kiosk. p50 and p95
   (linear interpolation) of the resolve time over the batches; the load time for information.

    .venv/bin/python benchmarks/resolve.py          # 1M identifiers, ~2M links (~10 min, 2 cores)
    .venv/bin/python benchmarks/resolve.py --identifiers 3000 --batches 3 --batch-events 50

Uses IDGRAPH_NEO4J_URI when set, and WIPES that database; otherwise starts a throwaway local
server (``--heap``, ``--pagecache``) in a temporary directory. Writes JSON to
benchmarks/results/resolve.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
from _report import commit_measured, header, peak_rss_mb, write
from bench_server import benchmark_server
from person_graph import (
    PersonGraph,
    batch_events,
    check_keys,
    write_graph,
)
from rich.console import Console
from rich.table import Table
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components as csgraph_components

from identity.config import Settings, load_settings
from identity.context import ServiceContext
from identity.ingest.service import load_segment_file
from identity.normalize import make_normalizer
from identity.policy import Policy
from identity.resolve.components import connected_components
from identity.resolve.engine import resolve
from identity.resolve.lineage import plan
from identity.resolve.service import ResolveReport, resolve_identities
from identity.resolve.snapshot import read_full
from identity.store.driver import Graph
from identity.store.schema import init_schema

console = Console()

TARGETS = {"full_seconds": 60.0, "compute_vs_scipy": 3.0, "incremental_p95_seconds": 0.5}


# -- measures ----------------------------------------------------------------------------------


def full_run(graph: Graph, settings: Settings, policy: Policy) -> dict[str, Any]:
    started = time.perf_counter()
    report = resolve_identities(ServiceContext.create(graph, settings, policy), full=True)
    return _summary(report, time.perf_counter() - started)


def _summary(report: ResolveReport, wall: float) -> dict[str, Any]:
    return {
        "mode": report.mode,
        "seconds": wall,
        "read": report.seconds.get("read", 0.0),
        "compute": report.seconds.get("compute", 0.0),
        "write": report.seconds.get("write", 0.0),
        "profiles": report.seconds.get("profiles", 0.0),
        "profiles_changed": report.profiles,
        # the lock, the run record, pending batches, marking the run completed
        "other": wall
        - sum(report.seconds.get(k, 0.0) for k in ("read", "compute", "write", "profiles")),
        "identifiers": report.identifiers,
        "links": report.links,
        "identities": report.identities,
        "shared": report.shared,
        "quarantined": len(report.quarantined),
        "plan": report.plan,
    }


def _best(run: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    runs, output = [], None
    for _ in range(repeat):
        output = None
        gc.collect()
        started = time.perf_counter()
        output = run()
        runs.append(time.perf_counter() - started)
    return min(runs), runs, output


def scipy_components(a: npt.NDArray[np.int32], b: npt.NDArray[np.int32], n: int) -> int:
    matrix = coo_array((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    count, _ = csgraph_components(matrix, directed=False)
    return int(count)


def networkx_components(a: npt.NDArray[np.int32], b: npt.NDArray[np.int32], n: int) -> int:
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(a.tolist(), b.tolist(), strict=True))
    return sum(1 for _ in nx.connected_components(graph))


def compute_alone(graph: Graph, settings: Settings, policy: Policy, repeat: int) -> dict[str, Any]:
    """The engine and the plan on a full snapshot, next to plain connected components."""
    started = time.perf_counter()
    snapshot = read_full(graph, policy, make_normalizer(settings, policy))
    read_seconds = time.perf_counter() - started
    g = snapshot.graph
    as_of = int(time.time() * 1000)
    keys = g.keys
    edges = [(keys[x], keys[y]) for x, y in zip(g.a.tolist(), g.b.tolist(), strict=True)]
    methods: dict[str, dict[str, Any]] = {}

    def measure(name: str, run: Callable[[], Any]) -> Any:
        best, runs, output = _best(run, repeat)
        methods[name] = {"seconds": best, "runs": runs}
        console.print(f"  {name}: {best:.3f}s")
        return output

    resolution = measure("engine.resolve (identity formation)", lambda: resolve(g, policy, as_of))
    methods["engine.resolve (identity formation)"]["identities"] = resolution.n_groups
    changes = measure(
        "lineage.plan (ids and changes)",
        lambda: plan(resolution, snapshot.old, snapshot.identities),
    )
    methods["lineage.plan (ids and changes)"]["changed_units"] = len(changes.units)
    for name, run in (
        ("scipy csgraph components (int ends)", lambda: scipy_components(g.a, g.b, g.n)),
        ("idgraph components (key pairs)", lambda: len(connected_components(edges, keys))),
        ("networkx Graph + components (int ends)", lambda: networkx_components(g.a, g.b, g.n)),
    ):
        methods[name]["components"] = measure(name, run)
    counts = {m["components"] for m in methods.values() if "components" in m}
    return {
        "read_full_seconds": read_seconds,
        "identifiers": g.n,
        "links": len(g.a),
        "methods": methods,
        "components_agree": len(counts) == 1,
    }


def incremental(
    graph: Graph, settings: Settings, policy: Policy, g: PersonGraph, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Load and resolve ``--warmup`` batches (not counted), then ``--batches`` measured ones."""
    runs = []
    total = args.warmup + args.batches
    services = ServiceContext.create(graph, settings, policy)
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-batches-") as tmp:
        for batch in range(total):
            path = Path(tmp) / f"batch-{batch:03d}.ndjson"
            events = batch_events(g, args.seed, batch, args.batch_events)
            path.write_text("".join(json.dumps(e) + "\n" for e in events))
            started = time.perf_counter()
            loaded = load_segment_file(services, path, source="segment")
            load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            report = resolve_identities(services)
            wall = time.perf_counter() - started
            run = {
                **_summary(report, wall),
                "load_seconds": load_seconds,
                "events": loaded.counts.read,
                "accepted": loaded.counts.accepted,
                "warmup": batch < args.warmup,
            }
            runs.append(run)
            console.print(
                f"  batch {batch + 1}/{total}{' (warm-up)' if run['warmup'] else ''}: "
                f"load {load_seconds:.2f}s, "
                f"{run['mode']} resolve {wall:.3f}s over {run['identifiers']:,} identifiers"
            )
    return runs


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": max(values),
    }


# -- the run -----------------------------------------------------------------------------------


def main() -> int:
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=20, help="incremental batches")
    parser.add_argument("--batch-events", type=int, default=1000, help="events per batch")
    parser.add_argument(
        "--warmup", type=int, default=1, help="incremental batches run first, not counted"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="compute runs; best is kept")
    parser.add_argument("--heap", default="auto", help="heap of the throwaway server")
    parser.add_argument("--pagecache", default="auto", help="page cache of the throwaway server")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "resolve.json"
    )
    args = parser.parse_args()
    if args.identifiers < 1000 or min(args.batches, args.batch_events, args.repeat) < 1:
        parser.error("--identifiers must be at least 1000; --batches, --batch-events, --repeat 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    policy = Policy()
    revision = commit_measured()  # now: the modules are imported, a later commit is not measured

    started = time.perf_counter()
    g = PersonGraph(args.identifiers, args.seed)
    generated = time.perf_counter() - started
    console.print(
        f"graph: {len(g.keys):,} identifiers of {len(g.people):,} people, {len(g.a):,} links "
        f"({int(g.third.sum()):,} third-party), seed {args.seed}, generated in {generated:.1f}s"
    )
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:
        settings_dir = Path(tmp)
        with benchmark_server(settings_dir, heap=args.heap, pagecache=args.pagecache) as (
            graph,
            uri,
        ):
            console.print(f"Neo4j: {uri} (wiped); idgraph {revision}")
            settings = load_settings(rejects_dir=settings_dir / "rejects")
            check_keys(g, settings, policy)
            started = time.perf_counter()
            graph.wipe()
            init_schema(graph)
            write_graph(graph, g, args.seed, int(time.time() * 1000))
            setup_seconds = time.perf_counter() - started
            console.print(f"set-up: written in {setup_seconds:.1f}s (not measured)")

            console.print("full resolve, first run (creates every identity)")
            first = full_run(graph, settings, policy)
            console.print(f"  {first['seconds']:.1f}s")
            console.print("full resolve, again (nothing changed)")
            again = full_run(graph, settings, policy)
            console.print(f"  {again['seconds']:.1f}s")
            console.print(f"compute step alone, best of {args.repeat}")
            compute = compute_alone(graph, settings, policy, args.repeat)
            console.print(
                f"incremental: {args.warmup} warm-up + {args.batches} batches of "
                f"{args.batch_events} events"
            )
            batches = incremental(graph, settings, policy, g, args)
    report = _report(
        args, settings, revision, g, generated, setup_seconds, first, again, compute, batches
    )
    _print(report)
    write(args.out, report, console)
    return 0 if compute["components_agree"] else 1


def _report(
    args: argparse.Namespace,
    settings: Settings,
    revision: str,
    g: PersonGraph,
    generated: float,
    setup_seconds: float,
    first: dict[str, Any],
    again: dict[str, Any],
    compute: dict[str, Any],
    batches: list[dict[str, Any]],
) -> dict[str, Any]:
    methods = compute["methods"]
    scipy = methods["scipy csgraph components (int ends)"]["seconds"]
    engine = methods["engine.resolve (identity formation)"]["seconds"]
    planned = methods["lineage.plan (ids and changes)"]["seconds"]
    for m in methods.values():
        m["vs_scipy"] = m["seconds"] / scipy
    measured = [b for b in batches if not b["warmup"]]
    steps = {
        name: percentiles([b[name] for b in measured])
        for name in (
            "seconds",
            "read",
            "compute",
            "write",
            "profiles",
            "other",
            "load_seconds",
            "identifiers",
        )
    }
    reached = {
        "full_seconds": first["seconds"],
        "compute_vs_scipy": (engine + planned) / scipy,
        "incremental_p95_seconds": steps["seconds"]["p95"],
    }
    return {
        **header("resolve", revision),
        "settings": {"writers": settings.writers, "chunk_size": settings.chunk_size},
        "seed": args.seed,
        "graph": {
            "identifiers": len(g.keys),
            "links": len(g.a),
            "third_party_links": int(g.third.sum()),
            "people": len(g.people),
            "by_type": g.type_counts(),
            "generated_seconds": generated,
            "setup_seconds": setup_seconds,
        },
        "full": {"first": first, "again": again},
        "compute": compute,
        "incremental": {
            "batches": len(measured),
            "warmup_batches": len(batches) - len(measured),
            "events_per_batch": args.batch_events,
            "percentiles": steps,
            "runs": batches,
        },
        "targets": {
            name: {"target": TARGETS[name], "reached": value, "met": value <= TARGETS[name]}
            for name, value in reached.items()
        },
        "peak_rss_mb": peak_rss_mb(),
    }


def _print(report: dict[str, Any]) -> None:
    full = report["full"]
    table = Table(
        title=f"full resolve end to end: {report['graph']['identifiers']:,} identifiers, "
        f"{report['graph']['links']:,} links"
    )
    table.add_column("run")
    columns = (
        "seconds", "read", "compute", "write", "profiles", "other", "identities", "created",
        "moved",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for name, run in (("first (creates all)", full["first"]), ("again (no change)", full["again"])):
        table.add_row(
            name,
            f"{run['seconds']:.1f}",
            f"{run['read']:.1f}",
            f"{run['compute']:.1f}",
            f"{run['write']:.1f}",
            f"{run['profiles']:.1f}",
            f"{run['other']:.1f}",
            f"{run['identities']:,}",
            f"{run['plan'].get('created', 0):,}",
            f"{run['plan'].get('moved', 0):,}",
        )
    console.print(table)
    compute = report["compute"]
    table = Table(
        title=f"compute step alone on the same {compute['links']:,} links "
        f"(read_full took {compute['read_full_seconds']:.1f}s), best of runs"
    )
    table.add_column("method")
    for column in ("seconds", "vs scipy", "output"):
        table.add_column(column, justify="right")
    for name, m in compute["methods"].items():
        output = m.get("components", m.get("identities", m.get("changed_units")))
        what = (
            "components"
            if "components" in m
            else ("identities" if "identities" in m else "changed units")
        )
        table.add_row(name, f"{m['seconds']:.3f}", f"{m['vs_scipy']:.1f}x", f"{output:,} {what}")
    console.print(table)

    inc = report["incremental"]
    table = Table(
        title=f"incremental: {inc['batches']} batches of {inc['events_per_batch']:,} events"
    )
    table.add_column("")
    for column in ("p50", "p95", "max"):
        table.add_column(column, justify="right")
    names = {
        "seconds": "resolve s (end to end)",
        "read": "  read s",
        "compute": "  compute s",
        "write": "  write s",
        "profiles": "  profiles s",
        "other": "  other s (lock, run records)",
        "identifiers": "region identifiers",
        "load_seconds": "load s (for information)",
    }
    for key, name in names.items():
        p = inc["percentiles"][key]
        fmt = "{:,.0f}" if key == "identifiers" else "{:.3f}"
        table.add_row(name, *(fmt.format(p[q]) for q in ("p50", "p95", "max")))
    warmups = [f"{b['seconds']:.3f}s" for b in inc["runs"] if b["warmup"]]
    if warmups:
        table.caption = f"warm-up batches, not counted: resolve {', '.join(warmups)}"
    console.print(table)

    table = Table(title="targets")
    for column in ("target", "reached", "limit", "met"):
        table.add_column(column, justify="left" if column == "target" else "right")
    labels = {
        "full_seconds": "full resolve end to end (first run), s",
        "compute_vs_scipy": "compute (engine + plan, steady) / scipy components",
        "incremental_p95_seconds": "incremental resolve p95, s",
    }
    for name, t in report["targets"].items():
        table.add_row(
            labels[name], f"{t['reached']:.2f}", f"{t['target']:g}", "yes" if t["met"] else "NO"
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())
