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
) -> tuple[list[list[int]], dict[int, LimitConflict]]:
    """The parts of the component made of ``links`` under the per-type ``limits`` (indexed by
    type, :data:`NO_LIMIT` for none), and the links refused with their conflicts."""
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
            (t for t in sorted(set(left) & set(right)) if len(left[t]) + len(right[t]) > limits[t]),
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


@dataclass(frozen=True)
class DeviceCall:
    """Two sides of a component that meet only on one device (its identifiers: an app's
    cookie, device id and advertising id, or one browser cookie), each side with its own
    anchor of one type. ``split``: their use of the device interleaves in time, so they are
    two people and the other side's links to the device are refused; otherwise one side
    replaced the other there once (one person changing address) and they stay together.
    Either way the call rests on one device, so a steward is asked to check it."""

    type: str
    device: tuple[str, ...]
    kept: tuple[str, ...]  # anchors of the side that keeps the device
    other: tuple[str, ...]  # anchors of the other side
    split: bool

    @property
    def reason(self) -> str:
        device, kept, other = (", ".join(x) for x in (self.device, self.kept, self.other))
        if self.split:
            return (
                f"{other} and {kept} meet only on the device {device}, where their use "
                "alternates: two people on one device"
            )
        return (
            f"{other} and {kept} meet only on the device {device}, one after the other "
            "there: kept together (one person changing address?), to be checked"
        )


def shared_devices(
    graph: LinkGraph,
    links: list[int],
    anchor_type: npt.NDArray[np.bool_],
    judged_types: frozenset[int],
) -> tuple[list[DeviceCall], list[int]]:
    """The device calls of the component made of ``links``, and the links they refuse.

    A *device* is a group of linked non-anchor identifiers each linked to two or more anchors
    of one judged type (an email limit above one). Removing it, the parts that hold such an
    anchor linked to it are the people who used it. The part with the strongest tie to the
    device keeps it (an anchor of a higher type there, a CRM id; then the most sightings);
    each other part is judged against it: when both sides were seen on the device at least
    twice and their spans of use there overlap, they alternate on it: two people, and the
    links between the device and that part are refused (see :class:`DeviceCall`).
    O(V + E) per device in the component."""
    g = graph
    component = nx.Graph()
    for j, a, b in zip(links, g.a[links].tolist(), g.b[links].tolist(), strict=True):
        component.add_edge(a, b, link=j)

    def judged_anchor(node: int) -> bool:
        return bool(anchor_type[g.types[node]]) and int(g.types[node]) in judged_types

    candidates = [
        d
        for d in component
        if not anchor_type[g.types[d]]
        and _most_of_one_type(g, [n for n in component[d] if judged_anchor(n)]) >= 2
    ]
    if not candidates:
        return [], []
    g.load_first_seen(links)
    calls: list[DeviceCall] = []
    refused: list[int] = []
    devices = sorted(
        (sorted(group, key=g.keys.__getitem__) for group in
         nx.connected_components(component.subgraph(candidates))),
        key=lambda group: g.keys[group[0]],
    )  # fmt: skip
    for device in devices:
        on_device = set(device)
        rest = component.subgraph(n for n in component if n not in on_device)
        sides = []
        for part in nx.connected_components(rest):
            touching = [
                (n, component[n][d]["link"]) for n in part for d in device if d in component[n]
            ]
            users = sorted({n for n, _ in touching if judged_anchor(n)}, key=g.keys.__getitem__)
            if users:
                sides.append((part, users, [j for _, j in touching]))
        if len(sides) < 2:
            continue
        sides.sort(key=lambda side: _strength(g, side, anchor_type))
        kept = sides[0]
        for other in sides[1:]:
            if g.forced[other[2]].any():
                continue  # a steward forced them together: decided
            type_ = int(g.types[other[1][0]])
            split = _alternate(g, kept[2], other[2])
            calls.append(
                DeviceCall(
                    type=g.type_names[type_],
                    device=tuple(g.keys[d] for d in device),
                    kept=tuple(g.keys[n] for n in kept[1][:EXAMPLES]),
                    other=tuple(g.keys[n] for n in other[1][:EXAMPLES]),
                    split=split,
                )
            )
            if split:
                refused.extend(other[2])
    return calls, sorted(refused)


def _most_of_one_type(g: LinkGraph, nodes: list[int]) -> int:
    counts: dict[int, int] = defaultdict(int)
    for n in nodes:
        counts[int(g.types[n])] += 1
    return max(counts.values(), default=0)


def _strength(
    g: LinkGraph, side: tuple[set[int], list[int], list[int]], anchor_type: npt.NDArray[np.bool_]
) -> tuple[int, int, str]:
    """Sort key, strongest first: the side holding an anchor linked to the device that is not
    of the judged type (a CRM id), then the most sightings on the device, then keys."""
    part, users, touching = side
    linked = {int(g.a[j]) for j in touching} | {int(g.b[j]) for j in touching}
    anchored = any(anchor_type[g.types[n]] and n not in users for n in linked & part)
    sightings = int(g.count[touching].sum())
    return (0 if anchored else 1, -sightings, g.keys[users[0]])


def _alternate(g: LinkGraph, kept: list[int], other: list[int]) -> bool:
    """Whether two sides' uses of a device alternate: each seen there at least twice, and
    their spans of use there overlap."""
    if g.count[kept].max() < 2 or g.count[other].max() < 2:
        return False
    start = max(int(g.first_seen[kept].min()), int(g.first_seen[other].min()))
    end = min(int(g.last_seen[kept].max()), int(g.last_seen[other].max()))
    return start < end
