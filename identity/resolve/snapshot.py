"""What a resolve starts from: the link graph (all of it, or the region a change reaches) with
the identities its identifiers belong to now.

The store reads identifiers and links as they are stored (:mod:`identity.store.linkgraph`);
this module decides what they mean for resolution (which identifiers are blocked now, by a
steward or by the policy's block list) and, for an incremental run, how far a change can
reach (:func:`read_region`).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from identity.model import OldIdentity, split_key
from identity.normalize import Normalizer
from identity.policy import Policy
from identity.resolve.engine import direct_shared
from identity.resolve.graph import (
    FORCED,
    MATCHED,
    NOT_SHARED,
    SHARED_KINDS,
    GraphBuilder,
    LinkGraph,
)
from identity.store import linkgraph as store
from identity.store.driver import Graph

_FETCH = 1000


@dataclass
class Snapshot:
    """The graph to resolve and the identities its identifiers belong to now."""

    graph: LinkGraph
    old: dict[str, str] = field(default_factory=dict)  # identifier key -> identity id
    identities: dict[str, OldIdentity] = field(default_factory=dict)
    shared: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (kind, reason)
    quarantined: set[str] = field(default_factory=set)  # region keys in a quarantine
    # first and last seen (epoch ms, -1 unknown) of each node: what profiles summarize (read
    # by full reads only)
    seen: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 2), np.int64))


def shared_code(kind: str | None) -> int:
    return SHARED_KINDS.index(kind) if kind in SHARED_KINDS else NOT_SHARED


_SHA256 = re.compile(r"[0-9a-f]{64}")


def blocker(normalizer: Normalizer) -> Callable[[str, str, bool | None], bool]:
    """Whether an identifier is blocked now: by a steward (``stored``, the node's ``blocked``
    flag) or by the policy. A stored email or phone that is 64 hex digits is a hash
    (IDGRAPH_HASH_PII): a clear one holds an @ or starts with +."""
    checked = normalizer.blocked_types

    def blocked(type_: str, value: str, stored: bool | None) -> bool:
        if stored:
            return True
        if type_ not in checked:
            return False
        hashed = _SHA256.fullmatch(value) is not None
        return normalizer.blocked_reason(type_, value, hashed=hashed) is not None

    return blocked


def read_full(
    graph: Graph,
    policy: Policy,
    normalizer: Normalizer,
    progress: Callable[[str, int], None] | None = None,
    first_seen: bool = False,
) -> Snapshot:
    """Every identifier and link, with the current memberships; ``first_seen``: read every
    link's first_seen now (an engine that cannot ask for it later needs it)."""
    blocked = blocker(normalizer)
    snapshot_old: dict[str, str] = {}
    shared: dict[str, tuple[str, str]] = {}
    quarantined: set[str] = set()
    keys: list[str] = []
    type_index: dict[str, int] = {}
    types, blocked_col, stored, node_ids = array("h"), array("b"), array("b"), array("q")
    seen = array("q")
    top = store.highest_identifier_id(graph)
    position = np.full((top or 0) + 1, -1, dtype=np.int64)  # internal id -> index
    rows = store.identifier_rows(graph, top)
    for n, (node_id, key, kind, identity, quarantine, reason, held, first, last) in enumerate(
        rows, 1
    ):
        position[node_id] = len(keys)
        keys.append(key)
        node_ids.append(node_id)
        seen.append(-1 if first is None else first)
        seen.append(-1 if last is None else last)
        type_, value = split_key(key)
        types.append(type_index.setdefault(type_, len(type_index)))
        blocked_col.append(blocked(type_, value, held))
        stored.append(shared_code(kind))
        if kind:
            shared[key] = (kind, reason or "")
        if identity is not None:
            snapshot_old[key] = identity
        if quarantine is not None:
            quarantined.add(key)
        if progress and n % 100_000 == 0:
            progress("identifiers", n)
    blocks: list[npt.NDArray[np.int64]] = []
    read = 0
    width = 8 if first_seen else 7
    for block in store.link_blocks(graph, policy, top, first_seen):
        # [x id, y id, count, last_seen, mergeable, cut, flags(, first_seen)] per link
        blocks.append(np.array(block, dtype=np.int64).reshape(-1, width))
        read += len(block)
        if progress:
            progress("links", read)
    links = np.concatenate(blocks) if blocks else np.zeros((0, width), dtype=np.int64)
    del blocks
    type_names = [""] * len(type_index)
    for name, i in type_index.items():
        type_names[i] = name
    link_graph = LinkGraph(
        keys=keys,
        type_names=type_names,
        types=np.frombuffer(types, dtype=np.int16).copy(),
        blocked=np.frombuffer(blocked_col, dtype=np.int8).astype(np.bool_),
        region=np.ones(len(keys), dtype=np.bool_),
        stored_shared=np.frombuffer(stored, dtype=np.int8).copy(),
        a=position[links[:, 0]].astype(np.int32),
        b=position[links[:, 1]].astype(np.int32),
        count=links[:, 2].copy(),
        first_seen=links[:, 7].copy() if first_seen else np.full(len(links), -1, np.int64),
        last_seen=links[:, 3].copy(),
        mergeable=links[:, 4].astype(np.bool_),
        cut=links[:, 5].astype(np.bool_),
        forced=(links[:, 6] & FORCED).astype(np.bool_),
        matched=(links[:, 6] & MATCHED).astype(np.bool_),
        first_seen_loader=lambda pairs: store.read_first_seen(graph, pairs),
        node_ids=np.frombuffer(node_ids, dtype=np.int64).copy(),
    )
    return Snapshot(
        seen=np.frombuffer(seen, dtype=np.int64).reshape(-1, 2).copy(),
        graph=link_graph,
        old=snapshot_old,
        identities=store.read_identities(graph, set(snapshot_old.values())),
        shared=shared,
        quarantined=quarantined,
    )


@dataclass(slots=True)
class _Node:
    key: str
    shared: str | None
    reason: str | None
    identity: str | None
    quarantine: str | None
    # [other key, other's shared verdict, count, last_seen, merge, cut, flags, other blocked]
    links: list[list[Any]]
    blocked: bool | None  # by a steward
    node_id: int  # the database's internal id


class _RegionReader:
    def __init__(self, graph: Graph, policy: Policy, normalizer: Normalizer) -> None:
        self.graph = graph
        self.policy = policy
        self.blocked = blocker(normalizer)
        self.rows: dict[str, _Node] = {}
        self.identities: dict[str, OldIdentity] = {}
        self.members: dict[str, list[str]] = {}

    def fetch(self, keys: Iterable[str]) -> None:
        """Read the identifiers not read yet, with their links, and their identities.

        Blocks of keys are read on two sessions at once: the server then uses both cores.
        """
        wanted = sorted(set(keys) - set(self.rows))
        blocks = [wanted[i : i + _FETCH] for i in range(0, len(wanted), _FETCH)]
        for rows in self._map(
            lambda block: store.region_rows(self.graph, self.policy, block), blocks
        ):
            for row in rows:
                self.rows[row[0]] = _Node(*row)
        ids = sorted({n.identity for n in self.rows.values() if n.identity} - set(self.members))
        blocks = [ids[i : i + _FETCH] for i in range(0, len(ids), _FETCH)]
        for rows in self._map(lambda block: store.identity_members(self.graph, block), blocks):
            for identity, created, members in rows:
                self.identities[identity] = OldIdentity(identity, int(created))
                self.members[identity] = members

    @staticmethod
    def _map(
        read: Callable[[list[str]], list[list[Any]]], blocks: list[list[str]]
    ) -> Iterable[list[list[Any]]]:
        if len(blocks) <= 1:
            return map(read, blocks)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="region-reader") as pool:
            return list(pool.map(read, blocks))

    def comembers(self, key: str) -> list[str]:
        identity = self.rows[key].identity
        return self.members.get(identity, []) if identity else []

    def builder(self, region: set[str], halo_links: dict[str, list[list[Any]]]) -> GraphBuilder:
        build = GraphBuilder()
        blocked = self.blocked
        for key in sorted(region):
            type_, value = split_key(key)
            build.node(
                key,
                type_,
                blocked=blocked(type_, value, self.rows[key].blocked),
                stored_shared=shared_code(self.rows[key].shared),
                node_id=self.rows[key].node_id,
            )
        links_of = [(key, self.rows[key].links) for key in sorted(region)]
        for key, links in [*links_of, *halo_links.items()]:
            i = build.index[key]
            for other, shared, count, last, merge, cut, flags, held in links:
                j = build.index.get(other)
                if j is None:
                    type_, value = split_key(other)
                    j = build.node(
                        other,
                        type_,
                        blocked=blocked(type_, value, held),
                        region=False,
                        stored_shared=shared_code(shared),
                    )
                build.link(
                    i, j, count, -1, last, merge, cut, bool(flags & FORCED), bool(flags & MATCHED)
                )
        return build


def read_region(
    graph: Graph, policy: Policy, normalizer: Normalizer, seeds: set[str], as_of_ms: int
) -> Snapshot:
    """The identifiers whose identity a change at ``seeds`` can reach, and their halo.

    A change at the seeds (new identifiers or links, a cut, an expiry) can change the shared
    verdict of the seeds and of their neighbours, and the components of everything joined to
    those by a link that may merge, before or after the change. So the region is the seeds,
    their neighbours, and all that links reach from there, closed under old identities. The
    walk does not go through identifiers that were and still are shared by the direct rule
    (a kiosk, a family tablet): no link of theirs merges before or after, so nothing beyond
    them can change. Those stay in the *halo*, with their stored verdict. Links forced by a
    steward are the exception: they merge whatever the shared verdict of their ends, so the
    walk always follows them, and no forced link joins the region to its halo.
    """
    reader = _RegionReader(graph, policy, normalizer)
    seeds = set(seeds)
    reader.fetch(seeds)
    seeds &= set(reader.rows)  # identifiers deleted since they were touched
    if not seeds:
        return Snapshot(graph=GraphBuilder().build())
    probe = reader.builder(seeds, {}).build()
    now_direct = direct_shared(probe, policy, as_of_ms)
    # the probe holds the seeds' own links only: with matched links, a cluster of duplicates
    # among a seed's neighbours (which its shared count takes as one) is not in it, so the walk
    # goes through every seed (the neighbours of a new matched link are seeds: see matching)
    still_direct = (
        set()
        if store.has_matched_links(graph)
        else {k for k in seeds if reader.rows[k].shared == "direct" and now_direct[probe.index[k]]}
    )
    near = set(seeds)
    for key in seeds - still_direct:
        near.update(link[0] for link in reader.rows[key].links if _may_merge(link))
    region: set[str] = set()
    frontier = set(near)
    while frontier:
        reader.fetch(frontier)
        reached: set[str] = set()
        for key in sorted(frontier):
            row = reader.rows.get(key)
            if row is None or key in region:
                continue
            region.add(key)
            reached.update(reader.comembers(key))
            # shared by the direct rule before and after: none of its links merges but forced ones
            direct = key in still_direct or (key not in seeds and row.shared == "direct")
            for link in row.links:
                other, forced = link[0], link[6] & FORCED
                if other in region or not _may_merge(link) or (direct and not forced):
                    continue
                if not forced and other not in near and link[1] in ("direct", "two_hop"):
                    continue  # unchanged and shared: it stays in the halo
                reached.add(other)
        frontier = reached - region
    # two-hop shared identifiers of the halo count as a step on the way to anchors
    halo_two_hop = {
        link[0]
        for key in region
        for link in reader.rows[key].links
        if link[0] not in region
        and link[1] == "two_hop"
        and split_key(link[0])[0] not in policy.anchor_types
    }
    halo_links: dict[str, list[list[Any]]] = {}
    if halo_two_hop:
        reader.fetch(halo_two_hop)
        for key in halo_two_hop:
            halo_links[key] = [
                link
                for link in reader.rows[key].links
                # the links the shared rules count: as observed, forced or not
                if split_key(link[0])[0] in policy.anchor_types
                and link[4]
                and not link[5]
                and not _only_matched(link)
            ]
    link_graph = reader.builder(region, halo_links).build()
    link_graph.first_seen_loader = lambda pairs: store.read_first_seen(graph, pairs)
    rows = reader.rows
    old = {key: identity for key in region if (identity := rows[key].identity) is not None}
    return Snapshot(
        graph=link_graph,
        old=old,
        identities={i: reader.identities[i] for i in set(old.values()) if i in reader.identities},
        shared={k: (kind, rows[k].reason or "") for k in region if (kind := rows[k].shared)},
        quarantined={k for k in region if rows[k].quarantine is not None},
    )


def _may_merge(link: list[Any]) -> bool:
    """Mergeable by party and sources, or forced, and not cut. TTL and blocked ends are left
    to the engine: walking a few links too many costs time, never correctness."""
    return bool(link[4] or link[6] & FORCED) and not link[5]


def _only_matched(link: list[Any]) -> bool:
    """Written by record matching and never observed: the shared rules do not count it."""
    return bool(link[6] & MATCHED) and link[2] == 0
