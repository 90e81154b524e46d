"""The rules that look at one component at a time: bridge anchors and the limit split.

Both take a :class:`~identity.resolve.graph.LinkGraph` and the links of one component (link
indices), and return what they found without touching anything else, so that an engine can
run them per component wherever the component is (in memory here, per group with
``applyInPandas`` on Spark). :mod:`identity.resolve.engine` decides which components need
them and applies the results.

- :func:`bridge_anchors`: an anchor whose removal leaves two or more parts that each hold
  another identifier of its own type is the only tie between people who each have their own
  (an email shared by two customers with their own emails). networkx's articulation points
  (Hopcroft and Tarjan, "Efficient algorithms for graph manipulation", CACM 16(6), 1973),
  O(V + E) per component.
- :func:`split_under_limits`: Kruskal's greedy union (J. B. Kruskal, "On the shortest
  spanning subtree of a graph", Proc. AMS 7, 1956) with union-find, strongest link first
  (forced, then weight = the lower priority of the two ends, then count, then earliest
  first_seen, then keys: a total order, so the split is deterministic), refusing a union that
  would hold more identifiers of a type than its limit. O(E log E) per component.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from identity.resolve.components import UnionFind
from identity.resolve.graph import LinkGraph

EXAMPLES = 5  # identifiers named in a note
NO_LIMIT = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SharedNote:
    """Why an identifier was found shared: the rule, the type over its limit, examples."""

    kind: str  # direct | two_hop | bridge
    type: str
    count: int
    limit: int | None
    examples: tuple[str, ...]

    @property
    def reason(self) -> str:
        shown = ", ".join(self.examples)
        if self.kind == "direct":
            return f"linked to {self.count} {self.type} identifiers (limit {self.limit}): {shown}"
        if self.kind == "two_hop":
            return (
                f"reaches {self.count} {self.type} identifiers within two links "
                f"(limit {self.limit}): {shown}"
            )
        return (
            f"the only tie between {self.count} groups that each hold their own {self.type}: "
            f"{shown}"
        )


@dataclass(frozen=True)
class LimitConflict:
    """A link refused because the union would hold too many identifiers of ``type``."""

    type: str
    limit: int
    identifiers: tuple[str, ...]


def bridge_anchors(
    graph: LinkGraph, links: list[int], anchor_type: npt.NDArray[np.bool_]
) -> list[tuple[int, SharedNote]]:
    """The bridge anchors of the component made of ``links``, each with its note; all judged
    on the component as it is (none removed before the others are judged)."""
    g = graph
    component = nx.Graph()
    component.add_edges_from(zip(g.a[links].tolist(), g.b[links].tolist(), strict=True))
    anchor_points = [x for x in nx.articulation_points(component) if anchor_type[g.types[x]]]
    found: list[tuple[int, SharedNote]] = []
    for x in anchor_points:
        type_ = g.types[x]
        rest = component.subgraph(n for n in component if n != x)
        holders = []
        for part in nx.connected_components(rest):
            own = sorted(g.keys[n] for n in part if g.types[n] == type_)
            if own:
                holders.append(own[0])
        if len(holders) >= 2:
            note = SharedNote(
                kind="bridge",
                type=g.type_names[type_],
                count=len(holders),
                limit=None,
                examples=tuple(sorted(holders)[:EXAMPLES]),
            )
            found.append((x, note))
    return found


def split_under_limits(
    graph: LinkGraph,
    links: list[int],
    priority: npt.NDArray[np.int64],
    limits: npt.NDArray[np.int64],
    duplicates: npt.NDArray[np.int32] | None = None,
) -> tuple[list[list[int]], dict[int, LimitConflict]]:
    """The parts of the component made of ``links`` under the per-type ``limits`` (indexed by
    type, :data:`NO_LIMIT` for none), and the links refused with their conflicts.

    ``duplicates`` (per identifier) numbers clusters of one customer's records joined by record
    matching: a limit counts clusters, so a part may hold a crm id and its matched duplicate."""
    g = graph
    keys = g.keys
    g.load_first_seen(links)
    weight = np.minimum(priority[g.types[g.a[links]]], priority[g.types[g.b[links]]])
    order = sorted(
        range(len(links)),
        key=lambda k: (
            not g.forced[links[k]],
            -int(weight[k]),
            -int(g.count[links[k]]),
            int(g.first_seen[links[k]]),
            min(keys[g.a[links[k]]], keys[g.b[links[k]]]),
            max(keys[g.a[links[k]]], keys[g.b[links[k]]]),
        ),
    )
    limited = {t for t in range(len(g.type_names)) if limits[t] != NO_LIMIT}
    sets = UnionFind()
    held: dict[str, dict[int, list[str]]] = {}
    conflicts: dict[int, LimitConflict] = {}

    def holdings(node: int) -> dict[int, list[str]]:
        key = keys[node]
        if key not in sets:
            sets.add(key)
            type_ = int(g.types[node])
            held[key] = {type_: [key]} if type_ in limited else {}
        return held[sets.find(key)]

    for k in order:
        j = links[k]
        a, b = int(g.a[j]), int(g.b[j])
        left, right = holdings(a), holdings(b)
        root_a, root_b = sets.find(keys[a]), sets.find(keys[b])
        if root_a == root_b:
            continue
        conflict = next(
            (
                t
                for t in sorted(set(left) & set(right))
                if _held(left[t] + right[t], duplicates, g.index) > limits[t]
            ),
            None,
        )
        if conflict is not None:
            conflicts[j] = LimitConflict(
                type=g.type_names[conflict],
                limit=int(limits[conflict]),
                identifiers=tuple(sorted(left[conflict] + right[conflict])[:EXAMPLES]),
            )
            continue
        sets.union(keys[a], keys[b])
        merged = {t: left.get(t, []) + right.get(t, []) for t in set(left) | set(right)}
        held[sets.find(keys[a])] = merged
    parts: dict[str, list[int]] = defaultdict(list)
    for key in held:
        parts[sets.find(key)].append(g.index[key])
    return list(parts.values()), conflicts


def _held(keys: list[str], duplicates: npt.NDArray[np.int32] | None, index: dict[str, int]) -> int:
    """How many identifiers ``keys`` count as under a limit: clusters of duplicates count once."""
    if duplicates is None:
        return len(keys)
    return len({int(duplicates[index[key]]) for key in keys})


def duplicates(g: LinkGraph, eligible: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32] | None:
    """Each identifier's cluster of duplicates: identifiers of one type joined by ``eligible``
    matched links (one customer's records); None when there is none. A limit counts clusters,
    not identifiers: a customer entered twice in the CRM has one crm id."""
    joins = eligible & g.matched & (g.types[g.a] == g.types[g.b])
    if not joins.any():
        return None
    return component_labels(g.n, g.a[joins], g.b[joins])


def component_labels(
    n: int, a: npt.NDArray[np.int32], b: npt.NDArray[np.int32]
) -> npt.NDArray[np.int32]:
    """Connected-component label of each of ``n`` nodes over the edges ``a``-``b``."""
    if n == 0:
        return np.zeros(0, dtype=np.int32)
    matrix = coo_array((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(matrix, directed=False)
    return np.asarray(labels, dtype=np.int32)
