"""Matched links in the graph: written, applied by an incremental resolve exactly as a full one
would, and kept consistent when a steward later changes what is around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.steward.actions import cut_link
from identity.store.driver import Graph
from identity.store.matching import Score, write_matches
from tests.resolving import identify, load_events, run, services, stored

pytestmark = pytest.mark.neo4j


def _match(graph: Graph, a: str, b: str) -> None:
    score = Score(a, b, 0.999, -10.0, ("Last Name (name)",), ("Exact match",), (12.0,))
    write_matches(
        graph, source="crm", party="first", model=1, links=[score], new={(a, b)}, retract=[],
        reviews=[], batch="match-test", at=1_790_000_000_000,
    )  # fmt: skip


def test_incremental_resolves_see_clusters_of_duplicates_around_a_change(
    graph: Graph, tmp_path: Path
) -> None:
    # a cookie seen with three crm ids is shared; two of them are one customer's duplicates
    events = [identify(i, user=f"C{i}", cookie="K") for i in (1, 2, 3)]
    load_events(graph, tmp_path, "kiosk", events)
    run(graph, tmp_path)
    assert frozenset({"cookie:K"}) in stored(graph)
    _match(graph, "crm_id:C1", "crm_id:C2")
    run(graph, tmp_path)
    incremental = stored(graph)
    assert frozenset({"crm_id:C1", "crm_id:C2"}) in incremental
    assert incremental == (run(graph, tmp_path, full=True), stored(graph))[1]
    # the cut leaves the cookie with one customer (the duplicates count once): it joins them,
    # though the cut touched only the cookie and C3
    cut_link(
        services(graph, tmp_path, actor="steward"), "cookie:K", "crm_id:C3", reason="another person"
    )
    after = stored(graph)
    assert frozenset({"crm_id:C1", "crm_id:C2", "cookie:K"}) in after
    run(graph, tmp_path, full=True)
    assert stored(graph) == after
