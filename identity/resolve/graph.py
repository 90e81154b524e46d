"""What identity formation reads: identifiers and their links, as numpy columns.

The store fills a :class:`LinkGraph` from Neo4j (the whole graph, or one region with its halo);
tests and the explain path build small ones with :meth:`LinkGraph.from_rows`. Columns rather
than objects, so that a million identifiers and two million links cost tens of megabytes and
every rule of :mod:`identity.resolve.engine` is a vectorized pass.

A *region* graph holds the identifiers to resolve (``region`` true) plus their *halo*: the
shared identifiers next to them, which are not resolved again but whose stored verdict
(``stored_shared``) and, for two-hop ones, links to anchors are needed to judge the region.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# stored_shared codes, as written on identifiers (``i.shared``)
NOT_SHARED, DIRECT, TWO_HOP, BRIDGE = 0, 1, 2, 3
SHARED_KINDS = ("", "direct", "two_hop", "bridge")

DAY_MS = 86_400_000

# A link's flags as the store reads them (one integer column): forced by a steward, written by
# record matching (identity.matching: a scored link between two customer records' ids)
FORCED, MATCHED = 1, 2


@dataclass(frozen=True)
class NodeRow:
    key: str
    type: str
    blocked: bool = False
    region: bool = True
    stored_shared: int = NOT_SHARED


@dataclass(frozen=True)
class LinkRow:
    a: str
    b: str
    count: int = 1
    first_seen: int = 0  # epoch milliseconds
    last_seen: int = 0
    mergeable: bool = True  # party and sources allow merging
    cut: bool = False  # cut by a steward
    forced: bool = False  # forced by a steward: may merge whatever its party, age or ends
    matched: bool = False  # written by record matching (both ends one customer's records)


@dataclass
class LinkGraph:
    """Identifiers (index = position in ``keys``) and links between them (``a``, ``b``)."""

    keys: list[str]
    type_names: list[str]
    types: npt.NDArray[np.int16]
    blocked: npt.NDArray[np.bool_]
    region: npt.NDArray[np.bool_]
    stored_shared: npt.NDArray[np.int8]
    a: npt.NDArray[np.int32]
    b: npt.NDArray[np.int32]
    count: npt.NDArray[np.int64]
    first_seen: npt.NDArray[np.int64]
    last_seen: npt.NDArray[np.int64]
    mergeable: npt.NDArray[np.bool_]
    cut: npt.NDArray[np.bool_]
    forced: npt.NDArray[np.bool_]
    index: dict[str, int] = field(default_factory=dict)
    # written by record matching: its ends are records of one customer (duplicates); a link
    # only matched (count 0: never observed) takes no part in judging what is shared
    matched: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, np.bool_))
    # the database's internal id of each node (-1: unknown), so that writes find them by id
    node_ids: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # Reads skip first_seen (it costs as much as the rest of a link): it is -1 until the
    # limit split asks for the links it sorts, through this loader (pairs of keys -> millis).
    first_seen_loader: Callable[[list[tuple[str, str]]], list[int]] | None = None

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {key: i for i, key in enumerate(self.keys)}
        if len(self.node_ids) != len(self.keys):
            self.node_ids = np.full(len(self.keys), -1, dtype=np.int64)
        if len(self.matched) != len(self.a):
            self.matched = np.zeros(len(self.a), dtype=np.bool_)

    @property
    def n(self) -> int:
        return len(self.keys)

    def type_of(self, node: int) -> str:
        return self.type_names[int(self.types[node])]

    def load_first_seen(self, links: Sequence[int]) -> None:
        """Fill in first_seen for ``links`` where the read left it unknown (-1)."""
        missing = [j for j in links if self.first_seen[j] < 0]
        if not missing or self.first_seen_loader is None:
            return
        pairs = [(self.keys[int(self.a[j])], self.keys[int(self.b[j])]) for j in missing]
        self.first_seen[missing] = self.first_seen_loader(pairs)

    @classmethod
    def from_rows(cls, nodes: Iterable[NodeRow], links: Iterable[LinkRow]) -> LinkGraph:
        """A graph from row objects; link ends must be among ``nodes``."""
        node_list = list(nodes)
        keys = [n.key for n in node_list]
        index = {key: i for i, key in enumerate(keys)}
        if len(index) != len(keys):
            raise ValueError("duplicate identifier keys")
        type_names = sorted({n.type for n in node_list})
        type_index = {t: i for i, t in enumerate(type_names)}
        link_list = list(links)
        return cls(
            keys=keys,
            type_names=type_names,
            types=np.array([type_index[n.type] for n in node_list], dtype=np.int16),
            blocked=np.array([n.blocked for n in node_list], dtype=np.bool_),
            region=np.array([n.region for n in node_list], dtype=np.bool_),
            stored_shared=np.array([n.stored_shared for n in node_list], dtype=np.int8),
            a=np.array([index[r.a] for r in link_list], dtype=np.int32),
            b=np.array([index[r.b] for r in link_list], dtype=np.int32),
            count=np.array([r.count for r in link_list], dtype=np.int64),
            first_seen=np.array([r.first_seen for r in link_list], dtype=np.int64),
            last_seen=np.array([r.last_seen for r in link_list], dtype=np.int64),
            mergeable=np.array([r.mergeable for r in link_list], dtype=np.bool_),
            cut=np.array([r.cut for r in link_list], dtype=np.bool_),
            forced=np.array([r.forced for r in link_list], dtype=np.bool_),
            index=index,
            matched=np.array([r.matched for r in link_list], dtype=np.bool_),
        )


class GraphBuilder:
    """Accumulates nodes and links column by column (the store's bulk reader uses it)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.index: dict[str, int] = {}
        self.type_index: dict[str, int] = {}
        self._types: list[int] = []
        self._blocked: list[bool] = []
        self._region: list[bool] = []
        self._stored: list[int] = []
        self._node_ids: list[int] = []
        # (a, b, count, first, last, mergeable, cut, forced, matched)
        self._links: list[Sequence[int]] = []
        self._seen_links: set[tuple[int, int]] = set()

    def node(
        self,
        key: str,
        type_: str,
        *,
        blocked: bool = False,
        region: bool = True,
        stored_shared: int = NOT_SHARED,
        node_id: int = -1,
    ) -> int:
        """Add a node (or update the region flag of a known one); return its index."""
        i = self.index.get(key)
        if i is not None:
            if region and not self._region[i]:
                self._region[i] = True
            if node_id >= 0:
                self._node_ids[i] = node_id
            return i
        i = self.index[key] = len(self.keys)
        self.keys.append(key)
        self._types.append(self.type_index.setdefault(type_, len(self.type_index)))
        self._blocked.append(blocked)
        self._region.append(region)
        self._stored.append(stored_shared)
        self._node_ids.append(node_id)
        return i

    def link(
        self,
        a: int,
        b: int,
        count: int,
        first_seen: int,
        last_seen: int,
        mergeable: bool,
        cut: bool,
        forced: bool,
        matched: bool = False,
    ) -> None:
        """Add a link once (a region reader meets each link from both of its ends)."""
        pair = (a, b) if a < b else (b, a)
        if pair in self._seen_links:
            return
        self._seen_links.add(pair)
        self._links.append((a, b, count, first_seen, last_seen, mergeable, cut, forced, matched))

    def build(self) -> LinkGraph:
        columns = np.array(self._links, dtype=np.int64).reshape(-1, 9)
        type_names = [""] * len(self.type_index)
        for name, i in self.type_index.items():
            type_names[i] = name
        return LinkGraph(
            keys=self.keys,
            type_names=type_names,
            types=np.array(self._types, dtype=np.int16),
            blocked=np.array(self._blocked, dtype=np.bool_),
            region=np.array(self._region, dtype=np.bool_),
            stored_shared=np.array(self._stored, dtype=np.int8),
            a=columns[:, 0].astype(np.int32),
            b=columns[:, 1].astype(np.int32),
            count=columns[:, 2].copy(),
            first_seen=columns[:, 3].copy(),
            last_seen=columns[:, 4].copy(),
            mergeable=columns[:, 5].astype(np.bool_),
            cut=columns[:, 6].astype(np.bool_),
            forced=columns[:, 7].astype(np.bool_),
            index=self.index,
            matched=columns[:, 8].astype(np.bool_),
            node_ids=np.array(self._node_ids, dtype=np.int64),
        )
