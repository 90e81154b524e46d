"""Reading the link graph for resolution: identifiers and links as stored, nothing decided.

The whole-graph reads go over blocks of internal node ids (a NodeByIdSeek over an id range
needs no index) and return one record per block holding a list per identifier or link: the
driver's cost is per record. The region reads take blocks of keys. What a rule makes of what
is read is :mod:`identity.resolve.snapshot`'s business; only the policy's party and source
trust enter a query here, as parameters (:func:`merge_parameters`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, LiteralString

from identity.model import OldIdentity
from identity.policy import Policy
from identity.store.driver import Graph

# Whether a link may merge, as Policy.may_merge decides. Without per-source settings (the
# default) the party alone decides: every link has a source, and scanning r.sources costs a
# third of a region read.
_MERGEABLE_BY_SOURCE: LiteralString = (
    "(any(s IN r.sources WHERE s IN $allow) "
    "OR (r.party IN $parties AND any(s IN r.sources WHERE NOT s IN $deny)))"
)
_MERGEABLE_BY_PARTY: LiteralString = "(r.party IN $parties)"
_ID_STEP = 20_000
# identity.resolve.graph's FORCED (1) and MATCHED (2) flags of a link, as one integer
_FLAGS: LiteralString = (
    "(CASE WHEN r.forced THEN 1 ELSE 0 END + CASE WHEN r.matched THEN 2 ELSE 0 END)"
)


def merge_parameters(policy: Policy) -> dict[str, Any]:
    """The parameters of the mergeable test (:func:`_mergeable`)."""
    return {
        "allow": sorted(s for s, ok in policy.source_merge.items() if ok),
        "deny": sorted(s for s, ok in policy.source_merge.items() if not ok),
        "parties": sorted(p for p, ok in policy.party_merge.items() if ok),
    }


def _mergeable(policy: Policy) -> LiteralString:
    return _MERGEABLE_BY_SOURCE if policy.source_merge else _MERGEABLE_BY_PARTY


# -- the whole graph --------------------------------------------------------------------------

_NODES_CHUNK: LiteralString = """
    MATCH (i:Identifier) WHERE id(i) IN range($low, $high)
    OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
    RETURN collect([id(i), i.key, i.shared, p.id, i.quarantine, i.shared_reason,
                    i.blocked, i.first_seen.epochMillis, i.last_seen.epochMillis]) AS rows
"""


def _links_chunk(mergeable: LiteralString, first_seen: bool) -> LiteralString:
    first: LiteralString = ", r.first_seen.epochMillis" if first_seen else ""
    return (
        """
        MATCH (x:Identifier) WHERE id(x) IN range($low, $high)
        MATCH (x)-[r:LINKED]->(y:Identifier)
        RETURN collect([id(x), id(y), r.count, r.last_seen.epochMillis, """
        + mergeable
        + """, coalesce(r.cut, false), """
        + _FLAGS
        + first
        + """]) AS rows
        """
    )


def highest_identifier_id(graph: Graph) -> int | None:
    """The highest internal id of an identifier (None: there is none): the range to read."""
    top = graph.read(
        "read the highest identifier id", "MATCH (i:Identifier) RETURN max(id(i)) AS top"
    )[0]["top"]
    return None if top is None else int(top)


def identifier_rows(graph: Graph, top: int | None) -> Iterator[list[Any]]:
    """Every identifier as ``[internal id, key, shared kind, identity id, quarantine id,
    shared reason, blocked by a steward, first_seen ms, last_seen ms]``, by blocks of
    internal ids up to ``top``."""
    for block in _blocks(graph, "read identifiers", _NODES_CHUNK, top, {}):
        yield from block


def link_blocks(
    graph: Graph, policy: Policy, top: int | None, first_seen: bool = False
) -> Iterator[list[Any]]:
    """Every link once, by blocks of its start node's internal id up to ``top``: each block a
    list of ``[x id, y id, count, last_seen ms, mergeable, cut, flags]`` (flags: forced 1,
    matched 2) (then first_seen ms
    when asked: it costs as much again to read)."""
    query = _links_chunk(_mergeable(policy), first_seen)
    yield from _blocks(graph, "read links", query, top, merge_parameters(policy))


def _blocks(
    graph: Graph, operation: str, query: LiteralString, top: int | None, params: dict[str, Any]
) -> Iterator[list[Any]]:
    if top is None:
        return
    for low in range(0, top + 1, _ID_STEP):
        block = {"low": low, "high": low + _ID_STEP - 1, **params}
        rows = graph.read_collected(operation, query, block)
        if rows:
            yield rows


def read_identities(graph: Graph, ids: Iterable[str]) -> dict[str, OldIdentity]:
    """Creation times of the given identities."""
    wanted = sorted(set(ids))
    found: dict[str, OldIdentity] = {}
    for start in range(0, len(wanted), 50_000):
        rows = graph.read_collected(
            "read identities",
            "UNWIND $ids AS id MATCH (p:Identity {id: id}) "
            "RETURN collect([p.id, p.created_at.epochMillis])",
            {"ids": wanted[start : start + 50_000]},
        )
        for identity, created in rows:
            found[identity] = OldIdentity(identity, int(created))
    return found


# -- a region ---------------------------------------------------------------------------------


def _node_query(mergeable: LiteralString) -> LiteralString:
    return (
        """
        UNWIND $keys AS k
        MATCH (i:Identifier {key: k})
        OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
        WITH i, p, COLLECT {
            MATCH (i)-[r:LINKED]-(o:Identifier)
            RETURN [o.key, o.shared, r.count, r.last_seen.epochMillis, """
        + mergeable
        + """, coalesce(r.cut, false), """
        + _FLAGS
        + """, o.blocked]
          } AS links
        RETURN collect([i.key, i.shared, i.shared_reason, p.id, i.quarantine, links,
                        i.blocked, id(i)]) AS rows
        """
    )


_MEMBERS_QUERY: LiteralString = """
    UNWIND $ids AS id
    MATCH (p:Identity {id: id})
    RETURN collect([id, p.created_at.epochMillis,
                    COLLECT { MATCH (p)<-[:MEMBER_OF]-(m:Identifier) RETURN m.key }]) AS rows
"""


def has_matched_links(graph: Graph) -> bool:
    """Whether record matching wrote any link (an index seek on ``match_source``)."""
    rows = graph.read(
        "look for matched links",
        "MATCH ()-[r:LINKED]->() WHERE r.match_source IS NOT NULL RETURN 1 AS found LIMIT 1",
    )
    return bool(rows)


def region_rows(graph: Graph, policy: Policy, keys: list[str]) -> list[list[Any]]:
    """The identifiers among ``keys`` as ``[key, shared kind, shared reason, identity id,
    quarantine id, links, blocked by a steward, internal id]``, each link as ``[other key,
    other's shared kind, count, last_seen ms, mergeable, cut, flags, other blocked by a
    steward]``."""
    query = _node_query(_mergeable(policy))
    return graph.read_collected("read region", query, {"keys": keys, **merge_parameters(policy)})


def identity_members(graph: Graph, ids: list[str]) -> list[list[Any]]:
    """The identities ``ids`` as ``[id, created_at ms, [member keys]]``."""
    return graph.read_collected("read identities", _MEMBERS_QUERY, {"ids": ids})


def read_first_seen(graph: Graph, pairs: list[tuple[str, str]]) -> list[int]:
    """first_seen (epoch ms) of the links between the given pairs of keys, in order."""
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(pairs), 5000):
        block = [list(pair) for pair in pairs[start : start + 5000]]
        rows = graph.read_collected(
            "read link first_seen",
            """
            UNWIND $pairs AS pair
            MATCH (x:Identifier {key: pair[0]})-[r:LINKED]-(y:Identifier {key: pair[1]})
            RETURN collect([pair[0], pair[1], r.first_seen.epochMillis])
            """,
            {"pairs": block},
        )
        for a, b, first in rows:
            found[a, b] = first
    return [found.get(pair, 0) for pair in pairs]


def link_details(graph: Graph, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """What explain shows of each link between ``pairs`` of keys: sources, party, times,
    count, evidence, the steward's cut or forcing, the blocks of its ends, and the score of
    record matching when it matched the pair."""
    return graph.read(
        "read link details",
        """
        UNWIND $pairs AS pair
        MATCH (x:Identifier {key: pair[0]})-[r:LINKED]-(y:Identifier {key: pair[1]})
        RETURN pair[0] AS a, pair[1] AS b, r.sources AS sources, r.party AS party,
               r.first_seen AS first_seen, r.last_seen AS last_seen, r.count AS count,
               r.evidence AS evidence, r.cut_by AS cut_by, r.cut_reason AS cut_reason,
               r.forced AS forced, r.forced_by AS forced_by, r.forced_reason AS forced_reason,
               r.match_p AS match_p, r.match_prior AS match_prior,
               r.match_comparisons AS match_comparisons, r.match_levels AS match_levels,
               r.match_weights AS match_weights, r.match_source AS match_source,
               r.match_model AS match_model,
               [end IN [x, y] WHERE end.blocked | [end.key, end.blocked_by, end.blocked_reason]]
                 AS blocked
        """,
        {"pairs": [list(pair) for pair in pairs]},
    )


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


def batch_origins(graph: Graph, ids: list[str]) -> list[dict[str, Any]]:
    """The loads ``ids`` (batch ids, from links' evidence): source, file, when."""
    return graph.read(
        "read batch origins",
        "UNWIND $ids AS id MATCH (b:Batch {id: id}) "
        "RETURN b.id AS id, b.source AS source, b.file AS file, b.started_at AS started_at",
        {"ids": ids},
    )
