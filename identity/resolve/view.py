"""An identity as a graph: its identifiers, their neighbours, and every link between them with
the verdict the rules give it now (what the console draws).

The identity's region is read and resolved again as ``idgraph resolve`` would, like
:mod:`identity.resolve.explain` does for two identifiers, so a link's verdict and its reason
are the engine's, not a guess from stored flags: merged (or forced by a steward), cut,
shared, expired, third-party, blocked, quarantined or refused by a limit. The identity's own
identifiers come first; then the identifiers one link away (another identity's, a shared
kiosk, a third-party id), so a steward sees what the rules kept out as well as what they let
in. Each link carries the details explain shows (sources, party, times, count, evidence), and
the loads its evidence came from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.resolve.engine import resolve
from identity.resolve.explain import Hop, add_details, hop_of
from identity.resolve.graph import SHARED_KINDS
from identity.resolve.snapshot import read_region
from identity.store.linkgraph import batch_origins, identity_members

MAX_VIEW_MEMBERS = 5000  # identifiers of an identity the view resolves at most
DEFAULT_VIEW_NODES = 300  # identifiers drawn by default (the identity's own first)


@dataclass
class ViewNode:
    key: str
    member: bool  # one of the identity's identifiers
    shared: str | None  # direct, two_hop or bridge: too many people use it
    blocked: bool
    quarantined: bool


@dataclass
class Origin:
    """A load that a link's evidence came from."""

    batch: str
    source: str | None
    file: str | None
    started_at: datetime | None


@dataclass
class ViewLink:
    hop: Hop  # the two keys, verdict, why and the link's details
    origins: list[Origin] = field(default_factory=list)


@dataclass
class IdentityView:
    identity: str
    members: int  # identifiers of the identity (all of them, drawn or not)
    nodes: list[ViewNode]
    links: list[ViewLink]
    truncated: bool  # more identifiers than drawn


def identity_view(
    ctx: ServiceContext, identity: str, *, limit: int = DEFAULT_VIEW_NODES
) -> IdentityView:
    """The graph of ``identity`` (an active identity's id): up to ``limit`` identifiers, its
    own first, then their neighbours, and the links between those drawn."""
    rows = identity_members(ctx.graph, [identity])
    if not rows:
        raise NotFoundError(f"no active identity {identity!r}")
    members = set(rows[0][2])
    if len(members) > MAX_VIEW_MEMBERS:
        raise InputError(
            f"identity {identity} has {len(members):,} identifiers, more than the "
            f"{MAX_VIEW_MEMBERS:,} a view draws: page through its identifiers instead"
        )
    as_of = int(time.time() * 1000)
    snapshot = read_region(ctx.graph, ctx.policy, ctx.normalizer, members, as_of)
    g = snapshot.graph
    resolution = resolve(g, ctx.policy, as_of)
    drawn = sorted(k for k in members if k in g.index)[:limit]
    neighbours: set[str] = set()
    member_nodes = {g.index[k] for k in members if k in g.index}
    for a, b in zip(g.a.tolist(), g.b.tolist(), strict=True):
        if a in member_nodes and b not in member_nodes:
            neighbours.add(g.keys[b])
        elif b in member_nodes and a not in member_nodes:
            neighbours.add(g.keys[a])
    drawn += sorted(neighbours)[: max(0, limit - len(drawn))]
    shown = {g.index[k] for k in drawn}
    hops = [
        hop_of(resolution, j, g.keys[a], g.keys[b])
        for j, (a, b) in enumerate(zip(g.a.tolist(), g.b.tolist(), strict=True))
        if a in shown and b in shown
    ]
    add_details(ctx.graph, hops)
    nodes = [
        ViewNode(
            key=key,
            member=key in members,
            shared=SHARED_KINDS[int(resolution.shared_kind[g.index[key]])] or None,
            blocked=bool(g.blocked[g.index[key]]),
            quarantined=key in snapshot.quarantined,
        )
        for key in drawn
    ]
    return IdentityView(
        identity=identity,
        members=len(members),
        nodes=nodes,
        links=_with_origins(ctx, hops),
        truncated=len(drawn) < len(members) + len(neighbours),
    )


def _with_origins(ctx: ServiceContext, hops: list[Hop]) -> list[ViewLink]:
    """Each hop with the loads its evidence references name (``<time> <batch>:<record>``)."""
    batch_of = {ref: _batch_of(ref) for hop in hops for ref in hop.evidence}
    found = {
        row["id"]: Origin(
            batch=row["id"],
            source=row["source"],
            file=row["file"],
            started_at=row["started_at"].to_native() if row["started_at"] else None,
        )
        for row in batch_origins(ctx.graph, sorted(set(batch_of.values())))
    }
    links = []
    for hop in hops:
        batches = dict.fromkeys(batch_of[ref] for ref in hop.evidence)
        links.append(ViewLink(hop, [found[b] for b in batches if b in found]))
    return links


def _batch_of(reference: str) -> str:
    _, _, ref = reference.partition(" ")
    return ref.partition(":")[0]
