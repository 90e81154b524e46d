"""API benchmark: profile-by-identifier lookups over HTTP under load, side by side with the
same lookup done directly with the Neo4j driver (the floor), in one run.

Set-up (reported, not measured): the person-like graph of ``benchmarks/person_graph.py``,
sized so that resolution gives about ``--identities`` identities (~4.9 identifiers each),
written straight into Neo4j, then a full ``resolve_identities``. A random sample of emails
that belong to an active identity is read back: each lookup asks for one of them at random.

Each measure runs in its own process (``multiprocessing``, spawned): ``--concurrency``
asyncio workers send one lookup after another for ``--warmup`` seconds (not counted), then
for ``--seconds``; a lookup counts in the window it completes in. Before both, Neo4j is warmed
up with ``--neo4j-warmup`` seconds of driver lookups (its JIT: on a fresh server the CPU Neo4j
spends per lookup falls by half over the first half-minute of load, which would favour
whichever row runs second).

1. **API**: the real server, ``python -m identity serve --workers W``, with a reader key, the
   rate limit off and logs at WARNING, over HTTP/1.1 keep-alive (a bare asyncio client,
   :class:`_Connection`: httpx cost more CPU per request than the server; a connection per
   lookup in flight), POSTing ``QUERY``. Anything but a 200 with a profile,
   its identifiers and no ``errors`` is counted as an error.
2. **driver**: the one query the API runs for that operation, by the normalized key
   (``reads.profiles_by_key``: the identity and its first 10 + 1 identifiers), through the
   async driver opened the way the API opens it.

Where the time goes: the server's own request time and Neo4j query time (its ``/metrics``,
one worker's when there are several) and CPU per lookup of the load process, the API
server's processes and the rest of the machine (Neo4j, and whatever else runs), from /proc.

The defaults, tried on the 2-core machine: 32 in flight gave no more requests/s than 16, at
twice the latency; 2 server workers gave no more than 1, since the 16 keep-alive connections,
opened at once, were all accepted by the same uvicorn worker (``ss`` showed 16 on one pid).

    .venv/bin/python benchmarks/api.py          # 100,000 identities (~5 min on 2 cores)
    .venv/bin/python benchmarks/api.py --identities 300 --seconds 2 --warmup 1 --neo4j-warmup 1 \
        --concurrency 4

Uses IDGRAPH_NEO4J_URI when set, and WIPES that database; otherwise starts a throwaway local
server in a temporary directory. Writes JSON to benchmarks/results/api.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _report import commit_measured, header, write
from bench_server import benchmark_server, neo4j_env
from person_graph import PersonGraph, check_keys, write_graph
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from identity.config import load_settings
from identity.context import ServiceContext
from identity.policy import Policy
from identity.resolve.service import resolve_identities
from identity.store import reads
from identity.store.driver import AsyncGraph, Graph, open_async_driver
from identity.store.host import free_port, tail_of
from identity.store.local_server import LocalServer, ServerConfig
from identity.store.schema import init_schema

console = Console()

QUERY = (
    "query P($t: String!, $v: String!) { profile(identifier: {type: $t, value: $v}) "
    "{ id updatedAt size identifiers(first: 10) { edges { node { type value lastSeen } } } } }"
)
READER_KEY = "benchmark-reader-key"
IDENTIFIERS_PER_IDENTITY = 4.9  # the person graph's: 1,000,000 resolve to ~205,000
TARGETS = {"api_requests_per_s": 500.0, "api_p99_ms": 50.0, "p50_vs_driver": 3.0}
TICK = os.sysconf("SC_CLK_TCK")  # /proc's unit of CPU time, per second
QUERY_OPERATIONS = ("profile by identifier",)  # the AsyncGraph.read name of QUERY's read


# -- the load, in its own process ---------------------------------------------------------------

Lookup = Callable[[str], Awaitable[str | None]]  # an item -> None, or what was wrong


def _cpu_ticks(groups: dict[str, list[int]]) -> dict[str, dict[int, int]]:
    """CPU ticks of this process, of each group's processes and their descendants, and of
    the machine (busy and all)."""
    found: dict[str, dict[int, int]] = {"load_process": {0: int(time.process_time() * TICK)}}
    for name, pids in groups.items():
        ticks = found.setdefault(name, {})
        todo = list(pids)
        while todo:
            pid = todo.pop()
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()
                ticks[pid] = int(fields[11]) + int(fields[12])
                todo += map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    found["machine_busy"], found["machine_all"] = {0: sum(cpu) - cpu[3] - cpu[4]}, {0: sum(cpu)}
    return found


async def _hammer(
    lookup: Lookup, items: Sequence[str], args: dict[str, Any], groups: dict[str, list[int]]
) -> dict[str, Any]:
    """``args["concurrency"]`` workers calling ``lookup`` on random items, back to back; CPU
    used meanwhile by ``groups`` of processes."""
    start = time.perf_counter() + args["warmup"]
    end = start + args["seconds"]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    cpu: list[dict[str, dict[int, int]]] = []

    async def worker(n: int) -> None:
        rng = random.Random(n)
        while (began := time.perf_counter()) < end:
            try:
                problem = await lookup(rng.choice(items))
            except Exception as e:
                problem = f"{type(e).__name__}: {e}"[:200]
            done = time.perf_counter()
            if problem is not None:
                errors[problem] = errors.get(problem, 0) + 1
            elif start <= done <= end:
                latencies.append(done - began)

    async def clock() -> None:
        for at in (start, end):
            await asyncio.sleep(max(0.0, at - time.perf_counter()))
            cpu.append(await asyncio.to_thread(_cpu_ticks, groups))

    await asyncio.gather(clock(), *(worker(n) for n in range(args["concurrency"])))
    by_process = {
        name: sorted(
            ((t - cpu[0][name].get(pid, 0)) / TICK for pid, t in ticks.items()), reverse=True
        )
        for name, ticks in cpu[1].items()
    }
    ms = np.array(latencies) * 1000 if latencies else np.zeros(1)
    done = len(latencies)
    return {
        "requests": done,
        "requests_per_s": done / args["seconds"],
        **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 95, 99)},
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "cpu_seconds": {name: sum(seconds) for name, seconds in by_process.items()},
        "api_server_cpu_by_process": by_process.get("api_server", []),
    }


class _Connection:
    """A bare HTTP/1.1 keep-alive connection: a load generator must cost the machine less
    than the server it measures (httpx spends about 3.5 ms of CPU a request here, more than
    the API's own work). Only what a JSON POST needs: Content-Length bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> _Connection:
        host, _, port = base.removeprefix("http://").partition(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def drive_api(
    base: str, emails: list[str], args: dict[str, Any], groups: dict[str, list[int]]
) -> dict[str, Any]:
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {base.removeprefix('http://')}\r\n"
        f"Authorization: Bearer {READER_KEY}\r\nContent-Type: application/json\r\n"
        "Content-Length: "
    ).encode()

    async def run() -> dict[str, Any]:
        idle = [await _Connection.open(base) for _ in range(args["concurrency"])]

        async def lookup(email: str) -> str | None:
            connection = idle.pop()
            try:
                body = json.dumps({"query": QUERY, "variables": {"t": "email", "v": email}})
                status, answer = await connection.post(head, body.encode())
            finally:
                idle.append(connection)
            if status != 200:
                return f"HTTP {status}"
            found = json.loads(answer)
            if found.get("errors"):
                return str(found["errors"][0].get("message"))[:200]
            profile = (found.get("data") or {}).get("profile")
            return None if profile and profile["identifiers"]["edges"] else "no profile"

        try:
            return await _hammer(lookup, emails, args, groups)
        finally:
            for connection in idle:
                connection.close()

    return asyncio.run(run())


def drive_driver(
    env: dict[str, str], keys: list[str], args: dict[str, Any], groups: dict[str, list[int]]
) -> dict[str, Any]:
    os.environ.update(env)
    settings = load_settings()

    async def run() -> dict[str, Any]:
        driver = open_async_driver(settings, timeout=30.0)
        store = AsyncGraph(driver, settings.neo4j_database)

        async def lookup(key: str) -> str | None:
            found = (await reads.profiles_by_key(store, [key], None, None, 11)).get(key)
            return None if found and found[1][0] else "no profile or no identifiers"

        try:
            return await _hammer(lookup, keys, args, groups)
        finally:
            await driver.close()

    return asyncio.run(run())


def _in_process(function: Callable[..., dict[str, Any]], *arguments: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *arguments).result()


# -- the server ---------------------------------------------------------------------------------


@contextlib.contextmanager
def api_server(env: dict[str, str], workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``idgraph serve`` on a free port; its base URL and pid once /healthz and /readyz answer."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "identity", "serve", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 60
            while not _ready(base):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"idgraph serve did not get ready:\n{tail_of(log)}")
                time.sleep(0.2)
            yield base, process.pid
        finally:
            process.terminate()
            process.wait(timeout=30)


def _ready(base: str) -> bool:
    try:
        return all(
            httpx.get(f"{base}{p}", timeout=2).status_code == 200 for p in ("/healthz", "/readyz")
        )
    except httpx.TransportError:
        return False


def _metrics(base: str) -> dict[str, float]:
    """The sums and counts of the request and Neo4j query histograms of one server worker."""
    found: dict[str, float] = {}
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not s.name.endswith(("_sum", "_count")):
                continue
            kind = s.name.rsplit("_", 1)[1]
            if (
                s.name.startswith("idgraph_request_seconds")
                and s.labels.get("operation") == "profile"
            ):
                found[f"request {kind}"] = s.value
            elif s.name.startswith("idgraph_neo4j_query_seconds"):
                found[f"{s.labels['operation']} {kind}"] = s.value
    return found


def _server_side(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Mean ms per request in the server, and in each of its Neo4j queries (None: the worker
    that answered /metrics served none)."""

    def mean(name: str) -> float | None:
        count = after.get(f"{name} count", 0) - before.get(f"{name} count", 0)
        total = after.get(f"{name} sum", 0) - before.get(f"{name} sum", 0)
        return 1000 * total / count if count else None

    return {"request": mean("request"), **{op: mean(op) for op in QUERY_OPERATIONS}}


# -- the run ------------------------------------------------------------------------------------


def _neo4j_pids(workdir: Path) -> list[int]:
    """The throwaway server's process (none when IDGRAPH_NEO4J_URI names another server)."""
    home = replace(ServerConfig.from_settings(load_settings()), home=workdir / "neo4j")
    pid = LocalServer(home).status().pid
    return [pid] if pid else []


def populate(
    graph: Graph, workdir: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write the person graph, resolve it in full, sample emails of active identities."""
    started = time.perf_counter()
    settings, policy = load_settings(rejects_dir=workdir / "rejects"), Policy()
    g = PersonGraph(round(args.identities * IDENTIFIERS_PER_IDENTITY), args.seed)
    check_keys(g, settings, policy)
    graph.wipe()
    init_schema(graph)
    write_graph(graph, g, args.seed, int(time.time() * 1000))
    written = time.perf_counter() - started
    resolved = resolve_identities(ServiceContext.create(graph, settings, policy), full=True)
    sample = graph.read(
        "email sample",
        "MATCH (i:Identifier {type: 'email'})-[:MEMBER_OF]->(:Identity {status: 'active'}) "
        "WITH i ORDER BY rand() LIMIT $n RETURN i.value AS value, i.key AS key",
        {"n": args.sample},
    )
    setup = {
        "identifiers": len(g.keys),
        "links": len(g.a),
        "identities": resolved.identities,
        "emails_sampled": len(sample),
        "written_seconds": written,
        "seconds": time.perf_counter() - started,
    }
    console.print(
        f"set-up (not measured): {setup['identifiers']:,} identifiers and {setup['links']:,} "
        f"links written in {written:.1f}s, resolved to {setup['identities']:,} identities: "
        f"{setup['seconds']:.1f}s in all; {len(sample):,} emails sampled"
    )
    return setup, sample


def main() -> int:
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identities", type=int, default=100_000, help="about this many")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured, per row")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before, not counted")
    parser.add_argument("--neo4j-warmup", type=float, default=30.0, help="seconds, before all")
    parser.add_argument("--concurrency", type=int, default=16, help="lookups in flight")
    parser.add_argument("--workers", type=int, default=1, help="API server processes")
    parser.add_argument("--sample", type=int, default=10_000, help="emails looked up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--heap", default="2g", help="heap of the throwaway server")
    parser.add_argument("--pagecache", default="1g", help="page cache of the throwaway server")
    out = Path(__file__).parent / "results" / "api.json"
    parser.add_argument("--json", "--out", dest="out", type=Path, default=out)
    args = parser.parse_args()
    if args.identities < 200 or min(args.seconds, args.concurrency, args.workers) <= 0:
        parser.error("--identities must be at least 200; --seconds, --concurrency, --workers > 0")
    revision, load_before = commit_measured(), os.getloadavg()
    load = {"concurrency": args.concurrency, "warmup": args.warmup, "seconds": args.seconds}
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:
        workdir = Path(tmp)
        with benchmark_server(workdir, heap=args.heap, pagecache=args.pagecache) as (graph, uri):
            console.print(f"Neo4j: {uri} (wiped); idgraph {revision}")
            setup, sample = populate(graph, workdir, args)
            env = neo4j_env(uri)
            groups = {"neo4j": _neo4j_pids(workdir)}
            keys = [r["key"] for r in sample]
            console.print(f"Neo4j warm-up: {args.neo4j_warmup:g}s of driver lookups")
            warm = {**load, "warmup": 0.0, "seconds": args.neo4j_warmup}
            _in_process(drive_driver, env, keys, warm, groups)
            console.print(f"driver: {args.concurrency} in flight, {args.seconds:g}s")
            driver = _in_process(drive_driver, env, keys, load, groups)
            server_env = {
                **env,
                "IDGRAPH_API_KEYS": json.dumps({READER_KEY: "reader"}),
                "IDGRAPH_API_RATE_LIMIT": "0",
                "IDGRAPH_LOG_LEVEL": "WARNING",
            }
            with api_server(server_env, args.workers, workdir / "server.log") as (base, pid):
                console.print(f"API: {args.workers} worker(s), {args.concurrency} in flight")
                before = _metrics(base)
                groups["api_server"] = [pid]
                api = _in_process(drive_api, base, [r["value"] for r in sample], load, groups)
                api["server_ms"] = _server_side(before, _metrics(base))
    report = _report(args, revision, load_before, setup, api, driver)
    _print(report)
    write(args.out, report, console)
    return 0 if api["errors"] == driver["errors"] == 0 else 1


def _report(
    args: argparse.Namespace,
    revision: str,
    load_before: tuple[float, float, float],
    setup: dict[str, Any],
    api: dict[str, Any],
    driver: dict[str, Any],
) -> dict[str, Any]:
    ratios = {
        "p50_api_vs_driver": api["p50_ms"] / driver["p50_ms"],
        "p95_api_vs_driver": api["p95_ms"] / driver["p95_ms"],
        "p99_api_vs_driver": api["p99_ms"] / driver["p99_ms"],
        "throughput_driver_vs_api": driver["requests_per_s"] / max(api["requests_per_s"], 1e-9),
    }
    reached = {
        "api_requests_per_s": api["requests_per_s"] >= TARGETS["api_requests_per_s"],
        "api_p99_ms": api["p99_ms"] < TARGETS["api_p99_ms"],
        "p50_vs_driver": ratios["p50_api_vs_driver"] <= TARGETS["p50_vs_driver"],
    }
    value = {
        "api_requests_per_s": api["requests_per_s"],
        "api_p99_ms": api["p99_ms"],
        "p50_vs_driver": ratios["p50_api_vs_driver"],
    }
    return {
        **header("api", revision),
        "load_average_before": load_before,
        "settings": {
            k: vars(args)[k]
            for k in ("concurrency", "workers", "seconds", "warmup", "neo4j_warmup")
        },
        "setup": setup,
        "query": QUERY,
        "driver_lookup": "the API's one query: reads.profiles_by_key",
        "api": api,
        "driver": driver,
        "ratios": ratios,
        "targets": {
            name: {"target": TARGETS[name], "reached": value[name], "met": met}
            for name, met in reached.items()
        },
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print(report: dict[str, Any]) -> None:
    s, api, driver, ratios = report["settings"], report["api"], report["driver"], report["ratios"]
    table = Table(
        title=f"profile by email: {report['setup']['identities']:,} identities, "
        f"{s['concurrency']} in flight, {s['seconds']:g}s after {s['warmup']:g}s of warm-up"
    )
    table.add_column("lookup")
    for column in ("requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="right")
    for name, row in (
        (f"API: POST /graphql, {s['workers']} worker(s)", api),
        ("driver: the API's query", driver),
    ):
        table.add_row(
            name,
            f"{row['requests']:,}",
            f"{row['requests_per_s']:,.0f}",
            *(f"{row[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            f"{row['errors']:,}",
        )
    table.add_row(
        "API / driver",
        "",
        f"{1 / ratios['throughput_driver_vs_api']:.2f}x",
        *(f"{ratios[f'p{q}_api_vs_driver']:.2f}x" for q in (50, 95, 99)),
    )
    console.print(table)
    for row in (api, driver):
        for problem, count in row["error_kinds"].items():
            console.print(f"[red]error[/red] x{count}: {problem}")

    where = Table(title="where the time goes, per lookup")
    where.add_column("")
    where.add_column("ms", justify="right")
    server = api["server_ms"]
    where.add_row("API: latency seen by the client, mean", _ms(api["mean_ms"]))
    where.add_row(
        "  in the server (/metrics of the worker that answered it)", _ms(server["request"])
    )
    for op in QUERY_OPERATIONS:
        where.add_row(f"    Neo4j query {op!r}", _ms(server[op]))
    where.add_row("driver: latency, mean", _ms(driver["mean_ms"]))
    for name, row in (("API", api), ("driver", driver)):
        cpu, n = row["cpu_seconds"], max(row["requests"], 1)
        parts = ["load_process", "api_server", "neo4j"]
        others = cpu["machine_busy"] - sum(cpu.get(part, 0.0) for part in parts)
        idle = 1 - cpu["machine_busy"] / max(cpu["machine_all"], 1e-9)
        where.add_row(
            f"{name}: CPU of the load process / API server / Neo4j / others ({idle:.0%} idle)",
            " / ".join(_ms(1000 * x / n) for x in [*(cpu.get(p, 0.0) for p in parts), others]),
        )
    if len(api["api_server_cpu_by_process"]) > 1:
        split = ", ".join(f"{x:.1f}" for x in api["api_server_cpu_by_process"])
        where.caption = f"API server CPU seconds by process: {split}"
    console.print(where)

    labels = {
        "api_requests_per_s": "API requests/s, at least",
        "api_p99_ms": "API p99 ms, under",
        "p50_vs_driver": "API p50 / driver p50, at most",
    }
    for name, t in report["targets"].items():
        verdict = "[green]PASS[/green]" if t["met"] else "[red]MISS[/red]"
        console.print(f"{verdict} {labels[name]} {t['target']:g}: {t['reached']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
