"""Helpers for loader tests: load through the same service the CLI uses, read the graph back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from identity.config import load_settings
from identity.ingest import LoadReport, load_file, make_normalizer
from identity.policy import Policy
from identity.store.driver import Graph
from identity.store.schema import init_schema
from loaders.segment import SegmentOptions, read_segment
from loaders.table import check_header, load_mapping, read_table


def load_segment(
    graph: Graph, path: Path, rejects: Path, *, chunk_size: int = 1000, **settings: Any
) -> LoadReport:
    config = load_settings(**settings)
    policy = Policy()
    normalizer = make_normalizer(config, policy)
    options = SegmentOptions()
    init_schema(graph)
    return load_file(
        graph,
        path,
        lambda stream, now: read_segment(stream, normalizer, options, now=now),
        kind="segment",
        source="segment",
        party="first",
        rejects_dir=rejects,
        chunk_size=chunk_size,
    )


def load_csv(
    graph: Graph, path: Path, mapping: Path, rejects: Path, *, chunk_size: int = 1000
) -> LoadReport:
    policy = Policy()
    spec = load_mapping(mapping, policy.types)
    normalizer = make_normalizer(load_settings(), policy)
    check_header(path, spec)
    init_schema(graph)
    return load_file(
        graph,
        path,
        lambda stream, now: read_table(stream, spec, normalizer, now=now),
        kind="csv",
        source=spec.source,
        party=spec.party,
        rejects_dir=rejects,
        chunk_size=chunk_size,
    )


def keys(graph: Graph) -> set[str]:
    return {r["key"] for r in graph.read("keys", "MATCH (i:Identifier) RETURN i.key AS key")}


def links(graph: Graph) -> dict[tuple[str, str], dict[str, Any]]:
    rows = graph.read(
        "links",
        "MATCH (a:Identifier)-[r:LINKED]->(b:Identifier) "
        "RETURN a.key AS a, b.key AS b, properties(r) AS props",
    )
    return {(r["a"], r["b"]): r["props"] for r in rows}


def fingerprint(graph: Graph) -> dict[str, Any]:
    """Everything a load writes, in a comparable form (times as ISO text)."""

    def rows(query: Any) -> list[str]:
        return sorted(str(r) for r in graph.read("fingerprint", query))

    return {
        "identifiers": rows(
            "MATCH (i:Identifier) RETURN i.key, labels(i), i.seen, toString(i.first_seen), "
            "toString(i.last_seen), i.sources"
        ),
        "links": rows(
            "MATCH (a)-[r:LINKED]->(b) RETURN a.key, b.key, r.count, r.party, r.sources, "
            "r.evidence, toString(r.first_seen), toString(r.last_seen)"
        ),
        "traits": rows("MATCH (i)-[:HAS_TRAITS]->(t:TraitSet) RETURN i.key, properties(t)"),
        "events": rows("MATCH (i)-[:HAS_EVENTS]->(e:EventStats) RETURN i.key, properties(e)"),
        "segments": rows(
            "MATCH (i)-[m:IN_SEGMENT]->(s) RETURN i.key, s.name, toString(m.expires_at)"
        ),
        "messages": rows("MATCH (m:SeenMessage) RETURN m.id"),
        "batches": rows(
            "MATCH (b:Batch) RETURN b.id, b.status, b.read, b.accepted, b.rejected, "
            "b.rejected_reasons, b.rejected_value_reasons, b.chunks_done"
        ),
    }
