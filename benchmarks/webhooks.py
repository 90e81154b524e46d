"""Webhooks benchmark: how soon a change reaches another system, pushed (a webhook) or polled
(the obvious alternative: a client asking ``identityEvents`` every second), side by side on the
same changes; and how many events per second one receiver is sent.

A throwaway Neo4j, a real ``idgraph serve`` with the default settings (outbox looked at every
0.2 s, 8 deliveries in flight per webhook) and a receiver on loopback that checks every
signature (a starlette app under uvicorn, in this process).

1. **Throughput**: ``--people`` identify events (a user id and a cookie each) loaded with
   ``idgraph load segment`` and resolved with ``idgraph resolve`` (set-up, not measured): one
   ``identity.created`` entry per person. Measured: from the end of the resolve to the last
   delivery, deliveries per second.
2. **Latency**: ``--changes`` steward cuts through the API, ``--interval`` seconds plus a
   random part of the poll period apart (so they do not fall in step with the poller), each
   splitting a person in two. Measured per change, from the mutation's answer (the split
   has committed) to (a) the receiver getting the ``identity.split`` delivery and (b) a poller
   that asks ``identityEvents(kinds: [SPLIT])`` every ``--poll`` seconds seeing it.

    .venv/bin/python benchmarks/webhooks.py                            # 20,000 people (~3 min)
    .venv/bin/python benchmarks/webhooks.py --people 300 --changes 10  # a smoke run

Uses IDGRAPH_NEO4J_URI when set, and WIPES that database; otherwise starts a throwaway local
server in a temporary directory. Writes JSON to benchmarks/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from _report import commit_measured, header, peak_rss_mb, process_peak_rss_mb, write
from bench_server import benchmark_server, neo4j_env
from rich.console import Console
from rich.table import Table
from starlette.types import Receive, Scope, Send

from identity.store.host import free_port
from identity.store.schema import init_schema
from identity.webhooks.signing import verify

console = Console()
SECRET = "benchmark-webhook-secret"
KEYS = {"bench-admin-key": "admin", "bench-steward-key": "steward", "bench-reader-key": "reader"}
CUT = """mutation($a: IdentifierInput!, $b: IdentifierInput!) {
  cutLink(a: $a, b: $b, reason: "benchmark") { before } }"""
POLL = """query($since: DateTime!, $after: String) {
  identityEvents(since: $since, kinds: [SPLIT], first: 200, after: $after) {
    edges { cursor node { identities { id role } } } } }"""


class Sink:
    """The receiver: checks each signature, keeps (receipt time, body)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, Any]]] = []
        self.unsigned = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if not verify(SECRET, headers, raw):
            self.unsigned += 1
        self.got.append((time.time(), json.loads(raw)))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def of(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, b) for t, b in list(self.got) if b["kind"] == kind]


def _listen(sink: Sink) -> tuple[str, uvicorn.Server]:
    port = free_port()
    config = uvicorn.Config(sink, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/hook", server


def _idgraph(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "identity", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"idgraph {' '.join(args)} failed: {done.stderr[-2000:]}")


def _graphql(base: str, key: str, query: str, **variables: Any) -> dict[str, Any]:
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    ).json()
    if answer.get("errors"):
        raise RuntimeError(f"GraphQL failed: {answer['errors']}")
    return dict(answer["data"])


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.005)


class Poller(threading.Thread):
    """The alternative: asks for new split events every ``every`` seconds, notes when it first
    saw each split identity."""

    def __init__(self, base: str, every: float, since: str) -> None:
        super().__init__(daemon=True)
        self.base, self.every, self.since = base, every, since
        self.seen: dict[str, float] = {}
        self.stopping = threading.Event()
        self.requests = 0

    def run(self) -> None:
        after = None
        while not self.stopping.is_set():
            while True:
                edges = _graphql(
                    self.base, "bench-reader-key", POLL, since=self.since, after=after
                )["identityEvents"]["edges"]
                self.requests += 1
                now = time.time()
                for edge in edges:
                    for i in edge["node"]["identities"]:
                        if i["role"] == "split":
                            self.seen.setdefault(i["id"], now)
                    after = edge["cursor"]
                if len(edges) < 200:
                    break
            self.stopping.wait(self.every)


def _stats(latencies: list[float]) -> dict[str, float]:
    values = np.array(latencies) * 1000
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "max_ms": float(values.max()),
        "mean_ms": float(values.mean()),
    }


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sink = Sink()
    url, receiver = _listen(sink)
    with benchmark_server(workdir) as (graph, uri):
        graph.wipe()
        init_schema(graph)
        console.print(f"Neo4j: {uri} (wiped)")
        env = {**neo4j_env(uri), "IDGRAPH_REJECTS_DIR": str(workdir / "rejects")}
        port = free_port()
        server_env = {**env, "IDGRAPH_API_KEYS": json.dumps(KEYS), "IDGRAPH_LOG_LEVEL": "WARNING"}
        api = subprocess.Popen(
            [sys.executable, "-m", "identity", "serve", "--port", str(port)],
            env={**os.environ, **server_env},
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "server.log").open("wb"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(lambda: _up(base), 60, "the API server")
            _graphql(
                base,
                "bench-admin-key",
                "mutation($url: String!, $secret: String!) { createWebhook(url: $url, "
                "kinds: [IDENTITY_CREATED, IDENTITY_SPLIT, STEWARD_ACTION], secret: $secret) "
                "{ webhook { id } } }",
                url=url,
                secret=SECRET,
            )
            people = workdir / "people.ndjson"
            with people.open("w") as out:
                for i in range(args.people):
                    out.write(
                        json.dumps(
                            {
                                "type": "identify",
                                "messageId": f"m{i}",
                                "userId": f"U{i}",
                                "anonymousId": f"ck-{i}",
                                "timestamp": "2026-11-01T10:00:00Z",
                            }
                        )
                        + "\n"
                    )
            _idgraph(env, "load", "segment", str(people))
            started = time.perf_counter()
            _idgraph(env, "resolve")
            resolved_at = time.time()
            console.print(
                f"set-up: {args.people:,} people loaded and resolved "
                f"({time.perf_counter() - started:.1f}s for the resolve)"
            )
            _wait(lambda: len(sink.of("identity.created")) >= args.people, 600, "deliveries")
            created = sink.of("identity.created")
            first, last = created[0][0], created[-1][0]
            throughput = {
                "events": len(created),
                "seconds_after_resolve": last - resolved_at,
                "events_per_s": len(created) / max(last - resolved_at, 1e-9),
                "events_per_s_while_sending": len(created) / max(last - first, 1e-9),
            }
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
            poller = Poller(base, args.poll, since)
            poller.start()
            time.sleep(args.poll * 1.5)
            pushed, polled = [], []
            for i in range(args.changes):
                answer = _graphql(
                    base,
                    "bench-steward-key",
                    CUT,
                    a={"type": "crm_id", "value": f"U{i}"},
                    b={"type": "cookie", "value": f"ck-{i}"},
                )
                committed = time.time()
                before = answer["cutLink"]["before"][0]

                def split_seen(identity: str = before) -> bool:
                    return any(
                        {"id": identity, "role": "split"} in b["identities"]
                        for _, b in sink.of("identity.split")[-5:]
                    )

                _wait(split_seen, 60, f"the split of U{i} at the receiver")
                got = next(
                    t
                    for t, b in sink.of("identity.split")
                    if {"id": before, "role": "split"} in b["identities"]
                )
                pushed.append(got - committed)
                _wait(lambda identity=before: identity in poller.seen, 60, "the poller")
                polled.append(poller.seen[before] - committed)
                # a random phase: changes must not fall in step with the poller's period
                time.sleep(args.interval + random.uniform(0, args.poll))
            poller.stopping.set()
            server_peak = process_peak_rss_mb(api.pid)
        except BaseException:
            console.print((workdir / "server.log").read_text()[-3000:])
            raise
        finally:
            api.terminate()
            api.wait(30)
            receiver.should_exit = True
    return {
        "throughput": throughput,
        "latency": {
            "webhook": _stats(pushed),
            "polling": {**_stats(polled), "every_s": args.poll, "requests": poller.requests},
            "changes": args.changes,
        },
        "unsigned": sink.unsigned,
        "peak_rss_mb": {"api_server": server_peak, "benchmark": peak_rss_mb()},
    }


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def main() -> int:
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=20_000, help="identity.created events")
    parser.add_argument("--changes", type=int, default=100, help="steward cuts timed")
    parser.add_argument("--interval", type=float, default=0.3, help="seconds between changes")
    parser.add_argument("--poll", type=float, default=1.0, help="the poller's period, seconds")
    out = Path(__file__).parent / "results" / "webhooks.json"
    parser.add_argument("--json", "--out", dest="out", type=Path, default=out)
    args = parser.parse_args()
    if args.people < args.changes or args.changes < 1:
        parser.error("--changes must be at least 1 and at most --people")
    revision = commit_measured()
    with tempfile.TemporaryDirectory(prefix="idgraph-bench-") as tmp:
        result = run(args, Path(tmp))
    report = {**header("webhooks", revision), "parameters": dict(vars(args)), **result}
    report["parameters"]["out"] = str(args.out)
    table = Table("", "p50 ms", "p95 ms", "max ms")
    for name, row in (
        ("webhook (push)", result["latency"]["webhook"]),
        (f"polling every {args.poll:g}s", result["latency"]["polling"]),
    ):
        table.add_row(name, f"{row['p50_ms']:.0f}", f"{row['p95_ms']:.0f}", f"{row['max_ms']:.0f}")
    console.print(table)
    ratio = result["latency"]["polling"]["p50_ms"] / max(
        result["latency"]["webhook"]["p50_ms"], 1e-9
    )
    report["polling_over_webhook_p50"] = ratio
    t = result["throughput"]
    console.print(
        f"throughput: {t['events']:,} identity.created delivered {t['seconds_after_resolve']:.1f}s "
        f"after the resolve: {t['events_per_s']:,.0f} events/s "
        f"({t['events_per_s_while_sending']:,.0f}/s while sending); p50 polling/webhook "
        f"{ratio:.1f}x; unsigned {result['unsigned']}; peak RSS {result['peak_rss_mb']}"
    )
    write(args.out, report, console)
    return 0 if result["unsigned"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
