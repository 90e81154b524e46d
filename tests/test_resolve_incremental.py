"""Incremental resolution gives exactly the partition of a full recompute, whatever the loads.

Hypothesis draws a few small batches of identify events over a small universe of
identifiers (so that people collide: shared cookies, crm ids over their limit, emails typed
on several browsers), spread over most of a year (so that links expire between runs). Each
batch is loaded with the real loader and resolved incrementally, the clock moving forward;
the stored identities must then equal a full recompute of the same data, and every
identifier must belong to exactly one identity.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.store.driver import Graph
from tests.resolving import AS_OF, check_invariants, identify, load_events, recomputed, run, stored

pytestmark = pytest.mark.neo4j

_event = st.fixed_dictionaries(
    {
        "user": st.none() | st.sampled_from([f"C{i}" for i in range(4)]),
        "cookie": st.none() | st.sampled_from([f"ck-{i}" for i in range(7)]),
        "email": st.none() | st.sampled_from([f"p{i}@ex.org" for i in range(6)]),
        "phone": st.none() | st.sampled_from([f"06112233{i:02d}" for i in range(5)]),
        "day": st.integers(min_value=1, max_value=300),
    }
).filter(lambda e: sum(e[k] is not None for k in ("user", "cookie", "email", "phone")) >= 1)
_batches = st.lists(st.lists(_event, min_size=1, max_size=6), min_size=1, max_size=4)


def _identify(n: int, e: dict[str, Any]) -> dict[str, Any]:
    traits = {k: e[k] for k in ("email", "phone") if e[k] is not None}
    return identify(n, user=e["user"], cookie=e["cookie"], day=e["day"], **traits)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=_batches, step_days=st.integers(min_value=0, max_value=120))
def test_incremental_equals_full_recompute(
    graph: Graph, tmp_path_factory: pytest.TempPathFactory, batches: list[Any], step_days: int
) -> None:
    graph.wipe()
    tmp_path: Path = tmp_path_factory.mktemp("incremental")
    counter = itertools.count()
    as_of = AS_OF
    for i, batch in enumerate(batches):
        load_events(graph, tmp_path, f"b{i}", [_identify(next(counter), e) for e in batch])
        as_of = AS_OF + timedelta(days=step_days * i)
        report = run(graph, tmp_path, as_of=as_of)
        assert report.mode == ("full" if i == 0 else "incremental")
    assert stored(graph) == recomputed(graph, tmp_path, as_of=as_of)
    check_invariants(graph)
