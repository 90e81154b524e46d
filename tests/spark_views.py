"""Comparing resolutions from two engines, by keys (their node and link orders may differ)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from identity.config import Settings
from identity.resolve.engine import Resolution
from identity.resolve.graph import LinkRow, NodeRow
from tests.test_engine import by_key as engine_view

# one Spark session for the test run: two cores, as on CI
SPARK = Settings(spark_master="local[2]", spark_driver_memory="2g")


def by_key(res: Resolution) -> dict[str, Any]:
    """Everything a resolution decided, by keys (:func:`tests.test_engine.by_key`), with the
    device calls and the links each refused."""
    g = res.graph

    def pair(j: int) -> frozenset[str]:
        return frozenset((g.keys[g.a[j]], g.keys[g.b[j]]))

    return {
        **engine_view(res),
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
            found[name] = {"here": a[name], "there": b[name]}
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
