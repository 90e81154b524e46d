"""Helpers for loader tests: load through the same service the CLI uses, read the graph back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from identity.config import load_settings
from identity.ingest.service import LoadReport, load_segment_file, load_table_file
from identity.normalize import DEFAULT_TYPES
from identity.store.driver import Graph
from identity.store.schema import init_schema
from loaders.table import load_mapping
from tests.services import services


def load_segment(
    graph: Graph, path: Path, rejects: Path, *, chunk_size: int = 1000, **settings: Any
) -> LoadReport:
    config = load_settings(rejects_dir=rejects, chunk_size=chunk_size, **settings)
    init_schema(graph)
    return load_segment_file(services(graph, config=config), path)


def load_csv(
    graph: Graph, path: Path, mapping: Path, rejects: Path, *, chunk_size: int = 1000
) -> LoadReport:
    config = load_settings(rejects_dir=rejects, chunk_size=chunk_size)
    init_schema(graph)
    return load_table_file(
        services(graph, config=config), path, load_mapping(mapping, DEFAULT_TYPES)
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


def props(graph: Graph, key: str, prefix: str) -> dict[str, Any]:
    """The properties of one identifier whose names start with ``prefix``."""
    rows = graph.read("props", "MATCH (i:Identifier {key: $key}) RETURN properties(i) AS p",
                      {"key": key})  # fmt: skip
    return {k: v for k, v in rows[0]["p"].items() if k.startswith(prefix)} if rows else {}


VOLATILE = {"started_at", "finished_at", "attempts", "error", "failed_at"}


def fingerprint(graph: Graph) -> dict[str, Any]:
    """Everything a load writes, in a comparable form (times as ISO text)."""

    def canon(value: Any) -> Any:
        if isinstance(value, dict):
            return sorted((k, canon(v)) for k, v in value.items())
        if isinstance(value, list):
            return [canon(v) for v in value]
        return str(value)

    def rows(query: Any) -> list[str]:
        return sorted(str(canon(r)) for r in graph.read("fingerprint", query))

    return {
        "identifiers": rows("MATCH (i:Identifier) RETURN labels(i), properties(i)"),
        "links": rows(
            "MATCH (a)-[r:LINKED]->(b) RETURN a.key, b.key, r.count, r.party, r.sources, "
            "r.evidence, toString(r.first_seen), toString(r.last_seen)"
        ),
        "segments": rows(
            "MATCH (i)-[m:IN_SEGMENT]->(s) RETURN i.key, s.name, toString(m.expires_at)"
        ),
        "batches": sorted(
            str(canon({k: v for k, v in r["p"].items() if k not in VOLATILE}))
            for r in graph.read("batches", "MATCH (b:Batch) RETURN properties(b) AS p")
        ),
        "chunks": rows("MATCH (c:BatchChunk) RETURN c.key"),
    }
