"""Identity formation: the partition of identifiers into identities, under the linking policy.

The rules run in a fixed order, each a vectorized pass over the link columns, so the same data
gives the same partition whatever order it arrived in (docs/architecture.md, "Resolution
rules"):

1. **Candidate links**: links whose party or sources may merge, not cut by a steward, seen
   within the TTL of both ends' types, between two identifiers neither the policy nor a
   steward blocks.
2. **Shared identifiers** take no part in merging (all their links are left out):

   - *direct*: more neighbours of one type than an identity may hold, that type ranking at
     least as high as the identifier's own (a kiosk cookie linked to 12 emails, a family
     tablet linked to 2 crm ids; but a crm id with 4 phones is one customer, whose weakest
     phone the limit drops in step 4). One sparse count per (node, type).
   - *two-hop*: more anchors (crm ids, emails, phones by default) within two links than an
     identity may hold (again of a type ranking at least as high as its own), counting
     through neighbours that are neither anchors nor direct-shared (``test@example.com``
     typed on 40 cookies that each lead to someone's own email). The counts come from one
     sparse product ``A[:, via] · A[via, anchors]``.
   - *bridge*: an anchor whose removal leaves two or more parts of its component that each
     hold another identifier of its own type: an email that is the only tie between two
     people who each have their own email. Found with networkx articulation points, only in
     components holding two anchors of one type (a few percent of them).

3. **Two people on one device** (:mod:`identity.resolve.devices`): in the few components
   where a cookie or device links two emails, parts that meet only on one device and whose
   uses of it alternate in time are two people: the other part's links to it are refused.
   **Record matching** (:mod:`identity.matching`): a link only matched (never observed) takes
   no part in rules 2-3 and merges after them where neither end is shared; in the shared
   counts and under the limits, identifiers of one type joined by matched links (one
   customer's duplicate records) count once.
4. **Components** of the remaining links (``scipy.sparse.csgraph``), then the **circuit
   breaker**: a component above ``max_identity_size`` is quarantined, its identifiers left
   unmerged and listed for review.
5. **Limits**: a component holding more identifiers of a type than the type's limit is split
   greedily, Kruskal-style: its links sorted strongest first (links forced by a steward, then
   weight = the lower priority of the two ends, then count, then earliest first_seen, then
   keys) join two parts unless the union would break a limit; a link refused is recorded with
   the identifiers it conflicts with. The order is total, so the split is deterministic.

Rules 1, 2 and 4 are graph-wide; the bridge test, the device rule and the limit split look at
one component at a time (:mod:`identity.resolve.local`, :mod:`identity.resolve.devices`), so
that another engine can run them where the component is.

A link **forced** by a steward (``forced`` true) is a candidate whatever its party, sources
or age, and merges even where an end is shared (the shared identifier still merges nothing
else). The flag plays no part in judging what is shared: those rules see every link as it
would be without it (a link a steward created is a first-party link like any other). It does
not override a cut, a blocked end, a limit its own two ends break, or the circuit breaker.

Complexity for V identifiers and E links: O(V + E) for rules 1-3 plus the sparse product,
whose size is the number of two-step paths ending at an anchor (bounded by the limits once
direct-shared nodes are out); rule 4 is O(E' log E') on the E' links of the components that
break a limit.

References: see :mod:`identity.resolve.local` (articulation points; Kruskal under limits).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_array, csr_array

from identity.policy import Policy
from identity.resolve.devices import DeviceCall, judge_devices
from identity.resolve.graph import BRIDGE, DAY_MS, DIRECT, TWO_HOP, LinkGraph
from identity.resolve.local import (
    EXAMPLES,
    NO_LIMIT,
    LimitConflict,
    SharedNote,
    bridge_anchors,
    component_labels,
    duplicates,
    split_under_limits,
)

# Link verdicts: why a link did or did not merge.
MERGED, THIRD_PARTY, CUT, EXPIRED, BLOCKED, SHARED, QUARANTINED, LIMIT, DEVICE = range(9)
VERDICTS = ("merged", "third_party", "cut", "expired", "blocked", "shared", "quarantined",
            "limit", "shared_device")  # fmt: skip


@dataclass
class Resolution:
    """The partition of the region's identifiers, and every verdict that led to it.

    ``group_of[i]`` is the group of identifier ``i`` (-1 for halo identifiers); groups are
    numbered 0..``n_groups``-1 in no particular order. ``verdict[j]`` says what link ``j``
    did. ``shared`` and ``conflicts`` hold the notes of shared identifiers and refused links.
    """

    graph: LinkGraph
    group_of: npt.NDArray[np.int64]
    n_groups: int
    verdict: npt.NDArray[np.int8]
    shared_kind: npt.NDArray[np.int8]
    shared: dict[int, SharedNote] = field(default_factory=dict)
    conflicts: dict[int, LimitConflict] = field(default_factory=dict)
    quarantined: list[list[int]] = field(default_factory=list)
    devices: list[DeviceCall] = field(default_factory=list)  # calls resting on one device
    device_links: dict[int, DeviceCall] = field(default_factory=dict)  # refused link -> call

    def groups(self) -> list[npt.NDArray[np.int64]]:
        """The members of each group (node indices), one array per group."""
        nodes = np.flatnonzero(self.group_of >= 0)
        labels = self.group_of[nodes]
        order = np.argsort(labels, kind="stable")
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        return [nodes[part] for part in np.split(order, bounds)] if len(nodes) else []

    def partition(self) -> set[frozenset[str]]:
        """The groups as sets of keys (tests and the dry run compare these)."""
        keys = self.graph.keys
        return {frozenset(keys[i] for i in group.tolist()) for group in self.groups()}


def resolve(graph: LinkGraph, policy: Policy, as_of_ms: int) -> Resolution:
    """Form identities over ``graph`` under ``policy``, expiring links as of ``as_of_ms``."""
    return _Engine(graph, policy, as_of_ms).run()


class _Engine:
    def __init__(self, graph: LinkGraph, policy: Policy, as_of_ms: int) -> None:
        self.g = graph
        self.policy = policy
        self.as_of = as_of_ms
        rules = [policy.rule(t) for t in graph.type_names]
        self.limits = np.array(
            [r.limit if r.limit is not None else NO_LIMIT for r in rules], dtype=np.int64
        )
        self.priority = np.array([r.priority for r in rules], dtype=np.int64)
        self.ttl_ms = np.array(
            [r.ttl_days * DAY_MS if r.ttl_days is not None else NO_LIMIT for r in rules],
            dtype=np.int64,
        )
        self.anchor_type = np.array(
            [t in policy.anchor_types for t in graph.type_names], dtype=np.bool_
        )
        self.n_types = len(graph.type_names)
        # outranked[t, u]: an identifier of type t over the limit of type u is shared only when
        # u ranks at least as high: a cookie tying 12 emails or a tablet tying 2 crm ids is
        # shared, a crm id with 4 phones is one customer whose weakest phone the limit drops
        self.outranked = self.priority[np.newaxis, :] >= self.priority[:, np.newaxis]
        self.verdict = np.full(len(graph.a), MERGED, dtype=np.int8)
        self.shared_kind = np.zeros(graph.n, dtype=np.int8)
        self.notes: dict[int, SharedNote] = {}
        self._adjacency_of: tuple[npt.NDArray[np.bool_], csr_array] | None = None
        # anchor types a person may hold several of (emails): the device rule judges those
        self.device_types = frozenset(
            t
            for t in range(self.n_types)
            if policy.shared_devices and self.anchor_type[t] and self.limits[t] > 1
        )
        self.device_calls: list[DeviceCall] = []
        self.duplicates: npt.NDArray[np.int32] | None = None
        self.clusters: npt.NDArray[np.int32] | None = None
        self.device_links: dict[int, DeviceCall] = {}

    def run(self) -> Resolution:
        g = self.g
        candidate, observed, matched = self._judged()
        forced = candidate & g.forced
        halo = ~g.region
        self.shared_kind[halo & (g.stored_shared == TWO_HOP)] = TWO_HOP  # stored verdicts
        self._direct(observed)
        if self.policy.two_hop:
            self._two_hop(observed)
        shared = self.shared_kind > 0
        pre = observed & ~shared[g.a] & ~shared[g.b]
        self.verdict[observed & ~pre & ~forced] = SHARED
        pre_labels = component_labels(g.n, g.a[pre], g.b[pre])
        if self._bridges(pre, pre_labels):
            shared = self.shared_kind > 0
            eligible = pre & ~shared[g.a] & ~shared[g.b]
            self.verdict[pre & ~eligible & ~forced] = SHARED
            labels = component_labels(g.n, g.a[eligible], g.b[eligible])
        else:
            eligible, labels = pre, pre_labels
        refused = self._devices(eligible, labels) & ~forced
        if refused.any():
            self.verdict[refused] = DEVICE
            eligible = eligible & ~refused
            labels = component_labels(g.n, g.a[eligible], g.b[eligible])
        if matched.any():
            shared = self.shared_kind > 0
            joins = matched & ~shared[g.a] & ~shared[g.b]
            self.verdict[matched & ~joins & ~forced] = SHARED
            eligible = eligible | joins
        if (forced & ~eligible).any() or matched.any():
            eligible = eligible | forced
            labels = component_labels(g.n, g.a[eligible], g.b[eligible])
        self.duplicates = duplicates(self.g, eligible)
        group_of, quarantined = self._limits_and_breaker(labels, eligible)
        group_of[~g.region] = -1
        # renumber densely
        used = group_of >= 0
        _, dense = np.unique(group_of[used], return_inverse=True)
        group_of[used] = dense
        return Resolution(
            graph=g,
            group_of=group_of,
            n_groups=int(dense.max()) + 1 if len(dense) else 0,
            verdict=self.verdict,
            shared_kind=self.shared_kind,
            shared=self.notes,
            conflicts=self.conflicts,
            quarantined=quarantined,
            devices=self.device_calls,
            device_links=self.device_links,
        )

    # -- 1. candidates -------------------------------------------------------------------

    def _candidates(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """The links that may merge, and those that may as observed (the forced flag aside:
        what the shared rules judge by)."""
        g = self.g
        verdict = self.verdict
        ttl = np.minimum(self.ttl_ms[g.types[g.a]], self.ttl_ms[g.types[g.b]])
        # as_of - last_seen > ttl, written so that "no TTL" cannot overflow
        expired = (self.as_of - g.last_seen) > ttl
        blocked = g.blocked[g.a] | g.blocked[g.b]
        # later verdicts win where several apply: the steward's cut is the most telling
        verdict[expired] = EXPIRED
        verdict[blocked] = BLOCKED
        verdict[~g.mergeable] = THIRD_PARTY
        verdict[g.cut] = CUT
        verdict[g.a == g.b] = CUT
        observed: npt.NDArray[np.bool_] = verdict == MERGED
        # a forced link ignores its party and age, never a block or a cut
        forced = g.forced & ~g.cut & (g.a != g.b)
        verdict[forced] = np.where(blocked[forced], BLOCKED, MERGED)
        candidate: npt.NDArray[np.bool_] = verdict == MERGED
        return candidate, observed

    def _judged(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Candidates, the links the shared rules judge, the links only matched (they merge
        after those rules); notes the clusters of duplicates, which the shared rules count once."""
        candidate, observed = self._candidates()
        matched = observed & self.g.matched & (self.g.count == 0)
        self.clusters = duplicates(self.g, candidate)
        return candidate, observed & ~matched, matched

    # -- 2. shared identifiers -----------------------------------------------------------

    def _adjacency(self, mask: npt.NDArray[np.bool_]) -> csr_array:
        """The symmetric adjacency of the links in ``mask`` (the candidate links: built once)."""
        cached = self._adjacency_of
        if cached is not None and cached[0] is mask:
            return cached[1]
        matrix = self._build_adjacency(mask)
        self._adjacency_of = (mask, matrix)
        return matrix

    def _build_adjacency(self, mask: npt.NDArray[np.bool_]) -> csr_array:
        g = self.g
        a, b = g.a[mask], g.b[mask]
        ones = np.ones(2 * len(a), dtype=np.int32)
        rows = np.concatenate([a, b])
        cols = np.concatenate([b, a])
        return coo_array((ones, (rows, cols)), shape=(g.n, g.n)).tocsr()

    def _direct(self, candidate: npt.NDArray[np.bool_]) -> None:
        g = self.g
        a, b = g.a[candidate].astype(np.int64), g.b[candidate].astype(np.int64)
        self.shared_kind[~g.region & (g.stored_shared == DIRECT)] = DIRECT
        self._flag("direct", DIRECT, np.concatenate([a, b]), np.concatenate([b, a]), g.region)

    def _two_hop(self, candidate: npt.NDArray[np.bool_]) -> None:
        g = self.g
        direct = self.shared_kind == DIRECT
        anchor = self.anchor_type[g.types]
        anchors = np.flatnonzero(anchor & ~direct)
        if not len(anchors):
            return
        adjacency = self._adjacency(candidate)
        to_anchor = adjacency[:, anchors]
        # paths u - v - anchor through a v that is neither direct-shared nor an anchor itself
        # (an anchor's own neighbourhood is judged by its own rules)
        a, b = g.a[candidate], g.b[candidate]
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        via = ~direct[cols] & ~anchor[cols]
        through = coo_array(
            (np.ones(int(via.sum()), dtype=np.int32), (rows[via], cols[via])), shape=(g.n, g.n)
        ).tocsr()
        reach = (through @ to_anchor + to_anchor).tocoo()
        rows, targets = reach.row.astype(np.int64), anchors[reach.col]
        keep = rows != targets
        self._flag("two_hop", TWO_HOP, rows[keep], targets[keep], g.region & ~direct)

    def _flag(
        self,
        kind: str,
        code: int,
        sources: npt.NDArray[np.int64],
        targets: npt.NDArray[np.int64],
        judged: npt.NDArray[np.bool_],
    ) -> None:
        """Mark shared (``code``) the ``judged`` identifiers whose distinct ``targets``
        (pairs ``sources[k]`` -> ``targets[k]``) of some type outnumber that type's limit,
        the type ranking at least as high as their own; note the type and examples."""
        g = self.g
        t = self.n_types
        if self.clusters is not None:  # one customer's duplicate records count once, but
            # not those of the judged identifier's own type (a cluster through it would hide it)
            rep = np.where(
                g.types[targets] == g.types[sources], -1 - targets, self.clusters[targets]
            )
            _, first = np.unique(np.stack([sources, rep]), axis=1, return_index=True)
            sources, targets = sources[first], targets[first]
        cells = sources * t + g.types[targets]
        counts = np.bincount(cells, minlength=g.n * t).reshape(g.n, t)
        over = (counts > self.limits[np.newaxis, :]) & self.outranked[g.types]
        flagged = over.any(axis=1) & judged
        self.shared_kind[flagged] = code
        if not flagged.any():
            return
        reached = csr_array((np.ones(len(sources)), (sources, targets)), shape=(g.n, g.n))
        excess = counts - np.minimum(self.limits, np.iinfo(np.int32).max)[np.newaxis, :]
        for node in np.flatnonzero(flagged).tolist():
            type_ = int(np.argmax(np.where(over[node], excess[node], -1)))
            start, end = reached.indptr[node], reached.indptr[node + 1]
            of_type = sorted(
                g.keys[i] for i in reached.indices[start:end].tolist() if g.types[i] == type_
            )
            self.notes[node] = SharedNote(
                kind=kind,
                type=g.type_names[type_],
                count=int(counts[node, type_]),
                limit=int(self.limits[type_]),
                examples=tuple(of_type[:EXAMPLES]),
            )

    def _bridges(self, pre: npt.NDArray[np.bool_], labels: npt.NDArray[np.int32]) -> bool:
        """Flag the bridge anchors of the components over ``pre``; True if any was found."""
        g = self.g
        t = self.n_types
        anchor_nodes = np.flatnonzero(self.anchor_type[g.types] & g.region)
        cells = labels[anchor_nodes].astype(np.int64) * t + g.types[anchor_nodes]
        counts = np.bincount(cells, minlength=(int(labels.max()) + 1) * t if g.n else 0)
        busy_cells = np.flatnonzero(counts >= 2)
        if not len(busy_cells):
            return False
        busy = np.zeros(int(labels.max()) + 1, dtype=np.bool_)
        busy[busy_cells // t] = True
        links = np.flatnonzero(pre & busy[labels[g.a]])
        by_component: dict[int, list[int]] = defaultdict(list)
        for j, label in zip(links.tolist(), labels[g.a[links]].tolist(), strict=True):
            by_component[label].append(j)
        found = False
        for label in sorted(by_component):
            found |= self._bridges_in(by_component[label])
        return found

    def _bridges_in(self, links: list[int]) -> bool:
        found = bridge_anchors(self.g, links, self.anchor_type)
        for x, note in found:
            self.shared_kind[x] = BRIDGE
            self.notes[x] = note
        return bool(found)

    def _devices(
        self, eligible: npt.NDArray[np.bool_], labels: npt.NDArray[np.int32]
    ) -> npt.NDArray[np.bool_]:
        """The links the device rule refuses (:mod:`identity.resolve.devices`)."""
        found = judge_devices(
            self.g, eligible, labels, self.anchor_type, self.device_types,
            self.policy.max_identity_size,
        )  # fmt: skip
        refused = np.zeros(len(self.g.a), dtype=np.bool_)
        for call, cut in found:
            self.device_calls.append(call)
            refused[cut] = True
            self.device_links.update(dict.fromkeys(cut, call))
        return refused

    # -- 3-4. components, circuit breaker, limits ----------------------------------------

    def _limits_and_breaker(
        self, labels: npt.NDArray[np.int32], eligible: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.int64], list[list[int]]]:
        g = self.g
        self.conflicts: dict[int, LimitConflict] = {}
        group_of = labels.astype(np.int64)
        n_labels = int(labels.max()) + 1 if g.n else 0
        sizes = np.bincount(labels, minlength=n_labels)
        next_label = n_labels
        quarantined: list[list[int]] = []
        bound = self.policy.max_identity_size
        too_big = np.flatnonzero(sizes > bound) if bound is not None else np.zeros(0, np.intp)
        if len(too_big):
            big = np.zeros(n_labels, dtype=np.bool_)
            big[too_big] = True
            in_big = big[labels]
            self.verdict[eligible & in_big[g.a]] = QUARANTINED
            eligible = eligible & ~in_big[g.a]
            for label in too_big.tolist():
                members = np.flatnonzero(labels == label)
                if g.region[members].any():
                    quarantined.append(sorted(members.tolist(), key=g.keys.__getitem__))
            members = np.flatnonzero(in_big)
            group_of[members] = np.arange(next_label, next_label + len(members))
            next_label += len(members)
        t = self.n_types
        cells = labels.astype(np.int64) * t + g.types
        if self.duplicates is not None:  # one count per cluster of duplicates
            cells = np.unique(np.stack([cells, self.duplicates.astype(np.int64)]), axis=1)[0]
        counts = np.bincount(cells, minlength=n_labels * t).reshape(n_labels, t)
        over: npt.NDArray[np.bool_] = np.asarray((counts > self.limits[np.newaxis, :]).any(axis=1))
        if len(too_big):
            over[too_big] = False
        breaking = np.flatnonzero(over)
        if not len(breaking):
            return group_of, quarantined
        in_breaking = np.zeros(n_labels, dtype=np.bool_)
        in_breaking[breaking] = True
        links = np.flatnonzero(eligible & in_breaking[labels[g.a]])
        by_component: dict[int, list[int]] = defaultdict(list)
        for j, label in zip(links.tolist(), labels[g.a[links]].tolist(), strict=True):
            by_component[label].append(j)
        for label in breaking.tolist():
            for part in self._split(by_component.get(label, [])):
                group_of[part] = next_label
                next_label += 1
        return group_of, quarantined

    def _split(self, links: list[int]) -> list[list[int]]:
        """Kruskal under limits (:func:`~identity.resolve.local.split_under_limits`)."""
        parts, conflicts = split_under_limits(
            self.g, links, self.priority, self.limits, self.duplicates
        )
        for j, conflict in conflicts.items():
            self.verdict[j] = LIMIT
            self.conflicts[j] = conflict
        return parts


def direct_shared(graph: LinkGraph, policy: Policy, as_of_ms: int) -> npt.NDArray[np.bool_]:
    """Which region identifiers the direct rule finds shared now (the incremental reader
    uses it to tell the identifiers whose direct verdict cannot have changed)."""
    engine = _Engine(graph, policy, as_of_ms)
    engine._direct(engine._judged()[1])
    flagged: npt.NDArray[np.bool_] = engine.shared_kind == DIRECT
    return flagged
