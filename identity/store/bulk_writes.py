"""What a backfill reads before the import and writes after it (the Cypher of
:mod:`identity.backfill.service`).

Before: whether the database holds data, and its tombstones (kept across a ``--replace``).
After the import, with the server running again: the small things written with Cypher rather
than imported, each in transactions of :data:`WRITE_CHUNK` rows: the lineage (sources,
batches and their chunk claims, as loads leave them), the tombstones, and the identifier
properties the importer cannot take (names it would mangle, values of a minority type).
Every value travels as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, LiteralString

from identity.store.driver import Graph

WRITE_CHUNK = 10_000
# the importer cannot take some property names: they come in under a placeholder name, on
# nodes with this label, and are renamed after the import (rename_properties)
PLACEHOLDER = "backfill_property_{}"
RENAMING = "BackfillRenaming"

_CREATE_SOURCES: LiteralString = """
UNWIND $rows AS row
CREATE (s:Source) SET s = row
"""
_CREATE_BATCHES: LiteralString = """
UNWIND $rows AS row
MATCH (s:Source {name: row.props.source})
CREATE (b:Batch)-[:FROM]->(s) SET b = row.props
"""
_CREATE_CHUNKS: LiteralString = """
UNWIND $rows AS row
CREATE (:BatchChunk {key: row.batch + '#' + toString(row.index), batch: row.batch,
                     index: row.index, new: true})
"""
_CREATE_TOMBSTONES: LiteralString = """
UNWIND $rows AS row
CREATE (t:Tombstone) SET t = row
"""
_SET_VALUES: LiteralString = """
UNWIND $rows AS row
MATCH (i:Identifier {key: row.key})
SET i[row.name] = row.value
"""
_RENAME: LiteralString = """
MATCH (i:BackfillRenaming)
CALL (i) {
  WITH i, [r IN $renames WHERE i[r[0]] IS NOT NULL] AS held
  FOREACH (r IN held | SET i[r[1]] = i[r[0]])
  FOREACH (r IN held | SET i[r[0]] = null)
  REMOVE i:BackfillRenaming
} IN TRANSACTIONS OF 10000 ROWS
"""


def data_nodes(graph: Graph) -> int:
    """The nodes of the database besides the schema's version marker."""
    rows = graph.read(
        "count nodes before backfill",
        "MATCH (n) WHERE NOT n:SchemaVersion RETURN count(n) AS n",
    )
    return int(rows[0]["n"])


def read_tombstones(graph: Graph) -> list[dict[str, Any]]:
    """Every ``(:Tombstone)``'s properties (``hash``, ``at``): all that is kept of erasures."""
    return [
        dict(record["p"])
        for record in graph.stream(
            "read tombstones", "MATCH (t:Tombstone) RETURN properties(t) AS p"
        )
    ]


def write_tombstones(graph: Graph, tombstones: Sequence[dict[str, Any]]) -> None:
    for rows in _chunks(tombstones):
        graph.run("write tombstones", _CREATE_TOMBSTONES, {"rows": rows})


def write_lineage(
    graph: Graph,
    sources: Sequence[dict[str, Any]],
    batches: Sequence[dict[str, Any]],
    chunks: Iterable[tuple[str, int]],
) -> None:
    """``(:Source)`` nodes (``name``, ``party``, ``created_at``), ``(:Batch)-[:FROM]->
    (:Source)`` with the batches' properties, and a ``(:BatchChunk)`` claim per chunk."""
    graph.run("write sources", _CREATE_SOURCES, {"rows": list(sources)})
    graph.run("write batches", _CREATE_BATCHES, {"rows": [{"props": b} for b in batches]})
    rows = ({"batch": batch, "index": index} for batch, index in chunks)
    for part in _chunks(rows):
        graph.run("write batch chunks", _CREATE_CHUNKS, {"rows": part})


def set_identifier_values(graph: Graph, rows: Iterable[tuple[str, str, Any]]) -> int:
    """Set ``(key, property, value)`` on identifiers; the number set."""
    done = 0
    for part in _chunks({"key": k, "name": n, "value": v} for k, n, v in rows):
        graph.run("set identifier properties", _SET_VALUES, {"rows": part})
        done += len(part)
    return done


def rename_properties(graph: Graph, renames: Sequence[tuple[str, str]]) -> None:
    """Rename ``(placeholder, name)`` properties on the nodes labelled :data:`RENAMING`,
    server-side, in transactions of 10,000 nodes; the label goes."""
    if renames:
        graph.run_autocommit(
            "rename imported properties", _RENAME, {"renames": [list(r) for r in renames]}
        )


def await_indexes(graph: Graph, seconds: int = 300) -> None:
    """Wait until every index is online (they are populated in the background)."""
    graph.run_autocommit("await indexes", "CALL db.awaitIndexes($seconds)", {"seconds": seconds})


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    it = iter(rows)
    while part := list(islice(it, WRITE_CHUNK)):
        yield part


def reconnect(graph: Graph) -> None:
    """After the import: the driver's connections and bookmarks were those of the database
    the import replaced (see :meth:`Graph.forget_bookmarks`)."""
    graph.forget_bookmarks()
