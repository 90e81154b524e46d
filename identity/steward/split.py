"""Split off: the steward names the identifiers of an identity that belong to someone else;
the fewest links whose cut separates them from the rest are found, previewed and cut.

An over-merged identity is often held together by more than one path (a family tablet and a
shared email): cutting the link ``explain`` shows leaves the other path. Here the identity's
region is read and resolved again as ``idgraph resolve`` would (:func:`read_region`,
:func:`resolve`); the links that merge inside the identity form a graph, and a minimum edge
cut between the chosen identifiers and the others (every link counts one: the smallest set of
links) is found with networkx's maximum flow. The preview resolves the region again with those
links cut, so it shows the identities that would result, as the rules would form them (a cut
can free more than two pieces). Applying records every cut with one reason and one audit
event (``action: 'split_off'``), then one incremental resolve applies them (as
:mod:`identity.steward.actions` does for one cut).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.normalize import parse_key
from identity.resolve.engine import MERGED, Resolution, resolve
from identity.resolve.graph import LinkGraph
from identity.resolve.service import ResolveReport
from identity.resolve.snapshot import read_region
from identity.steward.actions import Request
from identity.store.identities import identities_of
from identity.store.linkgraph import identity_members
from identity.store.steward import record_cuts

MAX_SPLIT_MEMBERS = 5000  # identifiers of an identity a split-off works on at most


@dataclass
class SplitPlan:
    """What a split-off would do: the identity, the identifiers chosen (normalized keys), the
    links to cut (pairs of keys, each sorted) and the groups of the identity's identifiers
    once they are cut, as the rules form them (the chosen ones' group first)."""

    identity: str
    selected: list[str]
    cuts: list[tuple[str, str]]
    groups: list[list[str]]


@dataclass
class SplitResult:
    plan: SplitPlan
    reason: str
    actor: str
    event_id: str
    identities: list[str] = field(default_factory=list)  # holding the identity's keys after
    report: ResolveReport | None = None


def plan_split_off(ctx: ServiceContext, keys: list[str]) -> SplitPlan:
    """The cuts that separate ``keys`` (identifiers of one identity, ``type:value`` as loads
    normalize them) from the identity's other identifiers, and what would result."""
    return _plan(ctx, keys)


def split_off(
    ctx: ServiceContext, keys: list[str], *, reason: str, wait: float = 30.0
) -> SplitResult:
    """Cut the links :func:`plan_split_off` finds, with one reason and one audit event, and
    apply them through an incremental resolve."""
    request = Request(ctx, reason, wait)
    plan = _plan(request.ctx, keys)
    members = [key for group in plan.groups for key in group]
    event, after, report = request.record(
        "split_off",
        plan.selected,
        [plan.identity],
        lambda audit: record_cuts(
            request.graph, cuts=plan.cuts, selected=plan.selected, audit=audit
        ),
        holding=members,
    )
    return SplitResult(plan, request.reason, request.actor, event, after, report)


def _plan(ctx: ServiceContext, given: list[str]) -> SplitPlan:
    if not given:
        raise InputError("split-off: name at least one identifier to split off")
    selected = sorted({parse_key(ctx.normalizer, k) for k in given})
    held = identities_of(ctx.graph, selected)
    if len(held) != 1:
        raise InputError(
            "split-off: the identifiers must all belong to one identity; "
            + (f"they belong to {len(held)}: {', '.join(held)}" if held else "none has one")
        )
    identity = held[0]
    rows = identity_members(ctx.graph, [identity])
    members = set(rows[0][2]) if rows else set()
    missing = [k for k in selected if k not in members]
    if missing:
        raise NotFoundError(f"split-off: not identifiers of {identity}: {', '.join(missing)}")
    if len(members) > MAX_SPLIT_MEMBERS:
        raise InputError(
            f"split-off: identity {identity} has {len(members):,} identifiers, more than "
            f"{MAX_SPLIT_MEMBERS:,}: cut its links one by one (idgraph steward cut)"
        )
    rest = members - set(selected)
    if not rest:
        raise InputError(
            f"split-off: that is every identifier of {identity}; choose the ones that "
            "belong to someone else"
        )
    as_of = int(time.time() * 1000)
    snapshot = read_region(ctx.graph, ctx.policy, ctx.normalizer, members, as_of)
    g = snapshot.graph
    resolution = resolve(g, ctx.policy, as_of)
    cuts = _minimum_cut(g, resolution, selected, rest)
    if not cuts:
        raise InputError(
            f"split-off: no link of {identity} joins them to the rest as the rules stand now "
            "(a resolve is pending: run idgraph resolve)"
        )
    preview = _with_cuts(g, cuts)
    after = resolve(preview, ctx.policy, as_of)
    groups = _groups_of(after, members, selected)
    pairs = [tuple(sorted((g.keys[int(g.a[j])], g.keys[int(g.b[j])]))) for j in cuts]
    return SplitPlan(identity, selected, sorted((a, b) for a, b in pairs), groups)


def _minimum_cut(
    g: LinkGraph, resolution: Resolution, selected: list[str], rest: set[str]
) -> list[int]:
    """The fewest merging links (indices) whose removal separates ``selected`` from
    ``rest``: a maximum flow from a source joined to the chosen identifiers to a sink joined
    to the others, every merging link of capacity one both ways."""
    flow = nx.DiGraph()
    inside = set(selected) | rest
    for j in np.flatnonzero(resolution.verdict == MERGED).tolist():
        a, b = g.keys[int(g.a[j])], g.keys[int(g.b[j])]
        if a in inside and b in inside:
            flow.add_edge(a, b, capacity=1, link=j)
            flow.add_edge(b, a, capacity=1, link=j)
    source, sink = ("split", "source"), ("split", "sink")  # no identifier key is a tuple
    for key in selected:
        flow.add_edge(source, key)  # no capacity: unbounded
    for key in rest:
        flow.add_edge(key, sink)
    _, (reachable, _) = nx.minimum_cut(flow, source, sink)
    return sorted(
        {
            data["link"]
            for u in reachable
            for v, data in flow[u].items()
            if v not in reachable and "link" in data
        }
    )


def _with_cuts(g: LinkGraph, cuts: list[int]) -> LinkGraph:
    """A copy of ``g`` whose links ``cuts`` are cut, as a steward's cut marks them."""
    cut = g.cut.copy()
    cut[cuts] = True
    return dataclasses.replace(g, cut=cut)


def _groups_of(resolution: Resolution, members: set[str], selected: list[str]) -> list[list[str]]:
    """The groups the identity's identifiers fall into, each sorted; the group of the first
    chosen identifier first, then by size."""
    groups: dict[int, list[str]] = {}
    for key in members:
        groups.setdefault(int(resolution.group_of[resolution.graph.index[key]]), []).append(key)
    first = int(resolution.group_of[resolution.graph.index[selected[0]]])
    ordered = sorted(groups.items(), key=lambda item: (item[0] != first, -len(item[1]), item[0]))
    return [sorted(group) for _, group in ordered]
