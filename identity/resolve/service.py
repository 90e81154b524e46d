"""``idgraph resolve``: read what changed, form identities, write only the difference.

A run is *full* (every identifier) when asked, when no run ever completed, when the policy
changed since the last completed run, or when the last full run was interrupted; otherwise it
is *incremental*: the region around the identifiers touched by the batches loaded since (and
the links whose TTL ran out since), read through indexes, never by scanning the graph. Both
go through the same engine, so an incremental run gives exactly what a full one would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from identity.context import ServiceContext
from identity.model import Event, split_key
from identity.policy import Policy
from identity.profiles.precedence import Summary
from identity.profiles.service import (
    mark_profiles_built,
    new_profile,
    profiles_outdated,
    refresh_profiles,
    stated_members,
)
from identity.resolve.engine import Resolution, resolve
from identity.resolve.graph import DAY_MS, SHARED_KINDS, LinkGraph
from identity.resolve.lineage import Plan, plan
from identity.resolve.snapshot import Snapshot, read_full, read_region
from identity.store.activity import seconds_properties
from identity.store.identities import (
    identities_of,
    write_device_reviews,
    write_flags,
    write_units,
)
from identity.store.runs import (
    ResolveLock,
    begin_run,
    fail_run,
    finish_run,
    last_completed_run,
    last_run,
    links_seen_between,
    pending_batches,
    touched_keys,
)

Progress = Callable[[str, int, int | None], None]  # step, done, total


class Engine(Protocol):
    """What forms identities from the graph a resolve read (docs/architecture.md,
    "Resolution engines"): the default one in memory, the Spark one, or results computed
    elsewhere and imported. Whichever it is, lineage and profiles are written the same way."""

    name: str
    first_seen: bool  # every link's first_seen must be read with the graph
    notes: list[str]  # how its last run went, for the report

    def resolve(self, graph: LinkGraph, policy: Policy, as_of_ms: int) -> Resolution: ...


class LocalEngine:
    """The default engine: :func:`identity.resolve.engine.resolve`, in this process."""

    name = "local"
    first_seen = False

    def __init__(self) -> None:
        self.notes: list[str] = []

    def resolve(self, graph: LinkGraph, policy: Policy, as_of_ms: int) -> Resolution:
        return resolve(graph, policy, as_of_ms)


@dataclass
class Quarantined:
    id: str
    size: int
    sample: list[str]


@dataclass
class ResolveReport:
    run: str
    mode: str  # full | incremental
    why: str
    dry_run: bool
    as_of: datetime
    batches: list[str]
    identifiers: int = 0
    links: int = 0
    identities: int = 0
    plan: dict[str, int] = field(default_factory=dict)
    shared: int = 0
    shared_changed: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    devices_split: int = 0  # two people on one device: split, listed for review
    devices_kept: int = 0  # one device, one after the other: kept together, listed for review
    changes: list[str] = field(default_factory=list)
    profiles: int = 0  # profiles that changed
    seconds: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    engine_notes: list[str] = field(default_factory=list)


def resolve_identities(
    ctx: ServiceContext,
    *,
    full: bool = False,
    dry_run: bool = False,
    as_of: datetime | None = None,
    wait: float = 0.0,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> ResolveReport:
    """Resolve identities (see the module docstring); ``dry_run`` computes and writes nothing.
    ``engine`` forms the identities (default: :class:`LocalEngine`).

    The events of the run are recorded for ``ctx.actor`` (a steward whose action the run
    applies), by default ``idgraph resolve (full|incremental)``.
    """
    run = str(uuid.uuid4())
    lock = ResolveLock(ctx.graph, run)
    if not dry_run:
        lock.acquire(wait)
    try:
        return _Run(ctx, run, progress, engine or LocalEngine()).go(full, dry_run, as_of, ctx.actor)
    finally:
        if not dry_run:
            lock.release()


class _Run:
    def __init__(
        self, ctx: ServiceContext, run: str, progress: Progress | None, engine: Engine
    ) -> None:
        self.engine = engine
        self.graph = ctx.graph
        self.settings = ctx.settings
        self.policy = ctx.policy
        self.run = run
        self.progress = progress or (lambda step, done, total: None)
        self.normalizer = ctx.normalizer
        self.clock = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.touched: set[str] | None = None  # the pending batches' touched keys, once read
        self.previous_as_of = 0  # as_of of the last completed run (incremental runs)

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = round(self.seconds.get(step, 0.0) + now - self.clock, 3)
        self.clock = now

    def go(
        self, full: bool, dry_run: bool, as_of: datetime | None, actor: str | None
    ) -> ResolveReport:
        as_of_ms = int((as_of.timestamp() if as_of else time.time()) * 1000)
        mode, why = self._mode(full)
        batches = pending_batches(self.graph)
        report = ResolveReport(
            run=self.run,
            mode=mode,
            why=why,
            dry_run=dry_run,
            as_of=datetime.fromtimestamp(as_of_ms / 1000).astimezone(),
            batches=batches,
            engine=self.engine.name,
        )
        if not dry_run:
            begin_run(
                self.graph,
                {
                    "id": self.run,
                    "mode": mode,
                    "engine": self.engine.name,
                    "why": why,
                    "as_of": as_of_ms,
                    "policy": self.policy.fingerprint(),
                    "started_ms": int(time.time() * 1000),
                    "batches": batches,
                },
            )
        try:
            if mode == "full":
                self.progress("read", 0, None)
                snapshot = read_full(
                    self.graph,
                    self.policy,
                    self.normalizer,
                    lambda step, n: self.progress(f"read {step}", n, None),
                    first_seen=self.engine.first_seen,
                )
            else:
                seeds = self._seeds(batches, as_of_ms)
                snapshot = read_region(self.graph, self.policy, self.normalizer, seeds, as_of_ms)
            self.lap("read")
            self.progress(f"compute ({self.engine.name})", 0, None)
            resolution = self.engine.resolve(snapshot.graph, self.policy, as_of_ms)
            report.engine_notes = self.engine.notes
            changes = plan(resolution, snapshot.old, snapshot.identities)
            self.lap("compute")
            shared_rows = _shared_changes(snapshot, resolution)
            quarantines, released = _quarantines(snapshot, resolution)
            self._fill(report, snapshot, resolution, changes, shared_rows, quarantines)
            if dry_run:
                report.seconds = self.seconds
                return report
            total = len(changes.units)
            built = self._new_profiles(mode, snapshot, changes)
            self.lap("profiles")  # the new identities' profiles, built to be written with them
            self.progress("write", 0, total)
            write_units(
                self.graph,
                changes.units,
                run=self.run,
                at_ms=int(time.time() * 1000),
                actor=actor or f"idgraph resolve ({mode})",
                batches=batches if mode == "incremental" else [],
                writers=self.settings.writers,
                on_commit=lambda done: self.progress("write", done, total),
            )
            write_flags(
                self.graph,
                self.run,
                shared_rows,
                [
                    {"id": q.id, "size": q.size, "sample": q.sample, "keys": keys}
                    for q, keys in quarantines
                ],
                released,
                int(time.time() * 1000),
            )
            region = None if mode == "full" else _region_keys(snapshot)
            write_device_reviews(
                self.graph, self.run, _device_rows(resolution), region, int(time.time() * 1000)
            )
            self.lap("write")
            report.profiles = built + self._profiles(mode, batches, changes, built)
            self.lap("profiles")
            report.seconds = self.seconds
            finish_run(
                self.graph,
                self.run,
                batches,
                {
                    "as_of": as_of_ms,
                    **changes.summary(),
                    "identifiers": report.identifiers,
                    **seconds_properties(self.seconds),
                },
            )
            return report
        except BaseException as e:
            if not dry_run:
                fail_run(self.graph, self.run, f"{type(e).__name__}: {e}")
            raise

    def _new_profiles(self, mode: str, snapshot: Snapshot, changes: Plan) -> int:
        """A full run builds the profiles of the identities it creates from what it read
        (members' first and last seen and types, and the identifiers that say something),
        so they are written with the identities, not read back. Returns how many."""
        fresh = [u for u in changes.units if u.fresh]
        if mode != "full" or not fresh:
            return 0
        rules, now = self.policy.profiles, datetime.now(UTC)
        g, seen = snapshot.graph, snapshot.seen
        stated = stated_members(self.graph)
        for unit in fresh:
            nodes = [g.index[key] for key in unit.members]
            firsts = [f for f in seen[nodes, 0].tolist() if f >= 0]
            lasts = [t for t in seen[nodes, 1].tolist() if t >= 0]
            counts: dict[str, int] = {}
            for node in nodes:
                type_ = g.type_of(node)
                counts[type_] = counts.get(type_, 0) + 1
            summary = Summary(min(firsts, default=None), max(lasts, default=None), counts)
            members = [stated[key] for key in unit.members if key in stated]
            unit.profile = new_profile(members, summary, rules, now)
        return len(fresh)

    def _profiles(self, mode: str, batches: list[str], changes: Plan, built: int) -> int:
        """Rebuild the profiles this run changed: those of the identities it wrote (except
        the new ones, built with them), of those merged away (emptied) and of those holding
        identifiers the pending batches touched (their data changed). Every profile when the
        precedence rules changed, or none was ever recorded as built."""
        rules = self.policy.profiles
        merged = {m["loser"] for u in changes.units for m in u.merged}

        def report(done: int) -> None:
            self.progress("profiles", done, None)

        if profiles_outdated(self.graph, rules):
            if mode == "full" and 0 < built == len(changes.units) and not self._has_older(changes):
                mark_profiles_built(self.graph, rules)  # the first run: every one is new
                return 0
            workers = self.settings.writers
            done = refresh_profiles(self.graph, rules, None, workers=workers, progress=report)
            return done + refresh_profiles(self.graph, rules, merged)
        written = {str(x["id"]) for u in changes.units if not u.fresh for x in u.identities}
        if self.touched is None:  # a full run: the seeds were not read
            self.touched = touched_keys(self.graph, batches) if batches else set()
        touched = self.touched
        targets = set(identities_of(self.graph, sorted(touched))) | written | merged
        if built:  # new identities whose members a pending batch touched: built already
            targets -= {str(u.identities[0]["id"]) for u in changes.units if u.fresh}
        return refresh_profiles(
            self.graph, rules, targets, workers=self.settings.writers, progress=report
        )

    def _has_older(self, changes: Plan) -> bool:
        """Whether identities exist that this run did not create (their profiles may lack)."""
        return changes.unchanged > 0 or any(not u.fresh for u in changes.units)

    def _mode(self, full: bool) -> tuple[str, str]:
        if full:
            return "full", "asked for"
        done = last_completed_run(self.graph)
        if done is None:
            return "full", "no resolve has completed yet"
        if done.get("policy") != self.policy.fingerprint():
            return "full", "the policy changed since the last resolve"
        last = last_run(self.graph)
        if last is not None and last.get("status") != "completed" and last.get("mode") == "full":
            return "full", "the last full resolve did not finish"
        self.previous_as_of = int(done.get("as_of", 0))
        return "incremental", "batches loaded since the last resolve"

    def _seeds(self, batches: list[str], as_of_ms: int) -> set[str]:
        """Identifiers touched by the batches, and ends of links whose TTL ran out since."""
        self.touched = touched_keys(self.graph, batches) if batches else set()
        seeds = set(self.touched)
        ttls = sorted({r.ttl_days for r in self.policy.rules.values() if r.ttl_days is not None})
        before = self.previous_as_of
        for ttl in ttls:
            span = ttl * DAY_MS
            low, high = sorted((before - span, as_of_ms - span))
            if low == high:
                continue
            for a, b in links_seen_between(self.graph, low, high):
                link_ttl = min(
                    self.policy.rule(split_key(a)[0]).ttl_days or 10**9,
                    self.policy.rule(split_key(b)[0]).ttl_days or 10**9,
                )
                if link_ttl == ttl:
                    seeds.update((a, b))
        return seeds

    def _fill(
        self,
        report: ResolveReport,
        snapshot: Snapshot,
        resolution: Resolution,
        changes: Plan,
        shared_rows: list[dict[str, Any]],
        quarantines: list[tuple[Quarantined, list[str]]],
    ) -> None:
        g = snapshot.graph
        report.identifiers = int(g.region.sum())
        report.links = len(g.a)
        report.identities = resolution.n_groups
        report.plan = changes.summary()
        report.shared = int(((resolution.shared_kind > 0) & g.region).sum())
        report.shared_changed = len(shared_rows)
        report.quarantined = [q for q, _ in quarantines]
        report.devices_split = sum(1 for c in resolution.devices if c.split)
        report.devices_kept = sum(1 for c in resolution.devices if not c.split)
        for unit in changes.units:
            for event in unit.events:
                report.changes.append(_describe(event))


def _shared_changes(snapshot: Snapshot, resolution: Resolution) -> list[dict[str, Any]]:
    g = snapshot.graph
    rows: list[dict[str, Any]] = []
    region = np.flatnonzero(g.region)
    kinds = resolution.shared_kind
    for i in region[(kinds[region] > 0)].tolist():
        key = g.keys[i]
        kind = SHARED_KINDS[int(kinds[i])]
        note = resolution.shared.get(i)
        reason = note.reason if note else ""
        if snapshot.shared.get(key) != (kind, reason):
            rows.append({"key": key, "kind": kind, "reason": reason})
    for key in snapshot.shared:
        i = g.index.get(key)
        if i is not None and g.region[i] and kinds[i] == 0:
            rows.append({"key": key, "kind": None, "reason": None})
    return rows


def _quarantines(
    snapshot: Snapshot, resolution: Resolution
) -> tuple[list[tuple[Quarantined, list[str]]], list[str]]:
    g = snapshot.graph
    found: list[tuple[Quarantined, list[str]]] = []
    now: set[str] = set()
    for members in resolution.quarantined:
        keys = [g.keys[i] for i in members]
        now.update(keys)
        qid = "q-" + uuid.uuid5(uuid.NAMESPACE_URL, keys[0]).hex[:16]
        found.append((Quarantined(qid, len(keys), keys[:10]), keys))
    released = sorted(snapshot.quarantined - now)
    return found, released


def _region_keys(snapshot: Snapshot) -> list[str]:
    g = snapshot.graph
    return [g.keys[i] for i in np.flatnonzero(g.region).tolist()]


def _device_rows(resolution: Resolution) -> list[dict[str, Any]]:
    """The resolution's device calls as review rows, each id from its device and sides."""
    return [
        {
            "id": "d-" + uuid.uuid5(uuid.NAMESPACE_URL, " ".join(c.device + c.other)).hex[:16],
            "type": c.type,
            "device": list(c.device),
            "kept": list(c.kept),
            "other": list(c.other),
            "split": c.split,
            "reason": c.reason,
        }
        for c in resolution.devices
    ]


def _describe(event: Event) -> str:
    ids = [identity for identity, _ in event.identities]
    if event.kind == "merged":
        return f"merge {ids[0]} into {ids[1]}: {event.reason}"
    if event.kind == "split":
        return f"split {ids[0]} into {', '.join(ids[1:])}: {event.reason}"
    return f"create {ids[0]}: {event.reason}"
