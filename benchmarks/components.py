"""Components benchmark: the scipy path and union-find against networkx, in one run.

Generates an identity-like graph: people with 1 to 5 identifiers each (``crm_id``, ``email``,
``phone``, ``cookie``, ``device``, ``maid`` keys), the identifiers of a person linked in a
random tree, plus a small share of random cross links between any two identifiers (shared
devices, typos) that merge some people. Edges are shuffled, as a stream of links would not
arrive grouped by person. Then times, on the same edges and nodes:

- ``identity.resolve.components.connected_components`` (interning + scipy csgraph);
- ``identity.resolve.components.components_union_find`` (pure Python);
- networkx: ``Graph`` construction + ``connected_components``, what a networkx user pays. Its
  sets come unsorted; sorting them for the agreement check is not timed, while both of ours
  include their canonical sort.

All three must agree (same SHA-256 of the canonical output). Times are the best of
``--repeat`` runs. Each method runs in a forked child (where there is fork), so that its
``ru_maxrss`` is its own peak: "peak RSS" includes the input graph (shared with the parent),
"above input" is the method's own working memory and output.

    .venv/bin/python benchmarks/components.py                 # 1M identifiers
    .venv/bin/python benchmarks/components.py --nodes 2000    # smoke size, a few seconds

Writes JSON to benchmarks/results/components.json.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
from _report import commit_measured, header, peak_rss_mb, write
from rich.console import Console
from rich.table import Table

from identity.resolve.components import components_union_find, connected_components

console = Console()

TYPES = ("crm_id", "email", "phone", "cookie", "device", "maid")
Edges = list[tuple[str, str]]


def generate(nodes: int, seed: int, cross_share: float) -> tuple[list[str], Edges, int]:
    """Identifier keys, shuffled links and the number of people, for ``nodes`` identifiers."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, size=nodes)  # enough people even if all had one
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), nodes)) + 1]
    sizes[-1] -= int(sizes.sum()) - nodes  # the last person takes what is left
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)  # per node: its person's first node
    local = np.arange(nodes) - starts  # per node: its position within its person
    child = np.flatnonzero(local > 0)
    parent = starts[child] + (rng.random(len(child)) * local[child]).astype(np.int64)
    cross = rng.integers(0, nodes, size=(round(cross_share * nodes), 2))
    a = np.concatenate([parent, cross[:, 0]])
    b = np.concatenate([child, cross[:, 1]])
    order = rng.permutation(len(a))
    values = rng.permutation(nodes)  # unique, and key order unrelated to generation order
    type_of = rng.integers(0, len(TYPES), size=nodes)
    keys = [f"{TYPES[t]}:{v:012x}" for t, v in zip(type_of.tolist(), values.tolist(), strict=True)]
    edges = [(keys[i], keys[j]) for i, j in zip(a[order].tolist(), b[order].tolist(), strict=True)]
    return keys, edges, len(sizes)


def networkx_components(edges: Edges, nodes: list[str]) -> list[set[str]]:
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return list(nx.connected_components(graph))


def _measure(run: Callable[[], Any], canonical: bool, repeat: int) -> dict[str, Any]:
    """Best time of ``repeat`` runs, peak memory, and a digest of the canonical output."""
    start_mb = peak_rss_mb()
    best = float("inf")
    output: Any = None
    for _ in range(repeat):
        output = None
        gc.collect()
        started = time.perf_counter()
        output = run()
        best = min(best, time.perf_counter() - started)
    peak_mb = peak_rss_mb()
    found = output if canonical else sorted(sorted(c) for c in output)
    digest = hashlib.sha256()
    for component in found:
        digest.update("\t".join(component).encode() + b"\n")
    return {
        "seconds": best,
        "peak_rss_mb": peak_mb,
        "above_input_mb": peak_mb - start_mb,
        "components": len(found),
        "largest": max((len(c) for c in found), default=0),
        "sha256": digest.hexdigest(),
    }


def _in_child(run: Callable[[], Any], canonical: bool, repeat: int) -> dict[str, Any]:
    """:func:`_measure` in a forked child, whose ru_maxrss starts at the input's size.

    In one process ru_maxrss only grows, so a method would be charged for an earlier one's
    peak. Where there is no fork (Windows) it runs in this process, and the peaks are cumulative.
    """
    if not hasattr(os, "fork"):
        return _measure(run, canonical, repeat)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into main()
        os.close(read_end)
        code = 0
        try:
            report = _measure(run, canonical, repeat)
        except BaseException as e:
            report, code = {"error": repr(e)}, 1
        with os.fdopen(write_end, "w") as pipe:
            json.dump(report, pipe)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.load(pipe)
    os.waitpid(pid, 0)
    if "error" in report:
        raise RuntimeError(f"benchmark child failed: {report['error']}")
    return dict(report)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1_000_000, help="identifiers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cross-share", type=float, default=0.01, help="cross links per node")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; best is kept")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "components.json"
    )
    args = parser.parse_args()
    if args.nodes < 1 or args.repeat < 1:
        parser.error("--nodes and --repeat must be at least 1")

    started = time.perf_counter()
    keys, edges, people = generate(args.nodes, args.seed, args.cross_share)
    gc.collect()
    console.print(
        f"graph: {len(keys):,} identifiers of {people:,} people, {len(edges):,} links "
        f"(seed {args.seed}), generated in {time.perf_counter() - started:.1f}s"
    )

    methods: dict[str, tuple[Callable[[], Any], bool]] = {
        "connected_components (scipy)": (lambda: connected_components(edges, keys), True),
        "components_union_find": (lambda: components_union_find(edges, keys), True),
        "networkx Graph + connected_components": (
            lambda: networkx_components(edges, keys),
            False,
        ),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, (run, canonical) in methods.items():
        results[name] = _in_child(run, canonical, args.repeat)
        results[name]["edges_per_s"] = len(edges) / results[name]["seconds"]
        console.print(f"{name}: {results[name]['seconds']:.3f}s")
    reference = results["connected_components (scipy)"]
    agree = all(r["sha256"] == reference["sha256"] for r in results.values())

    baseline = results["networkx Graph + connected_components"]["seconds"]
    table = Table(
        title=f"connected components: {len(keys):,} nodes, {len(edges):,} edges, "
        f"{reference['components']:,} components (largest {reference['largest']:,}), "
        f"best of {args.repeat}"
    )
    table.add_column("method")
    for column in ("seconds", "edges/s", "vs networkx", "peak RSS MB", "above input MB"):
        table.add_column(column, justify="right")
    for name, r in results.items():
        r["speedup_vs_networkx"] = baseline / r["seconds"]
        table.add_row(
            name,
            f"{r['seconds']:.3f}",
            f"{r['edges_per_s']:,.0f}",
            f"{r['speedup_vs_networkx']:.1f}x",
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['above_input_mb']:,.0f}",
        )
    console.print(table)

    write(
        args.out,
        {
            **header("components", commit_measured()),
            "nodes": len(keys),
            "edges": len(edges),
            "people": people,
            "seed": args.seed,
            "cross_share": args.cross_share,
            "repeat": args.repeat,
            "components": reference["components"],
            "largest_component": reference["largest"],
            "methods": results,
            "agree": agree,
        },
        console,
    )
    if not agree:
        console.print("[red]the three methods disagree: see sha256 in the JSON[/red]")
        return 1
    console.print("all three agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
