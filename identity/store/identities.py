"""Writing resolutions: identities, memberships, merges and events, under one database lock.

Each :class:`~identity.resolve.lineage.Unit` (old identities and new groups that share
identifiers) is written whole inside one transaction; several units share a transaction up to
``_ROWS_PER_TX`` rows. A resolve killed half-way leaves every identity as it was or as it
should be, and its run record ``running``: the next run sees it and covers the same ground
again, writing only what is still different.

The lock is one ``(:ResolveLock {id: 'resolve'})`` node, created through its uniqueness
constraint (so two runs cannot both create it) and fenced: every write transaction checks that
the lock still names its run, and a run whose lock was taken over stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from neo4j import ManagedTransaction
from neo4j.exceptions import DriverError, Neo4jError

from identity.errors import ResolveBusyError, StoreError
from identity.resolve.lineage import Unit
from identity.store.driver import Graph, translate_error
from identity.store.host import pid_alive

_ROWS_PER_TX = 5000
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


def _fence(tx: ManagedTransaction, run: str) -> None:
    held = tx.run(
        "MATCH (l:ResolveLock {id: 'resolve'}) WHERE l.run = $run "
        "SET l.heartbeat = datetime() RETURN count(l) AS n",
        run=run,
    ).single()
    if held is None or held["n"] == 0:
        raise ResolveBusyError(f"resolve run {run} lost its lock to another run; stopping")


_WRITE_IDENTITIES = """
UNWIND $rows AS x
MERGE (p:Identity {id: x.id})
ON CREATE SET p.created_at = datetime({epochMillis: $at})
SET p.size = x.size, p.updated_at = datetime({epochMillis: $at}), p.status = 'active'
REMOVE p.merged_into
"""
_WRITE_MERGED = """
UNWIND $rows AS m
MATCH (l:Identity {id: m.loser})
MATCH (w:Identity {id: m.winner})
SET l.status = 'merged', l.merged_into = w.id, l.size = 0,
    l.updated_at = datetime({epochMillis: $at})
MERGE (l)-[:MERGED_INTO]->(w)
"""
_WRITE_MOVES = """
UNWIND $rows AS m
MATCH (i:Identifier {key: m.key})
OPTIONAL MATCH (i)-[old:MEMBER_OF]->(:Identity)
DELETE old
WITH DISTINCT i, m
MATCH (p:Identity {id: m.id})
CREATE (i)-[:MEMBER_OF]->(p)
"""
_WRITE_EVENTS = """
UNWIND $rows AS e
CREATE (ev:IdentityEvent {id: e.id, kind: e.kind, reason: e.reason,
                          at: datetime({epochMillis: $at}), actor: $actor, run: $run,
                          batches: $batches})
WITH ev, e
UNWIND e.identities AS x
MATCH (p:Identity {id: x[0]})
CREATE (ev)-[:AFFECTED {role: x[1]}]->(p)
"""


_WRITE_FRESH = """
UNWIND $rows AS x
CREATE (p:Identity {id: x.id, size: x.size, status: 'active',
                    created_at: datetime({epochMillis: $at}),
                    updated_at: datetime({epochMillis: $at})})
CREATE (:IdentityEvent {id: x.event, kind: 'created', reason: x.reason,
                        at: datetime({epochMillis: $at}), actor: $actor, run: $run,
                        batches: $batches})-[:AFFECTED {role: 'created'}]->(p)
WITH p, x
UNWIND x.keys AS key
MATCH (i:Identifier {key: key})
CREATE (i)-[:MEMBER_OF]->(p)
"""


def write_units(
    graph: Graph,
    units: Sequence[Unit],
    *,
    run: str,
    at_ms: int,
    actor: str,
    batches: Sequence[str],
    writers: int = 1,
    on_commit: Callable[[int], None] | None = None,
) -> None:
    """Write the units, each whole in one transaction, on ``writers`` threads;
    ``on_commit(units_done)`` after each transaction.

    Units share no identifier and no identity, so concurrent transactions take disjoint locks.
    """
    params = {"run": run, "at": at_ms, "actor": actor, "batches": list(batches)}
    fresh = [u for u in units if u.fresh]
    other = [u for u in units if not u.fresh]
    groups = [*_packed(fresh), *_packed(other)]
    done = 0

    def write(group: list[Unit]) -> int:
        try:
            with graph.driver.session(database=graph.database) as session:
                session.execute_write(_write_group, group, params)
        except (Neo4jError, DriverError) as e:
            raise translate_error(f"write identities (run {run})", e) from e
        return len(group)

    if writers <= 1 or len(groups) <= 1:
        for group in groups:
            done += write(group)
            if on_commit is not None:
                on_commit(done)
        return
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="resolve-writer") as pool:
        pending = {pool.submit(write, group) for group in groups[:writers]}
        queued = iter(groups[writers:])
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done += future.result()
                    if on_commit is not None:
                        on_commit(done)
                    following = next(queued, None)
                    if following is not None:
                        pending.add(pool.submit(write, following))
        except BaseException:
            for future in pending:
                future.cancel()
            wait(pending)
            raise


def _packed(units: Sequence[Unit]) -> Iterable[list[Unit]]:
    group: list[Unit] = []
    weight = 0
    for unit in units:
        group.append(unit)
        weight += unit.weight
        if weight >= _ROWS_PER_TX:
            yield group
            group, weight = [], 0
    if group:
        yield group


def _write_group(tx: ManagedTransaction, units: list[Unit], params: dict[str, Any]) -> None:
    _fence(tx, params["run"])
    if units and units[0].fresh:
        rows = [
            {
                "id": u.identities[0]["id"],
                "size": u.identities[0]["size"],
                "event": u.events[0].id,
                "reason": u.events[0].reason,
                "keys": u.members,
            }
            for u in units
        ]
        tx.run(_WRITE_FRESH, {"rows": rows, **params}).consume()
        return
    identities: list[Any] = [x for u in units for x in u.identities]
    merged: list[Any] = [m for u in units for m in u.merged]
    moves: list[Any] = [m for u in units for m in u.moves]
    events: list[Any] = [
        {"id": e.id, "kind": e.kind, "reason": e.reason, "identities": e.identities}
        for u in units
        for e in u.events
    ]
    for query, statement_rows in (
        (_WRITE_IDENTITIES, identities),
        (_WRITE_MERGED, merged),
        (_WRITE_MOVES, moves),
        (_WRITE_EVENTS, events),
    ):
        if statement_rows:
            tx.run(query, {"rows": statement_rows, **params}).consume()


def write_flags(
    graph: Graph,
    run: str,
    shared: Sequence[dict[str, Any]],
    quarantines: Sequence[dict[str, Any]],
    released: Sequence[str],
    at_ms: int,
) -> None:
    """Shared verdicts (``kind`` None clears one) and quarantines, in chunks."""
    for start in range(0, len(shared), _ROWS_PER_TX):
        rows = shared[start : start + _ROWS_PER_TX]
        _fenced_write(
            graph,
            run,
            "write shared identifiers",
            """
                UNWIND $rows AS r
                MATCH (i:Identifier {key: r.key})
                SET i.shared = r.kind, i.shared_reason = r.reason
                """,
            {"rows": rows},
        )
    if released:
        _fenced_write(
            graph,
            run,
            "release quarantined identifiers",
            """
            UNWIND $keys AS k
            MATCH (i:Identifier {key: k})
            OPTIONAL MATCH (q:Quarantine {id: i.quarantine})
            SET q.status = 'released', q.released_at = datetime({epochMillis: $at})
            REMOVE i.quarantine
            """,
            {"keys": list(released), "at": at_ms},
        )
    for q in quarantines:
        _fenced_write(
            graph,
            run,
            "write quarantine",
            """
            MERGE (q:Quarantine {id: $id})
            ON CREATE SET q.detected_at = datetime({epochMillis: $at})
            SET q.size = $size, q.sample = $sample, q.status = 'open', q.run = $run
            WITH q
            UNWIND $keys AS k
            MATCH (i:Identifier {key: k})
            SET i.quarantine = q.id
            """,
            {**q, "at": at_ms, "run": run},
        )


def _fenced_write(
    graph: Graph, run: str, operation: str, query: str, params: dict[str, Any]
) -> None:
    def work(tx: ManagedTransaction) -> None:
        _fence(tx, run)
        tx.run(query, params).consume()

    try:
        with graph.driver.session(database=graph.database) as session:
            session.execute_write(work)
    except (Neo4jError, DriverError) as e:
        raise translate_error(operation, e, query=query, parameters=params) from e


# -- runs and pending work -------------------------------------------------------------------


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
    """Mark the run completed and its batches resolved, in one transaction."""
    graph.run(
        "finish resolve run",
        """
        MATCH (r:ResolveRun {id: $run})
        SET r += $summary, r.status = 'completed', r.finished_at = datetime()
        WITH r
        UNWIND $batches AS id
        MATCH (b:Batch {id: id})
        SET b.resolved_at = datetime(), b.resolved_by = $run
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
    """Identifiers whose last write came from one of ``batches`` (through the index)."""
    return set(
        graph.read_collected(
            "read touched identifiers",
            "UNWIND $batches AS id MATCH (i:Identifier {batch: id}) RETURN collect(i.key)",
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


def identities_of(graph: Graph, keys: Sequence[str]) -> list[str]:
    """The ids of the identities holding ``keys``, distinct and sorted."""
    return sorted(
        graph.read_collected(
            "read identities of identifiers",
            "UNWIND $keys AS k MATCH (:Identifier {key: k})-[:MEMBER_OF]->(p:Identity) "
            "RETURN collect(DISTINCT p.id)",
            {"keys": list(keys)},
        )
    )


def stream_identities(graph: Graph) -> Iterable[tuple[str, list[list[str]]]]:
    """Every active identity with its identifiers' (type, value), members sorted."""
    query = """
        MATCH (p:Identity) WHERE p.status = 'active'
        RETURN p.id AS id,
               COLLECT {
                 MATCH (p)<-[:MEMBER_OF]-(i:Identifier)
                 RETURN [i.type, i.value] ORDER BY i.key
               } AS identifiers
        ORDER BY p.id
    """
    try:
        with graph.driver.session(database=graph.database, fetch_size=5000) as session:
            for record in session.run(query):
                yield record["id"], record["identifiers"]
    except (Neo4jError, DriverError) as e:
        raise translate_error("export identities", e, query=query) from e


def read_review(graph: Graph, limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shared identifiers and open quarantines, for steward review."""
    shared = graph.read(
        "read shared identifiers",
        "MATCH (i:Identifier) WHERE i.shared IS NOT NULL "
        "RETURN i.key AS key, i.shared AS kind, i.shared_reason AS reason "
        "ORDER BY i.key LIMIT $limit",
        {"limit": limit},
    )
    quarantines = graph.read(
        "read quarantines",
        "MATCH (q:Quarantine) WHERE q.status = 'open' "
        "RETURN q.id AS id, q.size AS size, q.sample AS sample ORDER BY q.size DESC LIMIT $limit",
        {"limit": limit},
    )
    return shared, quarantines
