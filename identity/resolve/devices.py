"""Two people on one device: the rule that splits a partner signing in on a customer's device
from the customer, where counts cannot (docs/resolving.md, rule 3).

:func:`judge_devices` finds, with one vectorised count over the link columns, the components
where a non-anchor identifier (a cookie, a device id, an advertising id) is linked to two
anchors of a type a person may hold several of (emails, phones): a few in a hundred. In each,
:func:`shared_devices` contracts every *device* (such identifiers linked together: an app's
cookie, device id and advertising id; or one browser cookie) to one node and reads the parts
its removal leaves from the biconnected components at it (Hopcroft and Tarjan, "Efficient
algorithms for graph manipulation", CACM 16(6), 1973), O(V + E) per component. Parts that each
hold their own such anchor linked to the device meet only there; when their uses of it
alternate in time, they are two people. Every call is returned for review.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import numpy as np
import numpy.typing as npt

from identity.resolve.graph import LinkGraph
from identity.resolve.local import EXAMPLES


def judge_devices(
    g: LinkGraph,
    eligible: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.int32],
    anchor_type: npt.NDArray[np.bool_],
    device_types: frozenset[int],
    bound: int | None,
) -> list[tuple[DeviceCall, list[int]]]:
    """The device calls over the ``eligible`` links (components ``labels``), each with the
    links it refuses; judged only where a non-anchor identifier links two anchors of one of
    ``device_types``, in components of at most ``bound`` identifiers (larger ones are
    quarantined whatever this rule says)."""
    if not device_types or not g.n:
        return []
    n_types = len(anchor_type)
    judged = np.zeros(n_types, dtype=np.bool_)
    judged[list(device_types)] = True
    anchor = anchor_type[g.types]
    a, b = g.a[eligible].astype(np.int64), g.b[eligible].astype(np.int64)
    users, devices = np.concatenate([a, b]), np.concatenate([b, a])
    pair = judged[g.types[users]] & anchor[users] & ~anchor[devices]
    cells = devices[pair] * n_types + g.types[users[pair]]
    counts = np.bincount(cells, minlength=g.n * n_types).reshape(g.n, n_types)
    busy_nodes = np.flatnonzero((counts >= 2).any(axis=1) & g.region)
    if not len(busy_nodes):
        return []
    busy = np.zeros(int(labels.max()) + 1, dtype=np.bool_)
    busy[labels[busy_nodes]] = True
    if bound is not None:
        busy &= np.bincount(labels, minlength=len(busy)) <= bound
    links = np.flatnonzero(eligible & busy[labels[g.a]])
    g.load_first_seen(links.tolist())  # once for all (reads skip it: one query, not many)
    by_component: dict[int, list[int]] = defaultdict(list)
    for j, label in zip(links.tolist(), labels[g.a[links]].tolist(), strict=True):
        by_component[label].append(j)
    found: list[tuple[DeviceCall, list[int]]] = []
    for label in sorted(by_component):
        found.extend(shared_devices(g, by_component[label], anchor_type, device_types))
    return found


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
) -> list[tuple[DeviceCall, list[int]]]:
    """The device calls of the component made of ``links``, each with the links it refuses.

    A *device* is a group of linked non-anchor identifiers each linked to two or more anchors
    of one judged type (an email limit above one). With each device contracted to one node,
    the parts its removal leaves are told by the biconnected components (blocks) at it: two
    of its neighbours are in one part exactly when the edges to them are in one block, so one
    pass finds the parts of every device (Hopcroft and Tarjan, as for bridges), O(V + E) for
    the component. For each judged type, the parts holding an anchor of that type linked to
    the device are the people who used it; the one with the strongest tie to the device keeps
    it (an anchor of another kind linked to it, a CRM id; then the most sightings), and each
    other part is judged against it: when both sides were seen on the device at least twice
    and their spans of use there overlap, they alternate on it: two people, and the links
    between the device and that part are refused (see :class:`DeviceCall`)."""
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
        return []
    g.load_first_seen(links)
    devices = sorted(
        (sorted(group, key=g.keys.__getitem__) for group in
         nx.connected_components(component.subgraph(candidates))),
        key=lambda group: g.keys[group[0]],
    )  # fmt: skip
    device_of = {node: -1 - i for i, device in enumerate(devices) for node in device}
    contracted = nx.Graph()  # a device is node -1 - its index; identifiers keep theirs
    for a, b, data in component.edges(data=True):
        u, v = device_of.get(a, a), device_of.get(b, b)
        if u == v:
            continue
        if contracted.has_edge(u, v):
            contracted[u][v]["links"].append(data["link"])
        else:
            contracted.add_edge(u, v, links=[data["link"]])
    block_of: dict[frozenset[int], int] = {}
    for block, edges in enumerate(nx.biconnected_component_edges(contracted)):
        for u, v in edges:
            block_of[frozenset((u, v))] = block
    found: list[tuple[DeviceCall, list[int]]] = []
    for i, device in enumerate(devices):
        node = -1 - i
        parts: dict[int, list[int]] = defaultdict(list)
        for n in contracted[node]:
            parts[block_of[frozenset((node, n))]].append(n)
        if len(parts) < 2:
            continue  # one part: the anchors meet elsewhere too
        # the parts that used it (with an anchor of a judged type linked to it), ranked once:
        # the strongest keeps the device, each other is judged against it on a type they share
        sides = []
        for block in sorted(parts):
            near = parts[block]
            own = sorted((n for n in near if n >= 0 and judged_anchor(n)), key=g.keys.__getitem__)
            if own:
                touching = [j for n in near for j in contracted[node][n]["links"]]
                sides.append((near, own, touching))
        if len(sides) < 2:
            continue
        sides.sort(key=lambda side: _strength(g, side, anchor_type, judged_types))
        kept = sides[0]
        kept_types = {int(g.types[n]) for n in kept[1]}
        for other in sides[1:]:
            shared_types = sorted(kept_types & {int(g.types[n]) for n in other[1]})
            if not shared_types or g.forced[other[2]].any():
                continue  # nothing to compare; or a steward forced them together: decided
            type_ = shared_types[0]
            call = DeviceCall(
                type=g.type_names[type_],
                device=tuple(g.keys[d] for d in device),
                kept=tuple(g.keys[n] for n in kept[1] if g.types[n] == type_)[:EXAMPLES],
                other=tuple(g.keys[n] for n in other[1] if g.types[n] == type_)[:EXAMPLES],
                split=_alternate(g, kept[2], other[2]),
            )
            found.append((call, sorted(other[2]) if call.split else []))
    return found


def _most_of_one_type(g: LinkGraph, nodes: list[int]) -> int:
    counts: dict[int, int] = defaultdict(int)
    for n in nodes:
        counts[int(g.types[n])] += 1
    return max(counts.values(), default=0)


def _strength(
    g: LinkGraph,
    side: tuple[list[int], list[int], list[int]],
    anchor_type: npt.NDArray[np.bool_],
    judged_types: frozenset[int],
) -> tuple[int, int, str]:
    """Sort key, strongest first: the side with an anchor of a type not judged here (a CRM id)
    linked to the device, then the most sightings on the device, then keys."""
    near, users, touching = side
    anchored = any(
        n >= 0 and anchor_type[g.types[n]] and int(g.types[n]) not in judged_types for n in near
    )
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
