"""Writing resolutions: identities, memberships, merges and events; reading identities back.

Each :class:`~identity.model.Unit` (old identities and new groups that share identifiers) is
written whole inside one transaction; several units share a transaction up to
``_ROWS_PER_TX`` rows. A resolve killed half-way leaves every identity as it was or as it
should be, and its run record ``running``: the next run sees it and covers the same ground
again, writing only what is still different. Every write transaction is fenced by the resolve
lock (:mod:`identity.store.runs`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from neo4j import ManagedTransaction

from identity.model import Unit
from identity.store.driver import Graph
from identity.store.outbox import LABELS
from identity.store.runs import fence

_ROWS_PER_TX = 5000


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
MATCH (i:Identifier) WHERE id(i) = m.node
OPTIONAL MATCH (i)-[old:MEMBER_OF]->(:Identity)
DELETE old
WITH DISTINCT i, m
MATCH (p:Identity {id: m.id})
CREATE (i)-[:MEMBER_OF]->(p)
"""
# events are outbox entries (identity.store.outbox), recorded once their identities are locked
_WRITE_EVENTS = (
    """
UNWIND $rows AS e
CREATE (ev:IdentityEvent:"""
    + LABELS
    + """ {id: e.id, kind: e.kind, reason: e.reason,
                          at: datetime({epochMillis: $at}), actor: $actor, run: $run,
                          batches: $batches})
WITH ev, e
UNWIND e.identities AS x
MATCH (p:Identity {id: x[0]})
CREATE (ev)-[:AFFECTED {role: x[1]}]->(p)
WITH DISTINCT ev
SET ev.recorded = datetime.realtime()
"""
)


_WRITE_FRESH = (
    """
UNWIND $rows AS x
CREATE (p:Identity {id: x.id, size: x.size, status: 'active',
                    created_at: datetime({epochMillis: $at}),
                    updated_at: datetime({epochMillis: $at})})
SET p += x.props
FOREACH (t IN x.times | SET p[t[0]] = datetime({epochMillis: t[1]}))
CREATE (:IdentityEvent:"""
    + LABELS
    + """ {id: x.event, kind: 'created', reason: x.reason,
                        at: datetime({epochMillis: $at}), actor: $actor, run: $run,
                        batches: $batches, recorded: datetime.realtime()})
       -[:AFFECTED {role: 'created'}]->(p)
WITH p, x
UNWIND x.nodes AS node
MATCH (i:Identifier) WHERE id(i) = node
CREATE (i)-[:MEMBER_OF]->(p)
"""
)


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
        graph.write(f"write identities (run {run})", lambda tx: _write_group(tx, group, params))
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
    fence(tx, params["run"])
    if units and units[0].fresh:
        rows = [
            {
                "id": u.identities[0]["id"],
                "size": u.identities[0]["size"],
                "event": u.events[0].id,
                "reason": u.events[0].reason,
                "nodes": u.member_nodes,
                "props": u.profile["props"] if u.profile else {},
                "times": u.profile["times"] if u.profile else [],
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


def write_device_reviews(
    graph: Graph,
    run: str,
    calls: Sequence[dict[str, Any]],
    region: Sequence[str] | None,
    at_ms: int,
) -> None:
    """The device calls of a resolve, open for review (``(:DeviceReview)``, one per device and
    side, its id from their keys); the open ones this resolve no longer makes are closed:
    every one for a full run (``region`` None), else those whose device is in ``region``."""
    ids = {c["id"] for c in calls}
    within = set(region) if region is not None else None
    # open reviews are few (a fraction of a percent of people): judged here, not in Cypher
    stale = [
        row["id"]
        for row in graph.read(
            "read open device reviews",
            "MATCH (r:DeviceReview) WHERE r.status = 'open' RETURN r.id AS id, r.device AS device",
        )
        if row["id"] not in ids and (within is None or within.intersection(row["device"]))
    ]
    if stale:
        _fenced_write(
            graph,
            run,
            "close device reviews",
            """
            UNWIND $ids AS id
            MATCH (r:DeviceReview {id: id})
            SET r.status = 'closed', r.closed_at = datetime({epochMillis: $at})
            """,
            {"ids": stale, "at": at_ms},
        )
    for start in range(0, len(calls), _ROWS_PER_TX):
        _fenced_write(
            graph,
            run,
            "write device reviews",
            """
            UNWIND $rows AS c
            MERGE (r:DeviceReview {id: c.id})
            ON CREATE SET r.detected_at = datetime({epochMillis: $at})
            SET r += c, r.status = 'open', r.run = $run
            REMOVE r.closed_at
            """,
            {"rows": list(calls[start : start + _ROWS_PER_TX]), "at": at_ms, "run": run},
        )


def _fenced_write(
    graph: Graph, run: str, operation: str, query: str, params: dict[str, Any]
) -> None:
    def work(tx: ManagedTransaction) -> None:
        fence(tx, run)
        tx.run(query, params).consume()

    graph.write(operation, work, query=query, parameters=params)


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
    for record in graph.stream("export identities", query, fetch_size=5000):
        yield record["id"], record["identifiers"]


def read_review(
    graph: Graph, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Shared identifiers, open quarantines and open device calls, for steward review."""
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
    devices = graph.read(
        "read device reviews",
        "MATCH (r:DeviceReview) WHERE r.status = 'open' "
        "RETURN r.id AS id, r.split AS split, r.reason AS reason, r.device AS device, "
        "r.kept AS kept, r.other AS other ORDER BY r.split DESC, r.detected_at DESC, r.id "
        "LIMIT $limit",
        {"limit": limit},
    )
    return shared, quarantines, devices


def device_review_keys(graph: Graph) -> set[str]:
    """The anchors named by open device reviews, either side."""
    return set(
        graph.read_collected(
            "read device review anchors",
            "MATCH (r:DeviceReview) WHERE r.status = 'open' "
            "UNWIND r.kept + r.other AS key RETURN collect(DISTINCT key)",
        )
    )
