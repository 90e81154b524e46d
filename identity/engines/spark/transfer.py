"""Moving a job's files between Neo4j and a Spark cluster that idgraph does not drive:
``idgraph export links --format parquet`` (the graph, streamed block by block: the process
holds one block, whatever the graph's size) and ``idgraph import memberships`` (the job's
results, written as any resolve writes them). Neither needs pyspark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from identity.engines.spark.exchange import (
    InputWriter,
    Rules,
    SparkMatchedLinks,
    read_resolution,
    read_summary,
)
from identity.model import split_key
from identity.normalize import Normalizer
from identity.policy import Policy
from identity.resolve.engine import Resolution
from identity.resolve.graph import FORCED, MATCHED, LinkGraph
from identity.resolve.snapshot import blocker, shared_code
from identity.store import linkgraph as store
from identity.store.driver import Graph

_BLOCK = 100_000  # identifiers per block written


@dataclass
class Exported:
    directory: str
    identifiers: int
    links: int
    types: list[str]


def export_links(
    graph: Graph,
    policy: Policy,
    normalizer: Normalizer,
    directory: str,
    as_of_ms: int,
    progress: Callable[[str, int], None] | None = None,
) -> Exported:
    """Write every identifier and link as a Spark job's input (see
    :mod:`identity.engines.spark.exchange`), ids being Neo4j's internal ids."""
    writer = InputWriter(directory)
    blocked = blocker(normalizer)
    type_index: dict[str, int] = {}
    top = store.highest_identifier_id(graph)
    rows: list[tuple[int, str, int, bool, int]] = []

    def flush() -> None:
        if rows:
            ids, keys, types, held, stored = zip(*rows, strict=True)
            writer.add_identifiers(
                {
                    "id": np.array(ids, dtype=np.int64),
                    "key": list(keys),
                    "type": np.array(types, dtype=np.int32),
                    "blocked": np.array(held, dtype=np.bool_),
                    "region": np.ones(len(ids), dtype=np.bool_),
                    "stored": np.array(stored, dtype=np.int8),
                }
            )
            rows.clear()
            if progress:
                progress("identifiers", writer.identifiers)

    for (
        node_id,
        key,
        kind,
        _identity,
        _quarantine,
        _reason,
        held,
        _first,
        _last,
    ) in store.identifier_rows(graph, top):
        type_, value = split_key(key)
        t = type_index.setdefault(type_, len(type_index))
        rows.append((node_id, key, t, blocked(type_, value, held), shared_code(kind)))
        if len(rows) >= _BLOCK:
            flush()
    flush()
    for block in store.link_blocks(graph, policy, top, first_seen=True):
        # [x id, y id, count, last_seen, mergeable, cut, flags, first_seen] per link
        links = np.array(block, dtype=np.int64).reshape(-1, 8)
        if (links[:, 6] & MATCHED).any():
            raise SparkMatchedLinks()
        start = writer.links
        writer.add_links(
            {
                "id": np.arange(start, start + len(links), dtype=np.int64),
                "a": links[:, 0],
                "b": links[:, 1],
                "count": links[:, 2],
                "first_seen": links[:, 7],
                "last_seen": links[:, 3],
                "mergeable": links[:, 4].astype(np.bool_),
                "cut": links[:, 5].astype(np.bool_),
                "forced": (links[:, 6] & FORCED).astype(np.bool_),
            }
        )
        if progress:
            progress("links", writer.links)
    types = [""] * len(type_index)
    for name, i in type_index.items():
        types[i] = name
    writer.close(Rules.of(policy, types, as_of_ms))
    return Exported(directory, writer.identifiers, writer.links, types)


class ImportedResults:
    """An engine that reads what a Spark job computed (``idgraph import memberships``)."""

    name = "import"
    first_seen = False

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.rules = Rules.read(directory)  # refuses a directory the job did not write
        summary = read_summary(directory)
        rounds = ", ".join(f"{k}: {v}" for k, v in summary.get("rounds", {}).items())
        self.notes = [f"results of a Spark job read from {directory}", f"rounds: {rounds}"]

    @property
    def as_of_ms(self) -> int:
        """The time the job judged expiry as of: the imported run's as_of."""
        return self.rules.as_of_ms

    def resolve(self, graph: LinkGraph, policy: Policy, as_of_ms: int) -> Resolution:
        return read_resolution(self.directory, graph, Rules.of(policy, graph.type_names, as_of_ms))
