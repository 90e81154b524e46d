"""Stable identity ids across resolutions, and the events that record each change.

Given the identities as they stand (``old``: identifier key -> identity) and the new groups
from :func:`identity.resolve.engine.resolve`, decide which id each group carries:

- every old identity has one *heir*: the new group holding most of its members (ties: the
  group holding its smallest member key);
- a group that is the heir of one or more old identities keeps the id of the oldest of them
  (earliest ``created_at``, then smallest id); the others are *merged into* it and keep
  pointing to it;
- a group that is nobody's heir gets a new id.

Old identities whose members went to more than one group were *split*. Each change (created,
merged, split) becomes an event naming its cause: the link that joined two identities, or the
rule that cut the links between the parts. Groups whose id and members did not change produce
nothing, so a resolution that changes nothing writes nothing.

The plan is cut into *units*: the old identities and new groups that share identifiers, closed
transitively. Units are independent; the writer commits each one whole, so an interrupted
write leaves every identity either as it was or as it should be.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from identity.model import Event, OldIdentity, Unit, new_id
from identity.resolve.components import UnionFind
from identity.resolve.engine import BLOCKED, CUT, LIMIT, MERGED, SHARED, VERDICTS, Resolution


@dataclass
class Plan:
    units: list[Unit]
    created: int = 0
    merged: int = 0
    split: int = 0
    unchanged: int = 0
    moved: int = 0

    def summary(self) -> dict[str, int]:
        return {
            "created": self.created,
            "merged": self.merged,
            "split": self.split,
            "unchanged": self.unchanged,
            "moved": self.moved,
        }


def plan(
    resolution: Resolution,
    old: Mapping[str, str],
    identities: Mapping[str, OldIdentity],
) -> Plan:
    """The changes that take the stored identities to ``resolution``'s groups."""
    return _Planner(resolution, old, identities).run()


class _Planner:
    def __init__(
        self,
        resolution: Resolution,
        old: Mapping[str, str],
        identities: Mapping[str, OldIdentity],
    ) -> None:
        self.r = resolution
        self.g = resolution.graph
        self.old = old
        self.identities = identities
        self._adjacent: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None

    def run(self) -> Plan:
        """Sort groups into unchanged, fresh and the rest with numpy; only the rest (merges
        and splits) goes through the detailed pass."""
        g, r = self.g, self.r
        codes = np.full(g.n, -1, dtype=np.int64)
        code_of: dict[str, int] = {}
        for key, oid in self.old.items():
            i = g.index.get(key)
            if i is not None and g.region[i]:
                codes[i] = code_of.setdefault(oid, len(code_of))
        n_groups = r.n_groups
        members = np.flatnonzero(r.group_of >= 0)
        labels, member_codes = r.group_of[members], codes[members]
        count = np.bincount(labels, minlength=n_groups)
        high = np.full(n_groups, -1, dtype=np.int64)
        np.maximum.at(high, labels, member_codes)
        low = np.full(n_groups, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(low, labels, member_codes)
        old_size = np.bincount(codes[codes >= 0], minlength=len(code_of))
        whole = (low == high) & (low >= 0)
        unchanged = whole & (count == old_size[np.where(whole, low, 0)] if len(code_of) else False)
        fresh = high < 0
        result = Plan(units=[], unchanged=int(np.sum(unchanged)))
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(n_groups + 1)).tolist()
        ordered = members[order].tolist()
        keys = g.keys
        fresh_list = fresh.tolist()
        mixed: list[list[str]] = []
        node_ids = g.node_ids.tolist()
        for gi in np.flatnonzero(~unchanged).tolist():
            nodes = ordered[bounds[gi] : bounds[gi + 1]]
            group = [keys[i] for i in nodes]
            if fresh_list[gi]:
                gid = new_id()
                sample = _sample(heapq.nsmallest(3, group), len(group))
                result.units.append(
                    Unit(
                        identities=[{"id": gid, "size": len(group), "new": True}],
                        members=group,
                        member_nodes=[node_ids[i] for i in nodes],
                        events=[Event("created", "new identifiers: " + sample, [(gid, "created")])],
                        fresh=True,
                    )
                )
                result.created += 1
                result.moved += len(group)
            else:
                mixed.append(sorted(group))
        if mixed:
            self._changes(mixed, result)
        return result

    def _changes(self, keys_of: list[list[str]], result: Plan) -> None:
        """Merges and splits among ``keys_of`` (groups holding identifiers of old identities
        that changed)."""
        old = self.old
        members_old: dict[str, list[str]] = defaultdict(list)  # old id -> member keys in region
        spread: dict[str, Counter[int]] = defaultdict(Counter)  # old id -> group -> count
        for gi, keys in enumerate(keys_of):
            for key in keys:
                oid = old.get(key)
                if oid is not None:
                    members_old[oid].append(key)
                    spread[oid][gi] += 1
        heir: dict[str, int] = {}
        for oid, counts in spread.items():
            best = max(counts.values())
            tied = [gi for gi, c in counts.items() if c == best]
            # ties: the part holding the smallest of the old members
            mine = set(members_old[oid])
            heir[oid] = min(tied, key=lambda gi: min(mine.intersection(keys_of[gi])))
        claimants: dict[int, list[str]] = defaultdict(list)
        for oid, gi in heir.items():
            claimants[gi].append(oid)
        assigned: list[str] = []
        winners: dict[int, str] = {}
        for gi in range(len(keys_of)):
            claims = sorted(claimants.get(gi, []), key=self._age)
            if claims:
                winners[gi] = claims[0]
                assigned.append(claims[0])
            else:
                assigned.append(new_id())
        # units: groups and old ids sharing identifiers
        sets = UnionFind()
        for gi, keys in enumerate(keys_of):
            node = f"g{gi}"
            sets.add(node)
            for key in keys:
                prior = old.get(key)
                if prior is not None:
                    sets.union(node, f"o{prior}")
        units: dict[str, Unit] = defaultdict(Unit)
        for gi, keys in enumerate(keys_of):
            unit = units[sets.find(f"g{gi}")]
            gid = assigned[gi]
            unit.identities.append({"id": gid, "size": len(keys), "new": gi not in winners})
            moves: list[dict[str, object]] = [
                {"key": key, "node": int(self.g.node_ids[self.g.index[key]]), "id": gid}
                for key in keys
                if old.get(key) != gid
            ]
            unit.moves.extend(moves)
            result.moved += len(moves)
            for loser in claimants.get(gi, []):
                if loser == gid:
                    continue
                unit.merged.append({"loser": loser, "winner": gid})
                unit.events.append(
                    Event(
                        "merged",
                        self._merge_cause(members_old[loser], keys),
                        [(loser, "merged"), (gid, "survivor")],
                    )
                )
                result.merged += 1
        for oid, counts in sorted(spread.items()):
            if len(counts) < 2:
                continue
            parts = sorted(counts, key=lambda gi: (gi != heir[oid], keys_of[gi][0]))
            unit = units[sets.find(f"o{oid}")]
            kept = set(keys_of[heir[oid]]) & set(members_old[oid])
            roles = [(oid, "split")] + [(assigned[gi], "part") for gi in parts]
            causes = [
                self._split_cause(kept, set(keys_of[gi]) & set(members_old[oid]))
                for gi in parts
                if gi != heir[oid]
            ]
            reason = "; ".join(dict.fromkeys(causes))
            unit.events.append(Event("split", reason, roles))
            result.split += 1
        result.units.extend(units[root] for root in sorted(units))

    def _age(self, oid: str) -> tuple[int, str]:
        known = self.identities.get(oid)
        return (known.created_at if known else 2**62, oid)

    def _links_of(self, node: int) -> list[int]:
        """The links of ``node`` (an index over both ends, built with numpy on first use)."""
        if self._adjacent is None:
            ends = np.concatenate([self.g.a, self.g.b])
            order = np.argsort(ends, kind="stable")
            starts = np.searchsorted(ends[order], np.arange(self.g.n + 1))
            self._adjacent = (order % len(self.g.a) if len(self.g.a) else order, starts)
        order, starts = self._adjacent
        links: list[int] = order[starts[node] : starts[node + 1]].tolist()
        return links

    def _describe(self, j: int) -> str:
        g, r = self.g, self.r
        a, b = g.keys[int(g.a[j])], g.keys[int(g.b[j])]
        verdict = int(r.verdict[j])
        text = f"{a} - {b}"
        if verdict == LIMIT and j in r.conflicts:
            c = r.conflicts[j]
            return f"{text} refused: {c.type} limit {c.limit} ({', '.join(c.identifiers)})"
        if verdict == SHARED:
            for end in (int(g.a[j]), int(g.b[j])):
                note = r.shared.get(end)
                if note is not None:
                    return f"{text} not used: {g.keys[end]} is shared ({note.reason})"
            return f"{text} not used: a shared identifier"
        if verdict == CUT:
            return f"{text} cut by a steward"
        if verdict == BLOCKED:
            ends = (k for k in (a, b) if g.blocked[g.index[k]])
            return f"{text} not used: {next(ends, a)} is blocked"
        return f"{text}: {VERDICTS[verdict]}"

    def _merge_cause(self, loser_keys: list[str], group_keys: list[str]) -> str:
        g, r = self.g, self.r
        inside = {g.index[k] for k in loser_keys}
        group = {g.index[k] for k in group_keys}
        for node in sorted(inside, key=g.keys.__getitem__):
            for j in self._links_of(node):
                other = int(g.b[j]) if int(g.a[j]) == node else int(g.a[j])
                if r.verdict[j] == MERGED and other in group and other not in inside:
                    forced = " (forced by a steward)" if g.forced[j] else ""
                    return f"linked by {g.keys[int(g.a[j])]} - {g.keys[int(g.b[j])]}{forced}"
        return "linked through new identifiers"

    def _split_cause(self, kept: set[str], part: set[str]) -> str:
        g = self.g
        part_nodes = {g.index[k] for k in part}
        kept_nodes = {g.index[k] for k in kept}
        found: list[int] = []
        for node in sorted(part_nodes, key=g.keys.__getitem__):
            for j in self._links_of(node):
                other = int(g.b[j]) if int(g.a[j]) == node else int(g.a[j])
                if other not in part_nodes and self.r.verdict[j] != MERGED:
                    found.append(j)
            if found and kept_nodes:
                break
        if not found:
            return "links no longer there: " + _sample(sorted(part))
        return self._describe(min(found, key=lambda j: (int(self.r.verdict[j]) != LIMIT, j)))


def _sample(keys: list[str], total: int | None = None, n: int = 3) -> str:
    """The first ``n`` of ``keys`` and how many more there are (of ``total``)."""
    total = len(keys) if total is None else total
    shown = ", ".join(keys[:n])
    return shown + (f" and {total - n} more" if total > n else "")
