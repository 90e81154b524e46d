"""Resolve the same graph with the default engine and the Spark engine, side by side.

The benchmark graph of ``benchmarks/resolve.py`` (people with crm ids, emails, phones,
cookies and app installs; kiosks, family tablets, shop and family emails, friends' browsers,
third-party DMP links), built in memory at each size, with seeded evidence (counts, first and
last seen over two years). Both engines get the same :class:`LinkGraph`: what is compared is
identity formation, not the Neo4j reads and writes around it (the same code for both). The
Spark engine's time includes writing its Parquet input and reading its output back.

Defaults are what a user gets: ``IDGRAPH_SPARK_MASTER`` (``local[*]``: every core here),
``IDGRAPH_SPARK_DRIVER_MEMORY`` (4g). Each size also checks that both engines agree
(partition, every link's verdict, every shared verdict).

    .venv/bin/python benchmarks/spark.py                      # 100k, 1M, 2M identifiers
    .venv/bin/python benchmarks/spark.py --sizes 20000        # a smoke run
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._report import commit_measured, header, peak_rss_mb, process_peak_rss_mb, write
from benchmarks.person_graph import PersonGraph
from identity.config import load_settings
from identity.engines.spark.engine import resolve_on_spark, session
from identity.policy import Policy
from identity.resolve.engine import Resolution, resolve
from identity.resolve.graph import DAY_MS, LinkGraph

console = Console()
AS_OF_MS = 1_790_000_000_000  # 2026-09-21


def link_graph(g: PersonGraph, seed: int) -> LinkGraph:
    """The benchmark graph as the engines read it, with seeded evidence on every link."""
    rng = np.random.default_rng(seed)
    m = len(g.a)
    types = [key.partition(":")[0] for key in g.keys]
    names = sorted(set(types))
    index = {name: i for i, name in enumerate(names)}
    last = AS_OF_MS - rng.integers(0, 730, m) * DAY_MS
    first = last - rng.integers(0, 365, m) * DAY_MS
    return LinkGraph(
        keys=g.keys,
        type_names=names,
        types=np.array([index[t] for t in types], dtype=np.int16),
        blocked=np.zeros(len(g.keys), dtype=np.bool_),
        region=np.ones(len(g.keys), dtype=np.bool_),
        stored_shared=np.zeros(len(g.keys), dtype=np.int8),
        a=g.a,
        b=g.b,
        count=rng.integers(1, 6, m).astype(np.int64),
        first_seen=first.astype(np.int64),
        last_seen=last.astype(np.int64),
        mergeable=~g.third,
        cut=np.zeros(m, dtype=np.bool_),
        forced=np.zeros(m, dtype=np.bool_),
    )


def agree(local: Resolution, spark: Resolution) -> bool:
    """Same partition, same verdict on every link, same shared verdict on every identifier
    (both over the same graph object: positions match)."""
    pairs = np.unique(np.stack([local.group_of, spark.group_of]), axis=1)
    same_partition = (
        len(pairs[0]) == len(np.unique(local.group_of)) == len(np.unique(spark.group_of))
    )
    return bool(
        same_partition
        and (local.verdict == spark.verdict).all()
        and (local.shared_kind == spark.shared_kind).all()
    )


def measure(size: int, seed: int, settings: Any) -> dict[str, Any]:
    started = time.perf_counter()
    g = PersonGraph(size, seed)
    graph = link_graph(g, seed)
    built = time.perf_counter() - started
    console.print(
        f"{len(g.keys):,} identifiers, {len(g.a):,} links ({int(g.third.sum()):,} third-party), "
        f"built in {built:.1f}s"
    )
    started = time.perf_counter()
    local = resolve(graph, Policy(), AS_OF_MS)
    local_seconds = time.perf_counter() - started
    console.print(f"  default engine: {local_seconds:.1f}s")
    started = time.perf_counter()
    run = resolve_on_spark(graph, Policy(), AS_OF_MS, settings)
    spark_seconds = time.perf_counter() - started
    stages = dict(run.seconds)
    stages["exchange (Parquet in and out)"] = round(spark_seconds - sum(run.seconds.values()), 3)
    console.print(f"  spark engine ({settings.spark_master}): {spark_seconds:.1f}s {stages}")
    same = agree(local, run.resolution)
    console.print(f"  same answer: {same}")
    return {
        "identifiers": len(g.keys),
        "links": len(g.a),
        "identities": local.n_groups,
        "default_seconds": round(local_seconds, 3),
        "spark_seconds": round(spark_seconds, 3),
        "ratio": round(spark_seconds / local_seconds, 1),
        "spark_identifiers_per_second": round(len(g.keys) / spark_seconds),
        "default_identifiers_per_second": round(len(g.keys) / local_seconds),
        "spark_stages": stages,
        "rounds": run.rounds,
        "same_answer": same,
    }


def main() -> int:
    logging.getLogger("py4j").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,2000000", help="identifiers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "spark.json"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if min(sizes) < 1000:
        parser.error("--sizes: at least 1000 identifiers each")
    revision = commit_measured()
    settings = load_settings()
    started = time.perf_counter()
    spark = session(settings.spark_master, settings.spark_driver_memory)
    startup = time.perf_counter() - started
    console.print(f"Spark {spark.version} on {settings.spark_master}: started in {startup:.1f}s")
    runs = [measure(size, args.seed, settings) for size in sizes]
    jvm = spark.sparkContext._gateway.proc  # type: ignore[union-attr]
    report = {
        **header("spark", revision),
        "spark": {
            "version": spark.version,
            "master": settings.spark_master,
            "driver_memory": settings.spark_driver_memory,
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "session_start_seconds": round(startup, 1),
        },
        "runs": runs,
        "peak_rss_mb": {
            "python": round(peak_rss_mb(), 1),
            "spark_jvm": process_peak_rss_mb(jvm.pid if jvm else None),
        },
    }
    _print(report)
    write(args.out, report, console)
    return 0 if all(r["same_answer"] for r in runs) else 1


def _print(report: dict[str, Any]) -> None:
    table = Table(title="default engine vs Spark engine, same graph")
    for column in ("identifiers", "links", "default s", "spark s", "ratio", "rounds", "same"):
        table.add_column(column, justify="right")
    for run in report["runs"]:
        table.add_row(
            f"{run['identifiers']:,}",
            f"{run['links']:,}",
            f"{run['default_seconds']:.1f}",
            f"{run['spark_seconds']:.1f}",
            f"{run['ratio']:.0f}x",
            ", ".join(str(r) for r in run["rounds"].values()),
            "yes" if run["same_answer"] else "NO",
        )
    console.print(table)
    stages = Table(title="Spark engine: seconds per stage")
    names = list(report["runs"][0]["spark_stages"])
    stages.add_column("identifiers", justify="right")
    for name in names:
        stages.add_column(name, justify="right")
    for run in report["runs"]:
        stages.add_row(
            f"{run['identifiers']:,}", *(f"{run['spark_stages'].get(n, 0):.1f}" for n in names)
        )
    console.print(stages)
    console.print(f"peak memory (MB): {report['peak_rss_mb']}")


if __name__ == "__main__":
    sys.exit(main())
