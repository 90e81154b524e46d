"""Split off against a real Neo4j: the fewest links that separate the chosen identifiers from
the rest of their identity, the preview of what results, one audited application, its
refusals, and the CLI command."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from identity.config import Settings
from identity.errors import InputError
from identity.steward import split
from identity.store.driver import Graph
from tests.cli import cli_env, idgraph, ok
from tests.resolving import (
    check_invariants,
    identify,
    identity_of,
    load_events,
    recomputed,
    run,
    stored,
)
from tests.services import services

pytestmark = pytest.mark.neo4j

ACTOR = "steward:alice"
ANN, BOB = "email:ann@example.org", "email:bob@example.org"
BOBS = [BOB, "cookie:ck-bob"]
ANNS = [ANN, "cookie:ck-ann", "cookie:ck-tablet"]


@pytest.fixture
def family(graph: Graph, tmp_path: Path) -> Graph:
    """Ann and Bob joined twice: both signed in on the family tablet's browser, and Ann once
    typed her email on Bob's laptop. Cutting either path alone splits nothing."""
    load_events(
        graph,
        tmp_path,
        "family",
        [
            identify(1, cookie="ck-ann", email="ann@example.org"),
            identify(2, cookie="ck-tablet", email="ann@example.org"),
            identify(3, cookie="ck-tablet", email="bob@example.org"),
            identify(4, cookie="ck-bob", email="bob@example.org"),
            identify(5, cookie="ck-bob", email="ann@example.org"),
        ],
    )
    run(graph, tmp_path, as_of=datetime.now(UTC))
    assert len({identity_of(graph, key) for key in ANNS + BOBS}) == 1
    return graph


def test_the_preview_finds_the_fewest_links_and_writes_nothing(
    family: Graph, tmp_path: Path
) -> None:
    graph = family
    before = stored(graph)
    plan = split.plan_split_off(
        services(graph, tmp_path), ["email: Bob@Example.org", "cookie:ck-bob"]
    )
    assert plan.identity == identity_of(graph, ANN)
    assert plan.selected == sorted(BOBS)
    # two paths join them (the tablet, Ann's email on Bob's laptop): two links, no more
    assert plan.cuts == [("cookie:ck-bob", ANN), ("cookie:ck-tablet", BOB)]
    assert plan.groups == [sorted(BOBS), sorted(ANNS)]
    assert stored(graph) == before  # nothing written


def test_a_split_off_cuts_with_one_reason_and_one_audit_event(
    family: Graph, tmp_path: Path
) -> None:
    graph = family
    identity = identity_of(graph, ANN)
    ctx = services(graph, tmp_path, actor=ACTOR)
    result = split.split_off(ctx, BOBS, reason="Bob's devices, family tablet")
    assert result.report is not None and result.report.mode == "incremental"
    assert identity_of(graph, ANN) == identity  # the larger part keeps the id
    assert identity_of(graph, BOB) == identity_of(graph, "cookie:ck-bob") != identity
    assert sorted(result.identities) == sorted({identity, identity_of(graph, BOB)})
    assert stored(graph) == recomputed(graph, tmp_path, as_of=result.report.as_of)
    check_invariants(graph)
    cut = graph.read(
        "cut links",
        "MATCH (a)-[r:LINKED]->(b) WHERE r.cut RETURN a.key AS a, b.key AS b, "
        "r.cut_reason AS reason, r.cut_by AS actor ORDER BY a, b",
    )
    assert [(r["a"], r["b"]) for r in cut] == result.plan.cuts
    assert {(r["reason"], r["actor"]) for r in cut} == {("Bob's devices, family tablet", ACTOR)}
    events = graph.read(
        "audit",
        "MATCH (e:IdentityEvent {kind: 'steward'}) RETURN e.action AS action, e.keys AS keys, "
        "e.selected AS selected, e.reason AS reason, e.run AS run, "
        "COLLECT { MATCH (e)-[a:AFFECTED]->(p) RETURN [a.role, p.id] } AS affected",
    )
    assert len(events) == 1
    event = events[0]
    assert event["action"] == "split_off" and event["selected"] == sorted(BOBS)
    assert event["keys"] == sorted({k for pair in result.plan.cuts for k in pair})
    assert event["run"] == result.report.run
    assert sorted(event["affected"]) == sorted(
        [["before", identity], *(["after", i] for i in result.identities)]
    )


def test_refusals_name_what_is_wrong(family: Graph, tmp_path: Path) -> None:
    graph = family
    ctx = services(graph, tmp_path, actor=ACTOR)
    load_events(graph, tmp_path, "other", [identify(9, cookie="ck-zed", email="zed@example.org")])
    run(graph, tmp_path, as_of=datetime.now(UTC))
    with pytest.raises(InputError, match="must all belong to one identity; they belong to 2"):
        split.plan_split_off(ctx, [BOB, "email:zed@example.org"])
    with pytest.raises(InputError, match="that is every identifier of"):
        split.plan_split_off(ctx, ANNS + BOBS)
    with pytest.raises(InputError, match="at least one identifier"):
        split.plan_split_off(ctx, [])
    with pytest.raises(InputError, match="none has one"):
        split.plan_split_off(ctx, ["email:nobody@example.org"])
    with pytest.raises(InputError, match="reason"):
        split.split_off(ctx, BOBS, reason="  ")
    assert (
        graph.read("cuts", "MATCH ()-[r:LINKED {cut: true}]->() RETURN count(r) AS n")[0]["n"] == 0
    )


def test_the_cli_previews_then_splits(
    family: Graph, neo4j_settings: Settings, tmp_path: Path
) -> None:
    graph = family
    env = cli_env(neo4j_settings, tmp_path)
    identity = identity_of(graph, ANN)
    preview = ok("steward", "split-off", *BOBS, "--dry-run", env=env)
    assert f"identity {identity}: split off {', '.join(sorted(BOBS))}" in preview
    assert "links to cut: 2" in preview and f"  cookie:ck-tablet - {BOB}" in preview
    assert "identities that would result: 2" in preview
    assert identity_of(graph, BOB) == identity  # a preview changes nothing
    missing = idgraph("steward", "split-off", *BOBS, env=env)
    assert missing.returncode == 2 and "--reason" in missing.stderr
    done = ok("steward", "split-off", *BOBS, "--reason", "Bob's devices", env=env)
    assert "links cut: 2" in done and "applied by incremental resolve" in done
    assert identity_of(graph, BOB) != identity == identity_of(graph, ANN)
    error = idgraph("steward", "split-off", *BOBS, "--dry-run", env=env)  # all of it now
    assert error.returncode == 1 and "that is every identifier of" in error.stderr
