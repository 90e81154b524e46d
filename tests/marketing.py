"""Helpers for segment and audience tests: people, segments and shoppers in the graph, and
random segment definitions."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from identity.store.driver import Graph
from tests.api_data import track
from tests.resolving import identify


def person(
    graph: Graph,
    pid: str,
    ids: list[tuple[str, str]],
    *,
    consent: dict[str, bool] | None = None,
    segment: str | None = "seg-1",
    status: str = "active",
    blocked: tuple[str, ...] = (),
    hashed: tuple[str, ...] = (),
) -> None:
    """An identity with identifiers (TYPE, VALUE) and consents, a member of ``segment``."""
    graph.run(
        "test person",
        """
        MERGE (p:Identity {id: $pid})
        SET p.status = $status, p += $consent
        WITH p
        UNWIND $ids AS row
        MERGE (i:Identifier {key: row[0] + ':' + row[1]})
        SET i.type = row[0], i.value = row[1]
        FOREACH (_ IN CASE WHEN i.key IN $blocked THEN [1] ELSE [] END | SET i.blocked = true)
        FOREACH (_ IN CASE WHEN i.key IN $hashed THEN [1] ELSE [] END | SET i.hashed = true)
        MERGE (i)-[:MEMBER_OF]->(p)
        """,
        {
            "pid": pid,
            "status": status,
            "consent": {f"consent.{k}": v for k, v in (consent or {}).items()},
            "ids": [list(i) for i in ids],
            "blocked": list(blocked),
            "hashed": list(hashed),
        },
    )
    if segment is not None:
        include(graph, segment, pid)


def segment(graph: Graph, sid: str = "seg-1", refreshed: bool = True) -> None:
    graph.run(
        "test segment",
        "MERGE (s:Segment {id: $sid}) SET s.name = $sid, "
        "s.refreshed_at = CASE WHEN $refreshed THEN datetime() ELSE null END",
        {"sid": sid, "refreshed": refreshed},
    )


def include(graph: Graph, sid: str, pid: str) -> None:
    graph.run(
        "test include",
        "MATCH (s:Segment {id: $sid}), (p:Identity {id: $pid}) MERGE (s)-[:INCLUDES]->(p)",
        {"sid": sid, "pid": pid},
    )


def leave(graph: Graph, sid: str, pid: str) -> None:
    graph.run(
        "test leave",
        "MATCH (:Segment {id: $sid})-[r:INCLUDES]->(:Identity {id: $pid}) DELETE r",
        {"sid": sid, "pid": pid},
    )


def shoppers(people: list[dict[str, Any]], orders: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Identify events of customers C1, C2, ... (cookies ck1, ck2, ...) with their traits,
    then an Order Completed per (customer number, day of 2026)."""
    events = [
        identify(n, user=f"C{n}", cookie=f"ck{n}", **traits) for n, traits in enumerate(people, 1)
    ]
    return events + [
        track(100 + i, f"ck{n}", "Order Completed", day=day) for i, (n, day) in enumerate(orders)
    ]


def trees(leaf: st.SearchStrategy[Any], max_leaves: int) -> st.SearchStrategy[Any]:
    """Definitions of ``all``, ``any`` and ``not`` over the given leaves."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
            st.builds(lambda x: {"not": x}, inner),
        ),
        max_leaves=max_leaves,
    )
