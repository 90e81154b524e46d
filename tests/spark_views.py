"""Comparing resolutions from two engines, by keys (their node and link orders may differ)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from identity.config import Settings
from identity.resolve.engine import Resolution
from identity.resolve.graph import LinkRow, NodeRow

# one Spark session for the test run: two cores, as on CI
SPARK = Settings(spark_master="local[2]", spark_driver_memory="2g")


def by_key(res: Resolution) -> dict[str, Any]:
    """Everything a resolution decided, keyed by identifier keys and pairs of keys."""
    g = res.graph
    keys = g.keys

    def pair(j: int) -> tuple[str, str]:
        a, b = keys[int(g.a[j])], keys[int(g.b[j])]
        return (a, b) if a < b else (b, a)

    return {
        "partition": res.partition(),
        "verdicts": {pair(j): int(v) for j, v in enumerate(res.verdict.tolist())},
        "shared": {keys[i]: int(s) for i, s in enumerate(res.shared_kind.tolist()) if s},
        "notes": {keys[i]: note for i, note in res.shared.items()},
        "conflicts": {pair(j): c for j, c in res.conflicts.items()},
        "quarantined": {frozenset(keys[i] for i in q) for q in res.quarantined},
        "devices": set(res.devices),
        "device_links": {pair(j): call for j, call in res.device_links.items()},
    }


def differences(local: Resolution, other: Resolution) -> dict[str, Any]:
    """What differs between two resolutions of the same graph (empty: the same answer)."""
    a, b = by_key(local), by_key(other)
    found: dict[str, Any] = {}
    for name in a:
        if a[name] == b[name]:
            continue
        if isinstance(a[name], dict):
            found[name] = {
                k: (a[name].get(k), b[name].get(k))
                for k in set(a[name]) | set(b[name])
                if a[name].get(k) != b[name].get(k)
            }
        else:
            found[name] = {"only here": a[name] - b[name], "only there": b[name] - a[name]}
    return found


def disjoint_union(
    graphs: list[tuple[list[NodeRow], list[LinkRow]]],
) -> tuple[list[NodeRow], list[LinkRow]]:
    """Several graphs as one, each key prefixed with its graph's number after the type: every
    rule looks at a node's neighbourhood or its component, so each graph resolves in the union
    as it would alone, and one engine run checks them all."""

    def renamed(key: str, n: int) -> str:
        type_, value = key.split(":", 1)
        return f"{type_}:g{n}.{value}"

    nodes: list[NodeRow] = []
    links: list[LinkRow] = []
    for n, (graph_nodes, graph_links) in enumerate(graphs):
        nodes.extend(replace(row, key=renamed(row.key, n)) for row in graph_nodes)
        links.extend(replace(row, a=renamed(row.a, n), b=renamed(row.b, n)) for row in graph_links)
    return nodes, links
