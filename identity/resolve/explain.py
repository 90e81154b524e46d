"""Why two identifiers are, or are not, the same customer.

The region around both identifiers is read and resolved again with the engine, exactly as
``idgraph resolve`` would, so the answer states the rules as they apply now:

- same identity: the evidence path, the fewest links joining them among the links that
  merged, each hop with its sources, party, first and last seen, count and evidence (and, for
  a link a steward forced, who forced it and why; for a link record matching wrote, its
  probability and match weight comparison by comparison: the waterfall);
- different identities: the path with the fewest links that did not merge, and for each of
  those links the rule that kept it out: cut by a steward (who, why), a limit (naming the
  identifiers in conflict), a shared identifier (with its evidence), an expired link, a
  third-party link, a blocked value (who blocked it, why, when a steward did), a quarantine.
  No path at all within ``_MAX_HOPS`` links: "no link at all".
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import networkx as nx

from identity.context import ServiceContext
from identity.errors import NotFoundError
from identity.model import MatchScore, MatchStep
from identity.normalize import parse_key
from identity.resolve.engine import (
    BLOCKED,
    CUT,
    DEVICE,
    EXPIRED,
    LIMIT,
    MERGED,
    QUARANTINED,
    SHARED,
    THIRD_PARTY,
    VERDICTS,
    Resolution,
    resolve,
)
from identity.resolve.snapshot import read_region
from identity.store.driver import Graph
from identity.store.linkgraph import link_details, shortest_raw_path

_MAX_HOPS = 8


@dataclass
class Hop:
    a: str
    b: str
    verdict: str
    why: str
    sources: list[str] = field(default_factory=list)
    party: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    count: int = 0
    evidence: list[str] = field(default_factory=list)
    forced: bool = False  # a steward forced it (who and why are in ``why``)
    match: MatchScore | None = None  # record matching scored the pair: the waterfall


@dataclass
class Explanation:
    a: str
    b: str
    same: bool
    summary: str
    identity_a: str | None = None
    identity_b: str | None = None
    path: list[Hop] = field(default_factory=list)


def explain(ctx: ServiceContext, a: str, b: str, *, as_of: datetime | None = None) -> Explanation:
    """Explain ``a`` and ``b`` (identifier keys ``type:value``, normalized as on load)."""
    graph, policy, normalizer = ctx.graph, ctx.policy, ctx.normalizer
    key_a, key_b = (parse_key(normalizer, k) for k in (a, b))
    as_of_ms = int((as_of.timestamp() if as_of else time.time()) * 1000)
    # the identifiers on a shortest raw path too, so that a path through links that do not
    # merge (third-party, cut, shared) is in the region
    seeds = {key_a, key_b, *shortest_raw_path(graph, key_a, key_b, _MAX_HOPS)}
    snapshot = read_region(graph, policy, normalizer, seeds, as_of_ms)
    g = snapshot.graph
    for key, given in ((key_a, a), (key_b, b)):
        if key not in g.index:
            raise NotFoundError(f"unknown identifier {given!r} (looked up as {key!r})")
    resolution = resolve(g, policy, as_of_ms)
    i, j = g.index[key_a], g.index[key_b]
    result = Explanation(
        a=key_a,
        b=key_b,
        same=bool(resolution.group_of[i] == resolution.group_of[j]),
        summary="",
        identity_a=snapshot.old.get(key_a),
        identity_b=snapshot.old.get(key_b),
    )
    if key_a == key_b:
        result.summary = "the same identifier"
        return result
    network = nx.Graph()
    for link in range(len(g.a)):
        verdict = int(resolution.verdict[link])
        # a merged link costs nothing: the path shows the fewest links that did not merge
        weight = 0.001 if verdict == MERGED else 1.0
        network.add_edge(int(g.a[link]), int(g.b[link]), weight=weight, link=link)
    if result.same:
        merged = nx.Graph((u, v, d) for u, v, d in network.edges(data=True) if d["weight"] < 1)
        nodes = nx.shortest_path(merged, i, j)
    else:
        try:
            nodes = nx.shortest_path(network, i, j, weight="weight")
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            nodes = []
    if not nodes or len(nodes) - 1 > _MAX_HOPS:
        result.summary = (
            f"different identities: no link at all between them within {_MAX_HOPS} links"
        )
        return result
    hops = [
        hop_of(resolution, network[u][v]["link"], g.keys[u], g.keys[v])
        for u, v in itertools.pairwise(nodes)
    ]
    add_details(graph, hops)
    result.path = hops
    if result.same:
        forced = [h.why for h in hops if h.why != "merged"]
        on_path = {h.a for h in hops} | {h.b for h in hops}
        resting = [
            f"the merge rests on one device: {call.reason}"
            for call in resolution.devices
            if not call.split and on_path & set(call.device)
        ]
        result.summary = "; ".join(
            [f"same identity, joined by {len(hops)} link(s)", *forced, *resting]
        )
    else:
        kept_out = [h for h in hops if h.verdict != VERDICTS[MERGED]]
        reasons = "; ".join(dict.fromkeys(h.why for h in kept_out))
        result.summary = f"different identities: {reasons}"
    return result


def hop_of(resolution: Resolution, link: int, a: str, b: str) -> Hop:
    """Link ``link`` of the resolution between keys ``a`` and ``b``: its verdict and why."""
    g = resolution.graph
    verdict = int(resolution.verdict[link])
    why = {
        MERGED: "merged",
        THIRD_PARTY: f"{a} - {b} is third-party only: it enriches, never merges",
        CUT: f"{a} - {b} was cut by a steward",
        EXPIRED: f"{a} - {b} expired: not seen within the TTL of its types",
        BLOCKED: f"{a} - {b} joins a blocked value",
        QUARANTINED: f"{a} - {b} is in a component over the size bound, quarantined for review",
    }.get(verdict, "")
    if verdict == LIMIT:
        conflict = resolution.conflicts.get(link)
        if conflict is not None:
            why = (
                f"{a} - {b} refused by the {conflict.type} limit of {conflict.limit}: "
                f"conflicting {', '.join(conflict.identifiers)}"
            )
    if verdict == DEVICE:
        call = resolution.device_links.get(link)
        why = f"{a} - {b} refused: " + (call.reason if call else "two people on one device")
    if verdict == SHARED:
        for end in (int(g.a[link]), int(g.b[link])):
            note = resolution.shared.get(end)
            if resolution.shared_kind[end] > 0:
                detail = note.reason if note else "shared (stored verdict)"
                why = f"{g.keys[end]} is a shared identifier: {detail}"
                break
    return Hop(a=a, b=b, verdict=VERDICTS[verdict], why=why)


def add_details(graph: Graph, hops: list[Hop]) -> None:
    """Each hop's sources, party, times, count, evidence, and the steward's words in its why."""
    rows = link_details(graph, [(h.a, h.b) for h in hops])
    details = {(row["a"], row["b"]): row for row in rows}
    for hop in hops:
        row = details.get((hop.a, hop.b))
        if row is None:
            continue
        hop.sources = list(row["sources"] or [])
        hop.party = row["party"]
        hop.first_seen = row["first_seen"].to_native() if row["first_seen"] else None
        hop.last_seen = row["last_seen"].to_native() if row["last_seen"] else None
        hop.count = int(row["count"] or 0)
        hop.evidence = list(row["evidence"] or [])
        hop.forced = bool(row["forced"])
        hop.match = _match_score(row)
        hop.why = _steward_why(hop, row)


def _steward_why(hop: Hop, row: dict[str, Any]) -> str:
    """The hop's reason, naming the steward and the reason of a cut, a forced link or a block."""
    link = f"{hop.a} - {hop.b}"
    if hop.verdict == VERDICTS[CUT] and row["cut_by"]:
        return f"{link} was cut by a steward, {row['cut_by']}: {row['cut_reason']}"
    if hop.verdict == VERDICTS[BLOCKED] and row["blocked"]:
        key, by, reason = row["blocked"][0]
        return f"{link} joins a blocked value: {key} blocked by {by}: {reason}"
    if not row["forced"]:
        if hop.match and hop.verdict == VERDICTS[MERGED]:
            return (
                f"{link} matched by record matching ({hop.match.source} model "
                f"v{hop.match.model}): probability {hop.match.probability:.6f}, match weight "
                f"{hop.match.match_weight:.2f}"
            )
        return hop.why
    forced = f"forced by {row['forced_by']}: {row['forced_reason']}"
    if hop.verdict == VERDICTS[MERGED]:
        return f"{link} {forced}"
    return f"{hop.why} (the link is {forced}, but this rule is stronger)"


def _match_score(row: dict[str, Any]) -> MatchScore | None:
    if row.get("match_p") is None:
        return None
    steps = tuple(
        MatchStep(comparison, level, float(weight))
        for comparison, level, weight in zip(
            row["match_comparisons"] or [],
            row["match_levels"] or [],
            row["match_weights"] or [],
            strict=False,
        )
    )
    return MatchScore(
        probability=float(row["match_p"]),
        prior_weight=float(row["match_prior"] or 0.0),
        steps=steps,
        source=row["match_source"] or "",
        model=int(row["match_model"] or 0),
    )
