"""Unit tests of identity.resolve.components: hand-made graphs, then networkx as the oracle."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity.resolve.components import (
    UnionFind,
    components_union_find,
    connected_components,
)

Components = list[list[str]]
Method = Callable[[Iterable[tuple[str, str]], Iterable[str]], Components]

METHODS = pytest.mark.parametrize(
    "components", [connected_components, components_union_find], ids=["scipy", "union_find"]
)

# A small alphabet, so that random edges share keys and form non-trivial components; "" and a
# non-ASCII letter are keys too.
KEYS = st.text(alphabet="ab:é", max_size=3)
EDGES = st.lists(st.tuples(KEYS, KEYS), max_size=40)
NODES = st.lists(KEYS, max_size=10)


def oracle(edges: Iterable[tuple[str, str]], nodes: Iterable[str] = ()) -> Components:
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return sorted(sorted(c) for c in nx.connected_components(graph))


@METHODS
def test_empty_input(components: Method) -> None:
    assert components([], []) == []
    assert components(iter([]), iter([])) == []


@METHODS
def test_isolated_nodes_are_singletons(components: Method) -> None:
    assert components([], ["b", "a", "b"]) == [["a"], ["b"]]


@METHODS
def test_chain(components: Method) -> None:
    edges = [("c", "d"), ("b", "a"), ("c", "b")]
    assert components(edges, []) == [["a", "b", "c", "d"]]


@METHODS
def test_two_triangles_ordered_by_smallest_member(components: Method) -> None:
    edges = [("z", "x"), ("y", "z"), ("x", "y"), ("m", "b"), ("b", "c"), ("c", "m")]
    assert components(edges, ["a"]) == [["a"], ["b", "c", "m"], ["x", "y", "z"]]


@METHODS
def test_components_ordered_by_smallest_member_not_size(components: Method) -> None:
    edges = [("email:z", "phone:1"), ("cookie:9", "email:a"), ("email:a", "phone:2")]
    found = components(edges, ["crm_id:7"])
    assert found == [
        ["cookie:9", "email:a", "phone:2"],
        ["crm_id:7"],
        ["email:z", "phone:1"],
    ]
    assert all(type(key) is str for component in found for key in component)


@METHODS
def test_self_loops(components: Method) -> None:
    assert components([("a", "a")], []) == [["a"]]
    assert components([("a", "a"), ("b", "b"), ("a", "b")], []) == [["a", "b"]]


@METHODS
def test_duplicate_edges_and_nodes(components: Method) -> None:
    edges = [("a", "b"), ("a", "b"), ("b", "a"), ("c", "d")] * 3
    assert components(edges, ["a", "d", "e", "e"]) == [["a", "b"], ["c", "d"], ["e"]]


@METHODS
def test_edges_are_read_once(components: Method) -> None:
    def stream() -> Iterator[tuple[str, str]]:
        yield from [("a", "b"), ("c", "b"), ("d", "e")]

    assert components(stream(), (key for key in ["f"])) == [["a", "b", "c"], ["d", "e"], ["f"]]


@METHODS
def test_a_single_str_is_not_a_list_of_nodes(components: Method) -> None:
    with pytest.raises(TypeError, match="not a single str"):
        components([], "abc")


def test_identity_like_graph_matches_networkx() -> None:
    rng = random.Random(11)
    keys = [f"{rng.choice(['email', 'phone', 'cookie'])}:{i:05d}" for i in range(5_000)]
    edges = [(rng.choice(keys), rng.choice(keys)) for _ in range(3_000)]
    expected = oracle(edges, keys)
    assert 1_000 < len(expected) < 5_000  # some merged, some isolated
    assert connected_components(edges, keys) == expected
    assert components_union_find(edges, keys) == expected


def test_union_find_operations() -> None:
    sets = UnionFind(["a"])
    sets.add("a")
    assert len(sets) == 1 and "a" in sets and "b" not in sets
    assert sets.union("a", "b") is True
    assert sets.union("b", "a") is False
    assert sets.union("c", "d") is True
    assert sets.find("a") == sets.find("b") != sets.find("c")
    assert sets.union("d", "b") is True
    assert len({sets.find(key) for key in "abcd"}) == 1
    sets.add("e")
    assert sets.groups() == [["a", "b", "c", "d"], ["e"]]
    with pytest.raises(KeyError):
        sets.find("unknown")


def test_union_find_long_chain() -> None:
    sets = UnionFind()
    keys = [f"k{i:06d}" for i in range(50_000)]
    for a, b in itertools.pairwise(reversed(keys)):
        assert sets.union(a, b)
    assert sets.groups() == [keys]


@settings(max_examples=300, deadline=None)
@given(edges=EDGES, nodes=NODES)
def test_both_match_networkx(edges: list[tuple[str, str]], nodes: list[str]) -> None:
    expected = oracle(edges, nodes)
    assert connected_components(edges, nodes) == expected
    assert components_union_find(edges, nodes) == expected


@settings(max_examples=200, deadline=None)
@given(edges=EDGES, nodes=NODES, data=st.data())
def test_independent_of_edge_order_and_direction(
    edges: list[tuple[str, str]], nodes: list[str], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(edges), label="shuffled")
    swaps = data.draw(st.lists(st.booleans(), min_size=len(edges), max_size=len(edges)))
    flipped = [(b, a) if swap else (a, b) for (a, b), swap in zip(shuffled, swaps, strict=True)]
    nodes_shuffled = data.draw(st.permutations(nodes), label="nodes")
    for components in (connected_components, components_union_find):
        assert components(flipped, nodes_shuffled) == components(edges, nodes)
