"""Segments benchmark: estimate, refresh and audience export over a million profiles, side by
side with the naive way (export every profile, evaluate the definition in Python).

Set-up (reported, not measured) writes ``--identities`` active identities straight into Neo4j
with batched ``UNWIND ... CREATE``, each with a materialized profile as
:mod:`identity.profiles.service` writes it (country, plan, age, consents, an ``Order Completed``
aggregate, last seen, a DMP segment on some) and one email identifier. Then, on the segment
"French or Belgian customers who ordered in the last 30 days and consent to marketing":

1. **estimate**: ``segment_service.estimate`` (a count, nothing stored).
2. **naive membership**: every active identity's properties streamed out of Neo4j and the
   same definition evaluated in Python (``identity.segments.matches``, the reference
   semantics); the member set must equal idgraph's.
3. **refresh**, first (everyone enters), again (nothing changed: nothing written) and after
   ``--changed`` of the identities changed their consent or country (some leave, some enter).
4. **audience export**: the members' emails hashed for Google Customer Match, as CSV, to a
   file; rows per second.

    .venv/bin/python benchmarks/segments.py                      # 1M identities (~5 min)
    .venv/bin/python benchmarks/segments.py --identities 5000    # a smoke run

Uses IDGRAPH_NEO4J_URI when set, and WIPES that database; otherwise starts a throwaway local
server in a temporary directory. Writes JSON to benchmarks/results/segments.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _report import commit_measured, header, peak_rss_mb, write
from bench_server import benchmark_server
from rich.console import Console
from rich.table import Table

from identity.audiences.export import export_audience, export_request
from identity.config import load_settings
from identity.context import ServiceContext
from identity.policy import Policy
from identity.segments import service as segment_service
from identity.segments.language import matches
from identity.store.driver import Graph
from identity.store.schema import init_schema

console = Console()

DEFINITION: dict[str, Any] = {
    "all": [
        {"trait": "country", "in": ["FR", "BE"]},
        {"event": "Order Completed", "within_days": 30},
        {"consent": "marketing"},
    ]
}
BIG: dict[str, Any] = {"consent": "marketing"}
COUNTRIES = np.array(["FR", "BE", "DE", "ES", "IT", "NL", "GB", "US"])
COUNTRY_P = np.array([0.25, 0.05, 0.2, 0.15, 0.1, 0.05, 0.1, 0.1])
# Times travel as epoch milliseconds (``r.times``): the driver packs datetimes slowly.
_WRITE = """
UNWIND $rows AS r
CREATE (p:Identity {id: r.id, status: 'active', size: 1, created_at: $now, updated_at: $now})
SET p += r.props
FOREACH (t IN r.times | SET p[t[0]] = datetime({epochMillis: t[1]}))
CREATE (:Identifier:Email {key: 'email:' + r.email, type: 'email', value: r.email,
                           first_seen: $now, last_seen: $now})-[:MEMBER_OF]->(p)
"""


def _profiles(n: int, start: int, rng: np.random.Generator, now: datetime) -> list[dict[str, Any]]:
    countries = rng.choice(COUNTRIES, size=n, p=COUNTRY_P)
    ordered_days = rng.integers(0, 120, size=n)
    orders = rng.integers(0, 4, size=n)
    marketing = rng.random(n) < 0.6
    ages = rng.integers(18, 90, size=n)
    rows = []
    day = 86_400_000
    now_ms = int(now.timestamp() * 1000)
    for j in range(n):
        i = start + j
        props: dict[str, Any] = {
            "trait.country": str(countries[j]),
            "trait.plan": "pro" if i % 7 == 0 else "free",
            "trait.age": int(ages[j]),
            "consent.marketing": bool(marketing[j]),
            "count.email": 1,
        }
        last = now_ms - int(ordered_days[j]) * day
        times = [["last_seen", last], ["profiled_at", now_ms]]
        if orders[j]:
            props["event_count.Order Completed"] = int(orders[j])
            times.append(["event_last.Order Completed", last])
        if i % 11 == 0:
            times.append(["dmp.travel_intender", now_ms + 20 * day])
        rows.append(
            {"id": f"id-{i:08d}", "email": f"user{i}@example.org", "props": props, "times": times}
        )
    return rows


def write_profiles(graph: Graph, n: int, seed: int, now: datetime, batch: int = 10_000) -> None:
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        rows = _profiles(min(batch, n - start), start, rng, now)
        graph.run("bench: write profiles", _WRITE, {"rows": rows, "now": now})


def change_some(graph: Graph, n: int, share: float, seed: int) -> int:
    """Withdraw marketing consent of some identities, move others to France: returns how many
    identities changed."""
    rng = np.random.default_rng(seed + 1)
    picked = rng.choice(n, size=max(2, int(n * share)), replace=False)
    half = len(picked) // 2
    graph.run(
        "bench: withdraw consent",
        "UNWIND $ids AS id MATCH (p:Identity {id: id}) SET p.`consent.marketing` = false",
        {"ids": [f"id-{i:08d}" for i in picked[:half]]},
    )
    graph.run(
        "bench: move to France",
        "UNWIND $ids AS id MATCH (p:Identity {id: id}) SET p.`trait.country` = 'FR', "
        "p.`consent.marketing` = true",
        {"ids": [f"id-{i:08d}" for i in picked[half:]]},
    )
    return len(picked)


def naive_members(graph: Graph, now: datetime) -> tuple[set[str], int]:
    """Every active profile out of Neo4j, the definition evaluated in Python. Times come out
    as epoch milliseconds (the driver's own temporal values cost ten times more to decode)."""
    tree = segment_service.validate(Policy(), DEFINITION)
    found: set[str] = set()
    scanned = 0
    query = (
        "MATCH (p:Identity) WHERE p.status = 'active' RETURN p.id, [k IN keys(p) | [k, CASE "
        "WHEN p[k] IS :: ZONED DATETIME THEN p[k].epochMillis ELSE p[k] END]]"
    )
    times = (
        "last_seen",
        "first_seen",
        "event_first.",
        "event_last.",
        "trait_at.",
        "dmp.",
        "profiled_at",
    )
    with graph.driver.session(database=graph.database, fetch_size=10_000) as session:
        for identity, pairs in session.run(query):
            scanned += 1
            props = {
                k: datetime.fromtimestamp(v / 1000, UTC) if k.startswith(times) else v
                for k, v in pairs
            }
            if matches(tree, props, now):
                found.add(identity)
    return found, scanned


def stored_members(graph: Graph, segment: str) -> set[str]:
    return set(
        graph.read_collected(
            "bench: members",
            "MATCH (:Segment {id: $id})-[:INCLUDES]->(p:Identity) RETURN collect(p.id)",
            {"id": segment},
        )
    )


def _timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def measure(graph: Graph, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    policy = Policy()
    ctx = ServiceContext.create(graph, load_settings(), policy)
    now = datetime.now(UTC)
    seconds, _ = _timed(lambda: write_profiles(graph, args.identities, args.seed, now))
    console.print(f"set-up: {args.identities:,} profiles written in {seconds:.1f}s (not measured)")
    report: dict[str, Any] = {"setup_seconds": seconds}
    segment = segment_service.create_segment(
        ctx.acting_as("bench"),
        name="FR/BE buyers, marketing",
        definition=DEFINITION,
    )
    seconds, size = _timed(lambda: segment_service.estimate(ctx, DEFINITION))
    report["estimate"] = {"seconds": seconds, "size": size}
    console.print(f"estimate: {size:,} in {seconds:.2f}s")
    seconds, (naive, scanned) = _timed(lambda: naive_members(graph, datetime.now(UTC)))
    report["naive"] = {"seconds": seconds, "size": len(naive), "scanned": scanned}
    console.print(f"naive scan: {len(naive):,} of {scanned:,} in {seconds:.2f}s")
    refreshes = {}
    for name in ("first", "again"):
        seconds, r = _timed(lambda: segment_service.refresh_segment(ctx, segment.id))
        refreshes[name] = {"seconds": seconds, "entered": r.entered, "left": r.left, "size": r.size}
        console.print(f"refresh {name}: +{r.entered:,} -{r.left:,} in {seconds:.2f}s")
    agree = stored_members(graph, segment.id) == naive
    changed = change_some(graph, args.identities, args.changed, args.seed)
    before = datetime.now(UTC)
    seconds, r = _timed(lambda: segment_service.refresh_segment(ctx, segment.id))
    refreshes["changed"] = {"seconds": seconds, "entered": r.entered, "left": r.left,
                            "size": r.size, "identities_changed": changed}  # fmt: skip
    console.print(f"refresh after changes: +{r.entered:,} -{r.left:,} in {seconds:.2f}s")
    report["refresh"] = refreshes
    seconds, page = _timed(lambda: segment_service.members(ctx, segment.id, None, 100))
    report["members_page"] = {"seconds": seconds, "rows": len(page)}
    seconds, page = _timed(lambda: segment_service.changes(ctx, segment.id, before, None, 100))
    report["changes_page"] = {"seconds": seconds, "rows": len(page)}
    console.print(
        f"a page of 100 members: {report['members_page']['seconds']:.2f}s; of 100 changes: "
        f"{seconds:.2f}s"
    )
    request = export_request(
        policy, segment.id, ["email"], format="csv", hashed=True, destination="google"
    )
    target = out_dir / "audience.csv"
    with target.open("w", encoding="utf-8", newline="") as out:
        seconds, exported = _timed(lambda: export_audience(ctx, request, out))
    rows = exported.rows
    report["export"] = {"seconds": seconds, "rows": rows, "rows_per_second": rows / seconds,
                        "bytes": target.stat().st_size}  # fmt: skip
    console.print(f"export: {rows:,} rows in {seconds:.2f}s")
    report["big"] = big_export(ctx, out_dir)
    report["agree"] = agree
    return report


def big_export(ctx: ServiceContext, out_dir: Path) -> dict[str, Any]:
    """Export rate at scale: everyone who consents to marketing (~60%), emails hashed."""
    big = segment_service.create_segment(
        ctx.acting_as("bench"), name="marketing consent", definition=BIG
    )
    refreshed, r = _timed(lambda: segment_service.refresh_segment(ctx, big.id))
    request = export_request(ctx.policy, big.id, ["email"], hashed=True, destination="google")
    with (out_dir / "big.csv").open("w", encoding="utf-8", newline="") as out:
        seconds, exported = _timed(lambda: export_audience(ctx, request, out))
    console.print(
        f"big segment: {r.size:,} members refreshed in {refreshed:.1f}s, "
        f"{exported.rows:,} rows exported in {seconds:.1f}s"
    )
    return {
        "members": r.size,
        "refresh_seconds": refreshed,
        "rows": exported.rows,
        "seconds": seconds,
        "rows_per_second": exported.rows / seconds,
    }


def main() -> int:
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share changed before "
                        "the third refresh")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--heap", default="4g", help="heap of the throwaway server")
    parser.add_argument("--pagecache", default="2g", help="page cache of the throwaway server")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "segments.json"
    )
    args = parser.parse_args()
    if args.identities < 100 or not 0 < args.changed < 1:
        parser.error("--identities must be at least 100 and --changed between 0 and 1")
    revision = commit_measured()
    with (
        tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp,
        benchmark_server(Path(tmp), heap=args.heap, pagecache=args.pagecache) as (graph, uri),
    ):
        console.print(f"Neo4j: {uri} (wiped); idgraph {revision}")
        graph.wipe()
        init_schema(graph)
        measured = measure(graph, args, Path(tmp))
    first = measured["refresh"]["first"]["seconds"]
    report = {
        **header("segments", revision),
        "identities": args.identities,
        "definition": DEFINITION,
        **measured,
        "ratios": {
            "naive_vs_estimate": measured["naive"]["seconds"] / measured["estimate"]["seconds"],
            "naive_vs_first_refresh": measured["naive"]["seconds"] / first,
            "naive_vs_refresh_after_changes": measured["naive"]["seconds"]
            / measured["refresh"]["changed"]["seconds"],
        },
        "peak_rss_mb": peak_rss_mb(),
    }
    _print(report)
    write(args.out, report, console)
    return 0 if report["agree"] else 1


def _print(report: dict[str, Any]) -> None:
    table = Table(title=f"segment over {report['identities']:,} profiles: {report['definition']}")
    for column in ("step", "seconds", "profiles/s", "result", "naive scan / this"):
        table.add_column(column, justify="left" if column == "step" else "right")
    n = report["identities"]
    naive = report["naive"]["seconds"]

    def row(step: str, seconds: float, result: str) -> None:
        table.add_row(step, f"{seconds:.2f}", f"{n / seconds:,.0f}", result,
                      f"{naive / seconds:.1f}x")  # fmt: skip

    row("naive: export all, match in Python", naive, f"{report['naive']['size']:,} members")
    row("idgraph estimate", report["estimate"]["seconds"], f"{report['estimate']['size']:,}")
    for name, label in (("first", "first (all enter)"), ("again", "again (no change)"),
                        ("changed", "after changes")):  # fmt: skip
        r = report["refresh"][name]
        row(f"idgraph refresh, {label}", r["seconds"], f"+{r['entered']:,} -{r['left']:,}")
    console.print(table)
    e = report["export"]
    console.print(
        f"audience export (emails hashed for Google, CSV): {e['rows']:,} rows in "
        f"{e['seconds']:.2f}s = {e['rows_per_second']:,.0f} rows/s; "
        f"membership agrees with the naive scan: {report['agree']}; a page of 100 members "
        f"{report['members_page']['seconds']:.2f}s, of 100 changes "
        f"{report['changes_page']['seconds']:.2f}s; "
        f"big segment ({report['big']['members']:,} members): refreshed in "
        f"{report['big']['refresh_seconds']:.1f}s, {report['big']['rows']:,} rows exported at "
        f"{report['big']['rows_per_second']:,.0f} rows/s; "
        f"peak RSS {report['peak_rss_mb']:.0f} MB"
    )


if __name__ == "__main__":
    sys.exit(main())
