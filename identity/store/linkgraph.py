"""Reading the link graph for resolution: the whole graph, or one region and its halo.

The full read streams identifiers and links into numpy columns (internal node ids, no key
strings per link). The region read starts from the identifiers touched since the last run and
walks outwards, one query per step, only as far as a change can reach (see
:func:`read_region`); it meets each link from both ends and keeps it once.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, LiteralString

import numpy as np
from neo4j.exceptions import DriverError, Neo4jError

from identity.normalize import Normalizer
from identity.policy import Policy
from identity.resolve.engine import direct_shared
from identity.resolve.graph import NOT_SHARED, SHARED_KINDS, GraphBuilder, LinkGraph
from identity.resolve.lineage import OldIdentity
from identity.store.driver import Graph, translate_error

_MERGEABLE = (
    "(any(s IN r.sources WHERE s IN $allow) "
    "OR (r.party IN $parties AND any(s IN r.sources WHERE NOT s IN $deny)))"
)
_FETCH = 2000


@dataclass
class Snapshot:
    """The graph to resolve and the identities its identifiers belong to now."""

    graph: LinkGraph
    old: dict[str, str] = field(default_factory=dict)  # identifier key -> identity id
    identities: dict[str, OldIdentity] = field(default_factory=dict)
    shared: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (kind, reason)
    quarantined: set[str] = field(default_factory=set)  # region keys in a quarantine


def merge_parameters(policy: Policy) -> dict[str, Any]:
    return {
        "allow": sorted(s for s, ok in policy.source_merge.items() if ok),
        "deny": sorted(s for s, ok in policy.source_merge.items() if not ok),
        "parties": sorted(p for p, ok in policy.party_merge.items() if ok),
    }


def _shared_code(kind: str | None) -> int:
    return SHARED_KINDS.index(kind) if kind in SHARED_KINDS else NOT_SHARED


def _blocker(normalizer: Normalizer) -> Callable[[str, str, bool], bool]:
    checked = normalizer.blocked_types

    def blocked(type_: str, value: str, hashed: bool) -> bool:
        if type_ not in checked:
            return False
        return normalizer.blocked_reason(type_, value, hashed=hashed) is not None

    return blocked


def read_full(
    graph: Graph,
    policy: Policy,
    normalizer: Normalizer,
    progress: Callable[[str, int], None] | None = None,
) -> Snapshot:
    """Every identifier and link, with the current memberships."""
    blocked = _blocker(normalizer)
    snapshot_old: dict[str, str] = {}
    shared: dict[str, tuple[str, str]] = {}
    quarantined: set[str] = set()
    keys: list[str] = []
    type_index: dict[str, int] = {}
    types, blocked_col, stored = array("h"), array("b"), array("b")
    node_index: dict[int, int] = {}
    top = graph.read(
        "read the highest identifier id", "MATCH (i:Identifier) RETURN max(id(i)) AS top"
    )[0]["top"]
    for n, row in enumerate(_chunked(graph, "read identifiers", _NODES_CHUNK, top, {}), 1):
        key = row[1]
        node_index[row[0]] = len(keys)
        keys.append(key)
        types.append(type_index.setdefault(row[2], len(type_index)))
        blocked_col.append(blocked(row[2], row[3], row[4]))
        stored.append(_shared_code(row[5]))
        if row[5]:
            shared[key] = (row[5], row[8] or "")
        if row[6] is not None:
            snapshot_old[key] = row[6]
        if row[7] is not None:
            quarantined.add(key)
        if progress and n % 100_000 == 0:
            progress("identifiers", n)
    a, b, count, first, last = array("i"), array("i"), array("q"), array("q"), array("q")
    mergeable, cut = array("b"), array("b")
    params = merge_parameters(policy)
    for n, row in enumerate(_chunked(graph, "read links", _LINKS_CHUNK, top, params), 1):
        a.append(node_index[row[0]])
        b.append(node_index[row[1]])
        count.append(row[2])
        first.append(row[3])
        last.append(row[4])
        mergeable.append(row[5])
        cut.append(row[6])
        if progress and n % 100_000 == 0:
            progress("links", n)
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
        a=np.frombuffer(a, dtype=np.int32).copy(),
        b=np.frombuffer(b, dtype=np.int32).copy(),
        count=np.frombuffer(count, dtype=np.int64).copy(),
        first_seen=np.frombuffer(first, dtype=np.int64).copy(),
        last_seen=np.frombuffer(last, dtype=np.int64).copy(),
        mergeable=np.frombuffer(mergeable, dtype=np.int8).astype(np.bool_),
        cut=np.frombuffer(cut, dtype=np.int8).astype(np.bool_),
    )
    return Snapshot(
        graph=link_graph,
        old=snapshot_old,
        identities=read_identities(graph, set(snapshot_old.values())),
        shared=shared,
        quarantined=quarantined,
    )


def read_identities(graph: Graph, ids: Iterable[str]) -> dict[str, OldIdentity]:
    """Creation times of the given identities."""
    wanted = sorted(set(ids))
    found: dict[str, OldIdentity] = {}
    for start in range(0, len(wanted), 50_000):
        rows = graph.read(
            "read identities",
            "UNWIND $ids AS id MATCH (p:Identity {id: id}) "
            "RETURN p.id AS id, p.created_at.epochMillis AS created",
            {"ids": wanted[start : start + 50_000]},
        )
        for row in rows:
            found[row["id"]] = OldIdentity(row["id"], int(row["created"]))
    return found


_NODE_QUERY: LiteralString = (
    """
    UNWIND $keys AS k
    MATCH (i:Identifier {key: k})
    OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
    RETURN i.key AS key, i.type AS type, i.value AS value, coalesce(i.hashed, false) AS hashed,
           i.shared AS shared, i.shared_reason AS reason, p.id AS identity,
           i.quarantine AS quarantine,
           COLLECT {
             MATCH (i)-[r:LINKED]-(o:Identifier)
             RETURN [o.key, o.type, o.value, coalesce(o.hashed, false), o.shared, r.count,
                     r.first_seen.epochMillis, r.last_seen.epochMillis, """
    + _MERGEABLE
    + """, coalesce(r.cut, false)]
           } AS links,
           COLLECT { MATCH (i)-[:MEMBER_OF]->(:Identity)<-[:MEMBER_OF]-(m) RETURN m.key }
             AS comembers
    """
)


class _RegionReader:
    def __init__(self, graph: Graph, policy: Policy, normalizer: Normalizer, as_of_ms: int) -> None:
        self.graph = graph
        self.policy = policy
        self.as_of = as_of_ms
        self.blocked = _blocker(normalizer)
        self.params = merge_parameters(policy)
        self.rows: dict[str, dict[str, Any]] = {}

    def fetch(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        wanted = sorted(set(keys) - set(self.rows))
        fetched = []
        for start in range(0, len(wanted), _FETCH):
            rows = self.graph.read(
                "read region",
                _NODE_QUERY,
                {"keys": wanted[start : start + _FETCH], **self.params},
            )
            for row in rows:
                self.rows[row["key"]] = row
                fetched.append(row)
        return fetched

    def builder(self, region: set[str], halo_links: dict[str, list[list[Any]]]) -> GraphBuilder:
        build = GraphBuilder()
        blocked = self.blocked
        for key in sorted(region):
            row = self.rows[key]
            build.node(
                key,
                row["type"],
                blocked=blocked(row["type"], row["value"], row["hashed"]),
                stored_shared=_shared_code(row["shared"]),
            )
        for key in sorted(region):
            row = self.rows[key]
            i = build.index[key]
            for link in row["links"]:
                j = build.node(
                    link[0],
                    link[1],
                    blocked=blocked(link[1], link[2], link[3]),
                    region=False,
                    stored_shared=_shared_code(link[4]),
                )
                build.link(i, j, link[5], link[6], link[7], link[8], link[9])
        for key, links in halo_links.items():
            i = build.index[key]
            for link in links:
                j = build.node(
                    link[0],
                    link[1],
                    blocked=blocked(link[1], link[2], link[3]),
                    region=False,
                    stored_shared=_shared_code(link[4]),
                )
                build.link(i, j, link[5], link[6], link[7], link[8], link[9])
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
    them can change. Those stay in the *halo*, with their stored verdict.
    """
    reader = _RegionReader(graph, policy, normalizer, as_of_ms)
    seeds = set(seeds)
    reader.fetch(seeds)
    seeds &= set(reader.rows)  # identifiers deleted since they were touched
    if not seeds:
        return Snapshot(graph=GraphBuilder().build())
    probe = reader.builder(seeds, {}).build()
    now_direct = direct_shared(probe, policy, as_of_ms)
    still_direct = {
        key
        for key in seeds
        if reader.rows[key]["shared"] == "direct" and now_direct[probe.index[key]]
    }
    near = set(seeds)
    for key in seeds - still_direct:
        near.update(link[0] for link in reader.rows[key]["links"] if _may_merge(link))
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
            reached.update(row["comembers"])
            if key in still_direct or (key not in seeds and row["shared"] == "direct"):
                continue  # shared by the direct rule before and after: no link of it merges
            for link in row["links"]:
                other = link[0]
                if other in region or not _may_merge(link):
                    continue
                if other not in near and link[4] in ("direct", "two_hop"):
                    continue  # unchanged and shared: it stays in the halo
                reached.add(other)
        frontier = reached - region
    # two-hop shared identifiers of the halo count as a step on the way to anchors
    halo_two_hop = {
        link[0]
        for key in region
        for link in reader.rows[key]["links"]
        if link[0] not in region and link[4] == "two_hop" and link[1] not in policy.anchor_types
    }
    halo_links: dict[str, list[list[Any]]] = {}
    if halo_two_hop:
        reader.fetch(halo_two_hop)
        for key in halo_two_hop:
            halo_links[key] = [
                link
                for link in reader.rows[key]["links"]
                if link[1] in policy.anchor_types and _may_merge(link)
            ]
    link_graph = reader.builder(region, halo_links).build()
    old = {
        key: reader.rows[key]["identity"]
        for key in region
        if reader.rows[key]["identity"] is not None
    }
    return Snapshot(
        graph=link_graph,
        old=old,
        identities=read_identities(graph, set(old.values())),
        shared={
            k: (reader.rows[k]["shared"], reader.rows[k]["reason"] or "")
            for k in region
            if reader.rows[k]["shared"]
        },
        quarantined={k for k in region if reader.rows[k]["quarantine"] is not None},
    )


def _may_merge(link: list[Any]) -> bool:
    """Mergeable by party and sources and not cut. TTL and blocked ends are left to the
    engine: walking a few links too many costs time, never correctness."""
    return bool(link[8]) and not link[9]


_ID_STEP = 20_000
# One record per block of internal ids, holding a list per identifier or link: the driver's
# cost is per record, and a NodeByIdSeek over an id range needs no index.
_NODES_CHUNK: LiteralString = """
    MATCH (i:Identifier) WHERE id(i) IN range($low, $high)
    OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
    RETURN collect([id(i), i.key, i.type, i.value, coalesce(i.hashed, false), i.shared, p.id,
                    i.quarantine, i.shared_reason]) AS rows
"""
_LINKS_CHUNK: LiteralString = (
    """
    MATCH (x:Identifier) WHERE id(x) IN range($low, $high)
    MATCH (x)-[r:LINKED]->(y:Identifier)
    RETURN collect([id(x), id(y), r.count, r.first_seen.epochMillis, r.last_seen.epochMillis,
                    """
    + _MERGEABLE
    + """, coalesce(r.cut, false)]) AS rows
    """
)


def _chunked(
    graph: Graph, operation: str, query: LiteralString, top: int | None, params: dict[str, Any]
) -> Iterable[list[Any]]:
    """The rows of ``query`` over identifier ids 0..``top``, one block of ids at a time."""
    if top is None:
        return
    try:
        with graph.driver.session(database=graph.database) as session:
            for low in range(0, top + 1, _ID_STEP):
                record = session.run(
                    query, {"low": low, "high": low + _ID_STEP - 1, **params}
                ).single()
                if record is not None:
                    yield from record["rows"]
    except (Neo4jError, DriverError) as e:
        raise translate_error(operation, e, query=query, parameters=params) from e


def shortest_raw_path(graph: Graph, a: str, b: str, max_hops: int) -> list[str]:
    """Keys on one shortest path of any links between ``a`` and ``b`` (empty: none)."""
    rows = graph.read(
        "find a path between identifiers",
        """
        MATCH (x:Identifier {key: $a}), (y:Identifier {key: $b})
        WHERE x <> y
        MATCH p = shortestPath((x)-[:LINKED*..20]-(y))
        WHERE length(p) <= $max_hops
        RETURN [n IN nodes(p) | n.key] AS keys
        """,
        {"a": a, "b": b, "max_hops": max_hops},
    )
    return list(rows[0]["keys"]) if rows else []
