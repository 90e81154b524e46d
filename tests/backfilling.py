"""Helpers for the backfill tests: hard-case input files, loads and backfills of the same
files, and the whole graph in a comparable form."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from identity.backfill.service import BackfillReport, backfill
from identity.config import Settings, load_settings
from identity.ingest.service import LoadReport, load_segment_file, load_table_file
from identity.normalize import DEFAULT_TYPES
from identity.store.driver import Graph, open_driver
from identity.store.local_server import LocalServer
from identity.store.schema import init_schema
from loaders.table import load_mapping
from tests.conftest import TEST_PASSWORD, throwaway_config
from tests.services import services

# not compared: when a batch ran (and how often), when a source or the schema first came
VOLATILE = {
    "Batch": {"started_at", "finished_at", "attempts"},
    "Source": {"created_at"},
    "SchemaVersion": {"applied_at"},
    # the keys a load chunk touched, for the next incremental resolve: the first resolve after
    # a backfill is full (none has completed), so a backfill's chunk claims hold none
    "BatchChunk": {"keys"},
}
NATURAL_KEY = {
    "Identifier": "key",
    "DmpSegment": "name",
    "Batch": "id",
    "Source": "name",
    "BatchChunk": "key",
    "Tombstone": "hash",
    "SchemaVersion": "id",
}


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Viewed",
        "timestamp": f"2026-09-0{1 + n % 9}T10:00:00Z",
        **fields,
    }


def hard_segment_events() -> list[dict[str, Any]]:
    """Duplicates within and across chunks (of 7), trait ties, odd names and values."""
    ts = "2026-09-01T10:00:00.123Z"
    return [
        _event(0, messageId="m-1", anonymousId="ck-1", userId="U1"),
        _event(0, messageId="m-1", anonymousId="ck-1", userId="U1"),  # same chunk: duplicate
        {
            "type": "identify",
            "messageId": "m-2",
            "timestamp": ts,
            "userId": "U1",
            "traits": {
                "email": "ann@example.org",
                "age": 30,
                "note": 'a, "quoted"\nline',
                "score": 0.1,
                "big": 1e16,
                "empty": "",
                "a:b": "colon",
                "vip": True,
            },
        },
        {
            "type": "identify",
            "messageId": "m-3",
            "timestamp": ts,
            "userId": "U1",
            "traits": {"age": 31, "note": "b", "vip": False},
        },  # ties: the larger text wins
        {
            "type": "identify",
            "messageId": "m-4",
            "timestamp": ts,
            "userId": "U2",
            "traits": {"age": "1"},
        },
        {
            "type": "identify",
            "messageId": "m-5",
            "timestamp": ts,
            "userId": "U2",
            "traits": {"age": 1},
        },  # a tie of equal text: the first stays
        _event(1, messageId='m, "6"', anonymousId="ck-2", userId="U2", event="Add (promo)"),
        # chunk 2 (records 7..13)
        _event(0, messageId="m-1", anonymousId="ck-1", userId="U1"),  # held by U1: duplicate
        _event(3, messageId="m-1", anonymousId="ck-1", userId="U1"),  # another day: new
        _event(0, messageId="m-1", anonymousId="ck-9"),  # another primary: new
        "{not json",
        {"type": "track", "event": "x", "timestamp": ts, "anonymousId": "undefined"},
        _event(
            2,
            messageId="m-7",
            anonymousId="ck-3",
            traits={"email": "not-an-email"},
            context={"traits": {"email": "bad@@x"}, "device": {"id": "dev-1"}},
        ),
        _event(4, anonymousId="ck-3", event="Add (promo)", context={"device": {"id": "dev-1"}}),
        # chunk 3
        {
            "batch": [
                _event(5, messageId="m-8", anonymousId="ck-4", userId="U3"),
                _event(5, messageId="m-8", anonymousId="ck-4", userId="U3"),
                _event(
                    6,
                    messageId="m-9",
                    anonymousId="ck-4",
                    userId="U3",
                    event="Order: Completed {x}",
                ),
            ]
        },
        _event(
            7,
            messageId="m-10",
            anonymousId="ck-5",
            userId="U3",
            context={"traits": {"phone": "+33 6 12 34 56 78"}},
        ),
    ]


def write_ndjson(path: Path, events: Sequence[object], *, compress: bool = False) -> Path:
    lines = "".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in events)
    if compress:
        path.write_bytes(gzip.compress(lines.encode()))
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def write_dmp_table(directory: Path) -> tuple[Path, Path]:
    """A DMP feed with segments, a TTL column, a bad TTL and a row without identifier."""
    table = directory / "feed.csv"
    table.write_text(
        "cookie,partner,segments,ttl,seen\n"
        "ck-1,P1,a|b,30,2026-09-02T00:00:00Z\n"
        "ck-1,P1,b|c,90,2026-09-05T00:00:00Z\n"
        'ck-2,P2,"x, y",7,2026-09-03T00:00:00Z\n'
        "ck-3,,a,zero,2026-09-03T00:00:00Z\n"
        ",,a,30,2026-09-03T00:00:00Z\n",
        encoding="utf-8",
    )
    mapping = directory / "feed.mapping.toml"
    mapping.write_text(
        'source = "feed"\nparty = "third"\ntimestamp = "seen"\n'
        '[identifiers]\ncookie = "cookie"\npartner = "dmp_id"\n'
        '[segments]\ncolumn = "segments"\nseparator = "|"\nttl_column = "ttl"\n',
        encoding="utf-8",
    )
    return table, mapping


def load_all(
    graph: Graph,
    config: Settings,
    segment_files: Sequence[Path],
    csv_files: Sequence[tuple[Path, Path]],
) -> list[LoadReport]:
    """Load the files one after the other, as `idgraph load` does."""
    init_schema(graph)
    ctx = services(graph, config=config)
    reports = [load_segment_file(ctx, path) for path in segment_files]
    for path, mapping in csv_files:
        reports.append(load_table_file(ctx, path, load_mapping(mapping, DEFAULT_TYPES)))
    return reports


@contextmanager
def backfill_server(home: Path) -> Iterator[tuple[LocalServer, Graph, Settings]]:
    """A throwaway local server for backfills (they stop and start it), with its graph."""
    server = LocalServer(throwaway_config(home))
    server.start()
    settings = load_settings(neo4j_uri=server.uri, neo4j_password=TEST_PASSWORD)
    driver = open_driver(settings)
    try:
        yield server, Graph(driver, settings.neo4j_database), settings
    finally:
        driver.close()
        server.stop()


def run_backfill(
    server: LocalServer,
    graph: Graph,
    config: Settings,
    segment_files: Sequence[Path],
    csv_files: Sequence[tuple[Path, Path]],
    **options: Any,
) -> BackfillReport:
    return backfill(
        services(graph, config=config), segment_files, csv_files, server=server, **options
    )


def snapshot(graph: Graph) -> dict[str, list[str]]:
    """Every node (labels, properties with their Cypher types) and every relationship (type,
    ends by natural key, properties), sorted; the volatile properties left out."""

    def canon(value: Any) -> Any:
        if isinstance(value, list):
            return [canon(v) for v in value]
        iso = getattr(value, "iso_format", None)
        return iso() if callable(iso) else value

    def node_id(labels: list[str], props: dict[str, Any]) -> str:
        for label in sorted(labels):
            if label in NATURAL_KEY:
                return f"{label}:{props.get(NATURAL_KEY[label])}"
        return f"{sorted(labels)}:{sorted(props.items())}"

    nodes = []
    for r in graph.read(
        "snapshot nodes",
        "MATCH (n) RETURN labels(n) AS labels, properties(n) AS p, "
        "[k IN keys(n) | [k, valueType(n[k])]] AS types",
    ):
        volatile = set().union(*(VOLATILE.get(label, set()) for label in r["labels"]))
        types = dict(r["types"])
        props = {k: (canon(v), types[k]) for k, v in r["p"].items() if k not in volatile}
        nodes.append(json.dumps([sorted(r["labels"]), sorted(props.items())], default=str))
    rels = []
    for r in graph.read(
        "snapshot relationships",
        "MATCH (a)-[r]->(b) RETURN labels(a) AS la, properties(a) AS pa, type(r) AS t, "
        "labels(b) AS lb, properties(b) AS pb, properties(r) AS p, "
        "[k IN keys(r) | [k, valueType(r[k])]] AS types",
    ):
        types = dict(r["types"])
        props = sorted((k, (canon(v), types[k])) for k, v in r["p"].items())
        rels.append(
            json.dumps(
                [node_id(r["la"], r["pa"]), r["t"], node_id(r["lb"], r["pb"]), props],
                default=str,
            )
        )
    return {"nodes": sorted(nodes), "relationships": sorted(rels)}


def rejects_of(reports: Sequence[LoadReport]) -> dict[str, list[str]]:
    """Each batch's rejects file, as a sorted list of lines (writers may interleave)."""
    return {
        r.batch_id: sorted(r.rejects_file.read_text(encoding="utf-8").splitlines())
        for r in reports
        if r.rejects_file is not None
    }
