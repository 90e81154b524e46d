"""Resolve runs: the one lock they take, their records, and the work waiting for them.

The lock is one ``(:ResolveLock {id: 'resolve'})`` node, created through its uniqueness
constraint (so two runs cannot both create it) and fenced: every write transaction of a run
checks that the lock still names it (:func:`fence`), and a run whose lock was taken over
stops. A run is a ``(:ResolveRun)`` record (``running``, ``completed`` or ``failed``); the
batches a completed run covered are marked resolved, and the next incremental run starts from
the identifiers the other batches touched.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neo4j import ManagedTransaction

from identity.errors import ResolveBusyError, StoreError
from identity.store.driver import Graph
from identity.store.host import pid_alive

STALE_AFTER_MS = 10 * 60 * 1000  # a lock without heartbeat for this long is abandoned


@dataclass(frozen=True)
class Holder:
    run: str
    pid: int
    host: str
    since: str
    heartbeat_ms: int


class ResolveLock:
    """The one lock resolutions take; ``wait`` seconds to wait for it, 0 to refuse at once."""

    def __init__(self, graph: Graph, run: str) -> None:
        self.graph = graph
        self.run = run
        self.pid = os.getpid()
        self.host = socket.gethostname()

    def acquire(self, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            holder = self._try()
            if holder is None:
                return
            if self._abandoned(holder) and self._take_over(holder):
                return
            if time.monotonic() >= deadline:
                raise ResolveBusyError(
                    f"another resolve is running (run {holder.run}, pid {holder.pid} on "
                    f"{holder.host}, since {holder.since}): wait for it, or pass --wait SECONDS"
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def _try(self) -> Holder | None:
        rows = self.graph.run(
            "take resolve lock",
            """
            MERGE (l:ResolveLock {id: 'resolve'})
            ON CREATE SET l.run = $run, l.pid = $pid, l.host = $host, l.since = datetime(),
                          l.heartbeat = datetime(), l.created = $run
            RETURN l.run AS run, l.pid AS pid, l.host AS host, toString(l.since) AS since,
                   l.heartbeat.epochMillis AS heartbeat
            """,
            {"run": self.run, "pid": self.pid, "host": self.host},
        )
        row = rows[0]
        if row["run"] == self.run:
            return None
        return Holder(row["run"], row["pid"], row["host"], row["since"], row["heartbeat"])

    def _abandoned(self, holder: Holder) -> bool:
        if holder.host == self.host and not pid_alive(holder.pid):
            return True
        return time.time() * 1000 - holder.heartbeat_ms > STALE_AFTER_MS

    def _take_over(self, holder: Holder) -> bool:
        rows = self.graph.run(
            "take over abandoned resolve lock",
            """
            MATCH (l:ResolveLock {id: 'resolve'}) WHERE l.run = $old
            SET l.run = $run, l.pid = $pid, l.host = $host, l.since = datetime(),
                l.heartbeat = datetime()
            RETURN l.run AS run
            """,
            {"old": holder.run, "run": self.run, "pid": self.pid, "host": self.host},
        )
        return bool(rows)

    def release(self) -> None:
        self.graph.run(
            "release resolve lock",
            "MATCH (l:ResolveLock {id: 'resolve'}) WHERE l.run = $run DELETE l",
            {"run": self.run},
        )


def fence(tx: ManagedTransaction, run: str) -> None:
    """Inside a resolve's write transaction: stop unless the lock still names ``run``."""
    held = tx.run(
        "MATCH (l:ResolveLock {id: 'resolve'}) WHERE l.run = $run "
        "SET l.heartbeat = datetime() RETURN count(l) AS n",
        run=run,
    ).single()
    if held is None or held["n"] == 0:
        raise ResolveBusyError(f"resolve run {run} lost its lock to another run; stopping")


def last_run(graph: Graph) -> dict[str, Any] | None:
    """The latest resolve run, whatever its status."""
    rows = graph.read(
        "read last resolve run",
        "MATCH (r:ResolveRun) RETURN properties(r) AS run ORDER BY r.started_at DESC LIMIT 1",
    )
    return rows[0]["run"] if rows else None


def last_completed_run(graph: Graph) -> dict[str, Any] | None:
    rows = graph.read(
        "read last completed resolve run",
        "MATCH (r:ResolveRun) WHERE r.status = 'completed' "
        "RETURN properties(r) AS run ORDER BY r.started_at DESC LIMIT 1",
    )
    return rows[0]["run"] if rows else None


def begin_run(graph: Graph, run: dict[str, Any]) -> None:
    graph.run(
        "record resolve run",
        "CREATE (r:ResolveRun) SET r = $run, r.status = 'running', "
        "r.started_at = datetime({epochMillis: $run.started_ms})",
        {"run": run},
    )


def finish_run(graph: Graph, run: str, batches: Sequence[str], summary: dict[str, Any]) -> None:
    """Mark the run completed and its batches resolved, in one transaction; their chunks'
    lists of touched keys are no longer needed."""
    graph.run(
        "finish resolve run",
        """
        MATCH (r:ResolveRun {id: $run})
        SET r += $summary, r.status = 'completed', r.finished_at = datetime()
        WITH r
        UNWIND $batches AS id
        MATCH (b:Batch {id: id})
        SET b.resolved_at = datetime(), b.resolved_by = $run
        WITH b
        CALL (b) { MATCH (c:BatchChunk {batch: b.id}) REMOVE c.keys }
        """,
        {"run": run, "batches": list(batches), "summary": summary},
    )


def fail_run(graph: Graph, run: str, error: str) -> None:
    # if even this fails, the run stays 'running': the next run treats it the same way
    with contextlib.suppress(StoreError):
        graph.run(
            "mark resolve run failed",
            "MATCH (r:ResolveRun {id: $run}) SET r.status = 'failed', r.error = $error",
            {"run": run, "error": error[:2000]},
        )


def pending_batches(graph: Graph) -> list[str]:
    """Completed loads not yet resolved."""
    rows = graph.read(
        "read unresolved batches",
        "MATCH (b:Batch) WHERE b.status = 'completed' AND b.resolved_at IS NULL "
        "RETURN b.id AS id ORDER BY b.started_at, b.id",
    )
    return [row["id"] for row in rows]


def touched_keys(graph: Graph, batches: Sequence[str]) -> set[str]:
    """Identifiers ``batches`` touched: the keys a load's chunks kept, and the identifiers
    a steward action, an erasure or a purge marked (``touched``, through its index)."""
    return set(
        graph.read_collected(
            "read touched identifiers",
            """
            UNWIND $batches AS id
            CALL (id) {
              MATCH (c:BatchChunk {batch: id}) UNWIND c.keys AS key RETURN key
              UNION
              MATCH (i:Identifier {touched: id}) RETURN i.key AS key
            }
            RETURN collect(DISTINCT key)
            """,
            {"batches": list(batches)},
        )
    )


def links_seen_between(graph: Graph, low_ms: int, high_ms: int) -> list[list[str]]:
    """Links last seen in (low, high]: those a moving TTL window may have expired, as
    ``[a key, b key]``."""
    return graph.read_collected(
        "read expiring links",
        """
        MATCH (a:Identifier)-[r:LINKED]->(b:Identifier)
        WHERE r.last_seen > datetime({epochMillis: $low})
          AND r.last_seen <= datetime({epochMillis: $high})
        RETURN collect([a.key, b.key])
        """,
        {"low": low_ms, "high": high_ms},
    )
