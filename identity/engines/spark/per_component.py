"""The rules that look at one component, run where the component is (``applyInPandas``).

Each function receives the links of one component as a pandas frame (:data:`COMPONENT`:
link id, ends as ids, keys and types, count, first and last seen, the steward's forced flag),
builds the component's :class:`~identity.resolve.graph.LinkGraph` and calls the very code the
default engine calls (:func:`~identity.resolve.local.bridge_anchors`,
:func:`~identity.resolve.devices.shared_devices`,
:func:`~identity.resolve.local.split_under_limits`), then returns what it found with global
ids. No second copy of a rule lives here.

Memory: one component at a time on an executor; components are bounded by the circuit
breaker for the device rule and the limit split (``max_identity_size``), not for the bridge
test, which runs on the components holding two anchors of one type before the breaker (as
the default engine does).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from identity.engines.spark.exchange import Rules
from identity.resolve.devices import shared_devices
from identity.resolve.graph import LinkGraph
from identity.resolve.local import NO_LIMIT, bridge_anchors, split_under_limits

COMPONENT = [
    "label",
    "id",
    "a",
    "b",
    "a_key",
    "b_key",
    "ta",
    "tb",
    "count",
    "first_seen",
    "last_seen",
    "forced",
]
BRIDGES = "id long, type string, count long, examples array<string>"
DEVICES = (
    "type string, device array<string>, kept array<string>, other array<string>, "
    "split boolean, refused array<long>"
)
PARTS = (
    "id long, part long, link long, conflict_type string, conflict_limit long, "
    "conflict_identifiers array<string>"
)

Frame = Callable[[pd.DataFrame], pd.DataFrame]


class _Component:
    """One component's links as a LinkGraph (node index -> global id, link index -> id)."""

    def __init__(self, frame: pd.DataFrame, types: list[str]) -> None:
        ends = np.concatenate([frame["a"].to_numpy(), frame["b"].to_numpy()])
        keys = np.concatenate([frame["a_key"].to_numpy(), frame["b_key"].to_numpy()])
        kinds = np.concatenate([frame["ta"].to_numpy(), frame["tb"].to_numpy()])
        self.ids, first, local = np.unique(ends, return_index=True, return_inverse=True)
        n, m = len(self.ids), len(frame)
        self.links = frame["id"].to_numpy()
        self.graph = LinkGraph(
            keys=[str(k) for k in keys[first]],
            type_names=types,
            types=kinds[first].astype(np.int16),
            blocked=np.zeros(n, dtype=np.bool_),
            region=np.ones(n, dtype=np.bool_),
            stored_shared=np.zeros(n, dtype=np.int8),
            a=local[:m].astype(np.int32),
            b=local[m:].astype(np.int32),
            count=frame["count"].to_numpy().astype(np.int64),
            first_seen=frame["first_seen"].to_numpy().astype(np.int64),
            last_seen=frame["last_seen"].to_numpy().astype(np.int64),
            mergeable=np.ones(m, dtype=np.bool_),
            cut=np.zeros(m, dtype=np.bool_),
            forced=frame["forced"].to_numpy().astype(np.bool_),
        )
        self.all_links = list(range(m))


def _frame(columns: dict[str, list[object]]) -> pd.DataFrame:
    """A frame of Python values (object columns: Arrow converts an empty one, or one with
    nulls, to the schema's type, where pandas would guess a float)."""
    return pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})


def bridges(rules: Rules) -> Frame:
    """The bridge anchors of a component: ``id``, the type and count of groups, examples."""
    anchor = np.array(rules.anchor, dtype=np.bool_)

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        c = _Component(frame, rules.types)
        found = bridge_anchors(c.graph, c.all_links, anchor)
        return _frame(
            {
                "id": [int(c.ids[x]) for x, _ in found],
                "type": [note.type for _, note in found],
                "count": [note.count for _, note in found],
                "examples": [list(note.examples) for _, note in found],
            }
        )

    return run


def devices(rules: Rules) -> Frame:
    """The device calls of a component, each with the ids of the links it refuses."""
    anchor = np.array(rules.anchor, dtype=np.bool_)
    judged = frozenset(rules.device_types)

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        c = _Component(frame, rules.types)
        found = shared_devices(c.graph, c.all_links, anchor, judged)
        return _frame(
            {
                "type": [call.type for call, _ in found],
                "device": [list(call.device) for call, _ in found],
                "kept": [list(call.kept) for call, _ in found],
                "other": [list(call.other) for call, _ in found],
                "split": [call.split for call, _ in found],
                "refused": [[int(c.links[j]) for j in cut] for _, cut in found],
            }
        )

    return run


def parts(rules: Rules) -> Frame:
    """The limit split of a component: a row per identifier (``id``, ``part``: the smallest
    id of its part) and a row per refused link (``link`` with its conflict)."""
    priority = np.array(rules.priority, dtype=np.int64)
    limits = np.array([NO_LIMIT if x is None else x for x in rules.limits], dtype=np.int64)

    def run(frame: pd.DataFrame) -> pd.DataFrame:
        c = _Component(frame, rules.types)
        found, conflicts = split_under_limits(c.graph, c.all_links, priority, limits)
        ids = [int(c.ids[node]) for part in found for node in part]
        part_of = [int(c.ids[part].min()) for part in found for _ in part]
        none = [None] * len(ids)
        refused = sorted(conflicts)
        return _frame(
            {
                "id": ids + [None] * len(refused),
                "part": part_of + [None] * len(refused),
                "link": none + [int(c.links[j]) for j in refused],
                "conflict_type": none + [conflicts[j].type for j in refused],
                "conflict_limit": none + [conflicts[j].limit for j in refused],
                "conflict_identifiers": none + [list(conflicts[j].identifiers) for j in refused],
            }
        )

    return run
