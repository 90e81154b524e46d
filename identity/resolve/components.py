"""Connected components of eligible links: the bulk path of identity formation.

An identity is a connected component of the graph whose nodes are identifier keys and whose
edges are the eligible links (docs/architecture.md, "Resolution rules", 3). This module takes
links as a stream of key pairs and returns the components, nothing else: limits, splits and
stable ids are applied afterwards, on its output. Output is canonical whatever order the
links arrived in: members sorted, components sorted by their smallest member, each node in
exactly one component (a node without links is a component of one).

Two implementations with the same contract:

- :func:`connected_components`, the bulk path. Keys are interned to dense ``int32`` ids (a
  dict, ids in order of first appearance; 2**31 - 1 keys is far more than one process's dict
  holds) and the two ends of every link are appended to two typed ``array`` buffers, which
  grow with a few percent of slack and are handed to numpy without a copy: about 8 bytes a
  link plus one dict entry a node, and no Python object per link. The ids
  make a sparse adjacency matrix, labelled by ``scipy.sparse.csgraph.connected_components``
  (``directed=False``): an iterative depth-first traversal, with its stack threaded through the
  label array, over the CSR rows of the matrix and of its transpose. Members are then grouped
  and ordered with numpy (argsort on labels) rather than a Python loop per node.
- :class:`UnionFind` and :func:`components_union_find`: disjoint sets in pure Python, with
  union by size and path halving. For small and incremental work (adding a batch of links to
  known components) and as an independent second implementation that the tests cross-check.

Why intern: scipy's graph routines take integer node indices, not strings, and an int32 in an
array costs 4 bytes where a Python tuple of two string references costs ~56 bytes before the
strings themselves; each key is hashed once on the way in, and never compared again until the
final sort.

Complexity, for V nodes and E links: interning is O(V + E) expected (hashing); the CSR
conversion and scipy's labelling are O(V + E); union-find does its E unions in
O(E alpha(V)), alpha the inverse Ackermann function, so near-linear. Both then pay
O(V log V) string comparisons for the canonical order, which dominates on sparse graphs.

Sources: R. E. Tarjan, "Efficiency of a Good But Not Linear Set Union Algorithm", J. ACM 22(2),
1975 (union by size or rank with path compression, the inverse Ackermann bound); R. E. Tarjan
and J. van Leeuwen, "Worst-case Analysis of Set Union Algorithms", J. ACM 31(2), 1984 (path
halving keeps that bound with one pass and no recursion); scipy's csgraph documentation,
https://docs.scipy.org/doc/scipy/reference/generated/scipy.sparse.csgraph.connected_components.html
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components as _label_components


def connected_components(
    edges: Iterable[tuple[str, str]], nodes: Iterable[str] = ()
) -> list[list[str]]:
    """The connected components of ``edges`` (pairs of keys) plus the isolated ``nodes``.

    Every key of ``nodes`` or of an edge is in exactly one component. Each component's members
    are sorted and components are sorted by their smallest member, so the result does not
    depend on the order or the direction of the edges. ``edges`` is read once and may be a
    generator; self-loops and repeated edges are allowed.
    """
    _check_nodes(nodes)
    names, left, right = _intern(edges, nodes)
    if not names:
        return []
    graph = _adjacency(left, right, len(names))
    del left, right  # scipy needs only the CSR copy from here on
    _, labels = _label_components(graph, directed=False)
    return _group(names, np.asarray(labels, dtype=np.int32))


def _intern(
    edges: Iterable[tuple[str, str]], nodes: Iterable[str]
) -> tuple[list[str], npt.NDArray[np.intc], npt.NDArray[np.intc]]:
    """Keys in id order, and the two ends of every edge as ids (views of ``array`` buffers)."""
    index: dict[str, int] = {}
    intern = index.setdefault
    for key in nodes:
        intern(key, len(index))
    left, right = array("i"), array("i")
    push_left, push_right = left.append, right.append
    for a, b in edges:
        push_left(intern(a, len(index)))
        push_right(intern(b, len(index)))
    # A dict keeps insertion order and ids were handed out in that order: position == id.
    return list(index), np.frombuffer(left, dtype=np.intc), np.frombuffer(right, dtype=np.intc)


def _adjacency(left: npt.NDArray[np.intc], right: npt.NDArray[np.intc], n: int) -> Any:
    """The n x n CSR matrix of the edges; float64 data, which csgraph would convert to."""
    ones = np.ones(len(left), dtype=np.float64)
    return coo_array((ones, (left, right)), shape=(n, n)).tocsr()


def _group(names: list[str], labels: npt.NDArray[np.int32]) -> list[list[str]]:
    """Members of each label, in canonical order: sorted, then by smallest member."""
    by_key = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.intp)
    rank_labels = labels[by_key]  # label of the r-th smallest key
    # scipy's labels are dense (0..k-1) and rank_labels visits keys in ascending order, so the
    # first occurrence of a label is its component's smallest member.
    _, first, counts = np.unique(rank_labels, return_index=True, return_counts=True)
    order = np.argsort(first[rank_labels], kind="stable")  # by component, then by key
    flat = list(map(names.__getitem__, by_key[order].tolist()))
    ends = np.cumsum(counts[np.argsort(first)]).tolist()
    return [flat[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


class UnionFind:
    """Disjoint sets of keys: union by size, path halving (Tarjan 1975; Tarjan & van Leeuwen
    1984).

    ``union`` adds unknown keys; ``find`` of a key never added raises ``KeyError``.
    """

    __slots__ = ("_parent", "_size")

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._parent: dict[str, str] = {}
        self._size: dict[str, int] = {}
        for key in keys:
            self.add(key)

    def __len__(self) -> int:
        return len(self._parent)

    def __contains__(self, key: object) -> bool:
        return key in self._parent

    def add(self, key: str) -> None:
        """Add ``key`` as a set of its own, unless it is already known."""
        if key not in self._parent:
            self._parent[key] = key
            self._size[key] = 1

    def find(self, key: str) -> str:
        """The representative of ``key``'s set; halves the path walked on the way."""
        parent = self._parent
        while True:
            up = parent[key]
            if up == key:
                return key
            grand = parent[up]
            parent[key] = grand
            key = grand

    def union(self, a: str, b: str) -> bool:
        """Merge the sets of ``a`` and ``b``; True if they were apart."""
        self.add(a)
        self.add(b)
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return False
        size = self._size
        if size[root_a] < size[root_b]:
            root_a, root_b = root_b, root_a
        self._parent[root_b] = root_a
        size[root_a] += size.pop(root_b)
        return True

    def groups(self) -> list[list[str]]:
        """All sets, in the canonical order of :func:`connected_components`."""
        members: dict[str, list[str]] = {}
        find = self.find
        # Visiting keys in sorted order creates each group at its smallest member and fills
        # it in ascending order, so one sort orders both the members and the groups.
        for key in sorted(self._parent):
            root = find(key)
            group = members.get(root)
            if group is None:
                members[root] = [key]
            else:
                group.append(key)
        return list(members.values())


def components_union_find(
    edges: Iterable[tuple[str, str]], nodes: Iterable[str] = ()
) -> list[list[str]]:
    """Same contract as :func:`connected_components`, computed with :class:`UnionFind`."""
    _check_nodes(nodes)
    sets = UnionFind(nodes)
    union = sets.union
    for a, b in edges:
        union(a, b)
    return sets.groups()


def _check_nodes(nodes: Iterable[str]) -> None:
    # A str is an Iterable[str] to the type checker: "abc" would become nodes "a", "b", "c".
    if isinstance(nodes, str):
        raise TypeError("nodes must be an iterable of keys, not a single str")
