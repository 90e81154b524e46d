"""The Spark engine gives the default engine's answer: partition, verdicts, notes, conflicts,
quarantines and device calls. Real local Spark session (two cores), no Neo4j."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from identity.engines.spark.components import components
from identity.engines.spark.engine import resolve_on_spark, session
from identity.engines.spark.exchange import (
    ExchangeError,
    InputWriter,
    Rules,
    read_resolution,
    write_inputs,
)
from identity.engines.spark.job import run as run_job
from identity.policy import Policy, TypeRule
from identity.resolve.engine import resolve
from identity.resolve.graph import DIRECT, TWO_HOP, LinkGraph, LinkRow, NodeRow
from tests.spark_views import SPARK, by_key, differences, disjoint_union
from tests.test_engine import AS_OF, link, node, people_graphs, random_graphs

POLICIES = [
    Policy(),
    replace(Policy(), max_identity_size=5),
    replace(Policy(), two_hop=False, shared_devices=False),
    replace(
        Policy(),
        rules={**Policy().rules, "email": TypeRule(limit=2, priority=80), "cookie": TypeRule()},
    ),
]


def both(nodes: list[NodeRow], links: list[LinkRow], policy: Policy) -> dict[str, object]:
    """Resolve with both engines; what differs."""
    local = resolve(LinkGraph.from_rows(nodes, links), policy, AS_OF)
    spark = resolve_on_spark(LinkGraph.from_rows(nodes, links), policy, AS_OF, SPARK)
    return differences(local, spark.resolution)


# Each example is one Spark run of a few seconds over dozens of graphs; shrinking a failure
# would take as many runs again, so a failure is reported as drawn (the graph's number in its
# keys, g<n>., says which of the graphs differs).
@settings(
    deadline=None,
    max_examples=4,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.generate],
)
@given(
    people=st.lists(people_graphs(), min_size=4, max_size=24),
    strays=st.lists(random_graphs(max_nodes=10), max_size=6),
    policy=st.sampled_from(POLICIES),
)
def test_the_spark_engine_gives_the_default_engines_answer_on_random_graphs(
    people: list[tuple[list[NodeRow], list[LinkRow]]],
    strays: list[tuple[list[NodeRow], list[LinkRow]]],
    policy: Policy,
) -> None:
    # kiosks, tablets, shared emails, limits, third-party links, cuts, forced links, blocked
    # identifiers and expired links, dozens of graphs per Spark run (see disjoint_union)
    nodes, links = disjoint_union(people + strays)
    assert both(nodes, links, policy) == {}


def test_every_rule_fires_and_both_engines_agree() -> None:
    kiosk = [link("cookie:kiosk", f"email:k{i}") for i in range(12)]
    tablet = [link("device:tablet", "crm_id:t1"), link("device:tablet", "crm_id:t2")]
    typed = [link(f"cookie:typed{i}", "email:test@x") for i in range(7)] + [
        link(f"cookie:typed{i}", f"email:own{i}") for i in range(7)
    ]
    bridge = [
        link("email:bridge", "cookie:b1"), link("cookie:b1", "email:b1"),
        link("email:bridge", "cookie:b2"), link("cookie:b2", "email:b2"),
    ]  # fmt: skip
    day = 86_400_000
    partner = [
        link("cookie:ipad", "email:ann", count=3, first_seen=0, last_seen=AS_OF - 2 * day),
        link("cookie:ipad", "email:bob", count=3, first_seen=day, last_seen=AS_OF - day),
        link("email:ann", "crm_id:ann"),
        link("cookie:ipad", "crm_id:ann"),
    ]
    limits = [link("crm_id:l", f"phone:+33{i}", count=i + 1) for i in range(5)]
    third = [link("cookie:c3", "dmp_id:d3", mergeable=False)]
    cut = [link("cookie:cut", "email:cut", cut=True)]
    forced = [link("cookie:kiosk", "email:forced", forced=True)]
    expired = [link("cookie:old", "email:old", last_seen=0)]
    # over the circuit breaker's 1,000: 40 cookies in a chain, each with 27 of its own
    big = [link(f"cookie:big{i}", f"cookie:big{i + 1}") for i in range(39)]
    big += [link(f"cookie:big{i}", f"cookie:big{i}.{j}") for i in range(40) for j in range(27)]
    links = kiosk + tablet + typed + bridge + partner + limits + third + cut + forced + expired
    links += big
    nodes = [node(k) for k in sorted({r.a for r in links} | {r.b for r in links})]
    nodes = [replace(n, blocked=True) if n.key == "email:k0" else n for n in nodes]
    local = resolve(LinkGraph.from_rows(nodes, links), Policy(), AS_OF)
    seen = by_key(local)
    assert {"cookie:kiosk", "device:tablet", "email:test@x", "email:bridge"} <= {
        key for key, kind in seen["kinds"].items() if kind
    }
    assert seen["conflicts"] and seen["quarantined"] and seen["devices"]
    assert both(nodes, links, Policy()) == {}


def test_a_region_with_its_halo_resolves_alike(tmp_path: Path) -> None:
    # an incremental run's graph: a halo of shared identifiers with their stored verdicts
    nodes = [
        node("cookie:a"), node("email:a"), node("cookie:b"), node("email:b"),
        NodeRow("cookie:kiosk", "cookie", region=False, stored_shared=DIRECT),
        NodeRow("cookie:typed", "cookie", region=False, stored_shared=TWO_HOP),
        NodeRow("email:far", "email", region=False),
    ]  # fmt: skip
    links = [
        link("cookie:a", "email:a"), link("cookie:b", "email:b"),
        link("cookie:kiosk", "email:a"), link("cookie:kiosk", "email:b"),
        link("cookie:typed", "email:a"), link("cookie:typed", "email:far"),
    ]  # fmt: skip
    local = resolve(LinkGraph.from_rows(nodes, links), Policy(), AS_OF)
    assert frozenset({"cookie:a", "email:a"}) in local.partition()
    # through an exchange directory of one's own (IDGRAPH_SPARK_EXCHANGE): emptied after
    exchange = SPARK.model_copy(update={"spark_exchange": str(tmp_path)})
    spark = resolve_on_spark(LinkGraph.from_rows(nodes, links), Policy(), AS_OF, exchange)
    assert differences(local, spark.resolution) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", ["path", "star", "ladder", "random"])
def test_large_star_small_star_finds_the_components(shape: str) -> None:
    graph = {
        "path": nx.path_graph(300),
        "star": nx.star_graph(200),
        "ladder": nx.ladder_graph(150),
        "random": nx.gnm_random_graph(400, 300, seed=3),
    }[shape]
    # ids scrambled so that the smallest id is nowhere special
    ids = {n: (n * 7919) % 100_003 for n in graph.nodes}
    spark = session(SPARK.spark_master, SPARK.spark_driver_memory)
    nodes = spark.createDataFrame([(ids[n],) for n in graph.nodes], "id long")
    edges = spark.createDataFrame([(ids[a], ids[b]) for a, b in graph.edges], "a long, b long")
    found = components(nodes, edges)
    labels = dict(found.frame.collect())
    expected = {ids[n]: min(ids[m] for m in part) for part in nx.connected_components(graph)
                for n in part}  # fmt: skip
    assert labels == expected
    assert found.rounds >= 1


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[NodeRow], list[LinkRow]]:
    """One job's output on a small graph."""
    root = tmp_path_factory.mktemp("spark")
    links = [link("cookie:a", "email:a"), link("cookie:b", "email:a")]
    nodes = [node("cookie:a"), node("cookie:b"), node("email:a")]
    graph = LinkGraph.from_rows(nodes, links)
    write_inputs(graph, Rules.of(Policy(), graph.type_names, AS_OF), str(root / "in"))
    run_job(
        session(SPARK.spark_master, SPARK.spark_driver_memory), str(root / "in"), str(root / "out")
    )
    return root / "out", nodes, links


def test_results_read_back_on_the_graph_they_were_computed_from(
    results: tuple[Path, list[NodeRow], list[LinkRow]],
) -> None:
    out, nodes, links = results
    graph = LinkGraph.from_rows(nodes, links)
    res = read_resolution(str(out), graph, Rules.of(Policy(), graph.type_names, AS_OF))
    assert res.partition() == {frozenset({"cookie:a", "cookie:b", "email:a"})}


def test_results_for_another_graph_or_policy_are_refused(
    results: tuple[Path, list[NodeRow], list[LinkRow]], tmp_path: Path
) -> None:
    out, nodes, links = results
    grown = LinkGraph.from_rows([*nodes, node("cookie:new")], links)
    with pytest.raises(
        ExchangeError, match=r"1 identifiers have no group \(for instance cookie:new\)"
    ):
        read_resolution(str(out), grown, Rules.of(Policy(), grown.type_names, AS_OF))
    shrunk = LinkGraph.from_rows(nodes[1:], links[1:])
    with pytest.raises(ExchangeError, match="names 1 identifiers the graph does not hold"):
        read_resolution(str(out), shrunk, Rules.of(Policy(), shrunk.type_names, AS_OF))
    graph = LinkGraph.from_rows(nodes, links)
    other = replace(Policy(), two_hop=False)
    with pytest.raises(ExchangeError, match="computed under another policy"):
        read_resolution(str(out), graph, Rules.of(other, graph.type_names, AS_OF))
    with pytest.raises(ExchangeError, match=r"holds no rules\.json"):
        read_resolution(str(tmp_path), graph, Rules.of(Policy(), graph.type_names, AS_OF))


def test_files_that_are_not_one_graph_are_refused(tmp_path: Path) -> None:
    rules = Rules.of(Policy(), ["cookie", "email"], AS_OF)
    spark = session(SPARK.spark_master, SPARK.spark_driver_memory)
    for name, ids in (("dangling", [1, 2]), ("repeated", [1, 2, 2])):
        writer = InputWriter(str(tmp_path / name))
        writer.add_identifiers(
            {"id": ids, "key": [f"cookie:{i}.{n}" for n, i in enumerate(ids)],
             "type": [0] * len(ids), "blocked": [False] * len(ids),
             "region": [True] * len(ids), "stored": [0] * len(ids)}
        )  # fmt: skip
        writer.add_links(
            {"id": [0, 1], "a": [1, 1], "b": [2, 3 if name == "dangling" else 2],
             "count": [1, 1], "first_seen": [0, 0], "last_seen": [AS_OF, AS_OF],
             "mergeable": [True, True], "cut": [False, False], "forced": [False, False]}
        )  # fmt: skip
        writer.close(rules)
        expected = "1 of 2 links name an identifier" if name == "dangling" else "1 repeated ids"
        with pytest.raises(ExchangeError, match=expected):
            run_job(spark, str(tmp_path / name), str(tmp_path / f"{name}-out"))
