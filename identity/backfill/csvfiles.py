"""The files ``neo4j-admin database import`` reads, written by DuckDB from the aggregates.

One group per kind of node and relationship: a header file written here and one gzipped
part written by DuckDB's ``COPY ... TO`` (``HEADER false, COMPRESSION gzip``), streaming
from the aggregate tables of :mod:`identity.backfill.aggregate`:

- ``Identifier`` nodes: ``key:ID(Identifier)``, ``:LABEL`` (``Identifier``, the type's
  label, and ``Stated`` when it holds traits, events or DMP memberships), ``type``,
  ``value``, ``seen``, ``sources``, ``batch``, ``first_seen``, ``last_seen``, ``hashed``,
  ``msgs``, then a column per trait and event property seen
  (``trait.<source>.<name>``, ``trait_at.<source>.<name>``, ``event_count.<name>``,
  ``event_first.<name>``, ``event_last.<name>``): the long rows of ``trait`` and ``event``
  pivoted (grouped per key into sparse lists, read back by position), empty (no property)
  where an identifier has none;
- ``DmpSegment`` nodes, ``LINKED`` and ``IN_SEGMENT`` relationships.

Text is quoted (values may hold commas, quotes, newlines); an empty field is no property, a
quoted empty one the empty string. Times are written ``2026-10-01T10:00:00.123Z``, what
``datetime({epochMillis: ...})`` gives a load. Arrays and labels are separated by
:data:`~identity.store.bulk.ARRAY_DELIMITER`, which no value may hold (checked).

Property names the importer cannot take (``(``, ``)``, ``{``, ``}``, quotes, commas and
control characters are mangled or break the header: ``Add (promo)``) are imported under a
placeholder name (:data:`PLACEHOLDER`) on nodes that get the label :data:`RENAMING`; after
the import one server-side pass over those nodes renames them
(:func:`~identity.store.bulk_writes.rename_properties`). A ``:`` is the importer's type
separator, but every column is typed and the importer takes the type after the last one, so
``event_count.page:Home:long`` imports ``event_count.page:Home``. Trait values of a type
other than that of most values of their property (a column has one type) are set with Cypher
after the import (:func:`extra_values`): rare.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from identity.backfill.staging import typed_value
from identity.errors import InputError
from identity.model import TraitValue
from identity.store.bulk import ARRAY_DELIMITER, ImportGroup
from identity.store.bulk_writes import PLACEHOLDER, RENAMING
from identity.store.rows import label_for

_UNSAFE_NAME = re.compile(r"[(){}\"'`,\x00-\x1f\x7f]")
_NEO4J_TYPE = {"s": "string", "i": "long", "f": "double", "b": "boolean"}
_MACROS = """
CREATE OR REPLACE MACRO iso(ms) AS strftime(make_timestamp(ms * 1000), '%Y-%m-%dT%H:%M:%S.%gZ');
CREATE OR REPLACE MACRO arr(xs) AS array_to_string(xs, chr(31));
"""


def importable(name: str) -> bool:
    """Whether the importer takes a property name as it is."""
    return bool(name) and name == name.strip() and not _UNSAFE_NAME.search(name)


@dataclass(frozen=True)
class ImportFiles:
    nodes: tuple[ImportGroup, ...]
    relationships: tuple[ImportGroup, ...]
    counts: dict[str, int]  # rows per group
    renames: tuple[tuple[str, str], ...]  # (placeholder, property name) on RENAMING nodes


def write_import_files(con: duckdb.DuckDBPyConnection, directory: Path) -> ImportFiles:
    """Write every import file under ``directory`` from the aggregate tables."""
    directory.mkdir(parents=True, exist_ok=True)
    _check_delimiter(con)
    con.execute(_MACROS)
    columns = _property_columns(con)
    labels = [
        (t, label_for(t))
        for (t,) in con.execute(
            "SELECT DISTINCT substr(key, 1, strpos(key, ':') - 1) FROM ident"
        ).fetchall()
    ]
    con.execute("CREATE OR REPLACE TABLE labels (type VARCHAR, label VARCHAR)")
    if labels:
        con.executemany("INSERT INTO labels VALUES (?, ?)", labels)
    # the pivot: each key's (column, text) pairs as two lists (sparse: a few per key, so the
    # grouping stays small), read back by position in the projection
    picked = "".join(f", p.txts[list_position(p.cols, {n})]" for n in range(len(columns)))
    renamed = [n for n, (header, _, name) in enumerate(columns) if header != name]
    flagged = f"list_has_any(p.cols, {renamed})" if renamed else "false"
    identifiers = f"""
        WITH wide AS (SELECT key, list(col ORDER BY col) AS cols, list(txt ORDER BY col) AS txts
                      FROM props GROUP BY key)
        , stated AS (SELECT key FROM trait UNION SELECT key FROM event
                     UNION SELECT key FROM membership)
        SELECT i.key, 'Identifier' || chr(31) || l.label
                      || CASE WHEN s.key IS NOT NULL THEN chr(31) || 'Stated' ELSE '' END
                      || CASE WHEN {flagged} THEN chr(31) || '{RENAMING}' ELSE '' END,
               l.type, substr(i.key, length(l.type) + 2), i.seen, arr(i.sources), i.batch,
               iso(i.first), iso(i.last), CASE WHEN i.hashed THEN 'true' END,
               arr(m.msgs){picked}
        FROM ident i JOIN labels l ON l.type = substr(i.key, 1, strpos(i.key, ':') - 1)
        LEFT JOIN msgs m ON m.key = i.key LEFT JOIN wide p ON p.key = i.key
        LEFT JOIN stated s ON s.key = i.key
    """
    strings = [0, 2, 3, 5, 6] + [11 + n for n, (_, t, _) in enumerate(columns) if t == "string"]
    groups = {
        "identifiers": (
            "",
            [
                "key:ID(Identifier)", ":LABEL", "type", "value", "seen:long",
                "sources:string[]", "batch", "first_seen:datetime", "last_seen:datetime",
                "hashed:boolean", "msgs:long[]",
                *(f"{header}:{type_}" for header, type_, _ in columns),
            ],
            identifiers,
            strings,
        ),
        "dmp_segments": (
            "DmpSegment", ["name:ID(DmpSegment)"],
            "SELECT DISTINCT name FROM membership", [0],
        ),
        "links": (
            "LINKED",
            [
                ":START_ID(Identifier)", ":END_ID(Identifier)", "count:long",
                "first_seen:datetime", "last_seen:datetime", "sources:string[]", "party",
                "evidence:string[]",
            ],
            "SELECT l.a, l.b, l.count, iso(l.first), iso(l.last), arr(l.sources), l.party, "
            "arr(e.evidence) FROM link l JOIN evidence e ON e.a = l.a AND e.b = l.b",
            [0, 1, 5, 6, 7],
        ),
        "memberships": (
            "IN_SEGMENT",
            [
                ":START_ID(Identifier)", ":END_ID(DmpSegment)", "first_seen:datetime",
                "last_seen:datetime", "expires_at:datetime", "source",
            ],
            "SELECT key, name, iso(first), iso(last), iso(expires), source FROM membership",
            [0, 1, 5],
        ),
    }  # fmt: skip
    written: dict[str, ImportGroup] = {}
    counts: dict[str, int] = {}
    for kind, (name, header, query, quoted) in groups.items():
        head = directory / f"{kind}.header.csv"
        head.write_text(",".join(header) + "\n", encoding="utf-8")
        part = directory / f"{kind}.part1.csv.gz"
        counts[kind] = _copy(con, query, part, quoted)
        written[kind] = ImportGroup(name, head, (part,))
    return ImportFiles(
        (written["identifiers"], written["dmp_segments"]),
        (written["links"], written["memberships"]),
        counts,
        tuple((header, name) for header, _, name in columns if header != name),
    )


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, quoted: list[int]) -> int:
    """``COPY (query) TO path``, quoting the text columns (by position); the rows written."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW export AS {query}")
    width = len(con.execute("DESCRIBE export").fetchall())
    names = ", ".join(f"x{n}" for n in range(width))
    con.execute(f"CREATE OR REPLACE TEMP VIEW export ({names}) AS {query}")
    force = ", ".join(f"x{q}" for q in quoted)
    escaped = str(path).replace("'", "''")
    row = con.execute(
        f"COPY (SELECT * FROM export) TO '{escaped}' "
        f"(FORMAT csv, HEADER false, COMPRESSION gzip, FORCE_QUOTE ({force}))"
    ).fetchone()
    return int(row[0]) if row else 0


def _property_columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Plan the trait and event columns (``tcols``, ``ecols``) and fill ``props`` with their
    values as text (``key, col, txt``); the columns' (header name, importer type, property
    name) in order: the header name is a placeholder when the importer cannot take the
    property's name."""
    columns: list[tuple[str, str, str]] = []

    def column(name: str, type_: str) -> int:
        header = name if importable(name) else PLACEHOLDER.format(len(columns))
        columns.append((header, type_, name))
        return len(columns) - 1

    majority: dict[tuple[str, str], str] = {}  # a column's type: that of most of its values
    for source, name, vtype in con.execute(
        "SELECT source, name, vtype FROM trait GROUP BY ALL "
        "ORDER BY source, name, count(*) DESC, vtype"
    ).fetchall():
        majority.setdefault((source, name), vtype)
    trait_rows = [
        (source, name, vtype, column(f"trait.{source}.{name}", _NEO4J_TYPE[vtype]),
         column(f"trait_at.{source}.{name}", "datetime"))
        for (source, name), vtype in majority.items()
    ]  # fmt: skip
    event_rows = [
        (name, column(f"event_count.{name}", "long"), column(f"event_first.{name}", "datetime"),
         column(f"event_last.{name}", "datetime"))
        for (name,) in con.execute("SELECT DISTINCT name FROM event ORDER BY name").fetchall()
    ]  # fmt: skip
    con.execute(
        "CREATE OR REPLACE TABLE tcols (source VARCHAR, name VARCHAR, vtype VARCHAR, "
        "vcol INTEGER, tcol INTEGER)"
    )
    if trait_rows:
        con.executemany("INSERT INTO tcols VALUES (?, ?, ?, ?, ?)", trait_rows)
    con.execute("CREATE OR REPLACE TABLE ecols (name VARCHAR, c INTEGER, f INTEGER, l INTEGER)")
    if event_rows:
        con.executemany("INSERT INTO ecols VALUES (?, ?, ?, ?)", event_rows)
    con.execute("""
        CREATE OR REPLACE TABLE props AS
        SELECT t.key, c.vcol AS col, t.vtext AS txt FROM trait t
        JOIN tcols c ON c.source = t.source AND c.name = t.name AND c.vtype = t.vtype
        UNION ALL
        SELECT t.key, c.tcol, iso(t.ts) FROM trait t
        JOIN tcols c ON c.source = t.source AND c.name = t.name
        UNION ALL
        SELECT e.key, c.c, e.n::VARCHAR FROM event e JOIN ecols c ON c.name = e.name
        UNION ALL
        SELECT e.key, c.f, iso(e.first) FROM event e JOIN ecols c ON c.name = e.name
        UNION ALL
        SELECT e.key, c.l, iso(e.last) FROM event e JOIN ecols c ON c.name = e.name
    """)
    return columns


def extra_values(con: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, TraitValue]]:
    """(key, property, value) the import files do not hold: trait values of a type other
    than their column's."""
    cursor = con.cursor()
    cursor.execute("""
        SELECT t.key, 'trait.' || t.source || '.' || t.name, t.vtype, t.vtext FROM trait t
        JOIN tcols c ON c.source = t.source AND c.name = t.name WHERE c.vtype <> t.vtype
    """)
    while rows := cursor.fetchmany(10_000):
        yield from ((k, name, typed_value(t, v)) for k, name, t, v in rows)
    cursor.close()


def _check_delimiter(con: duckdb.DuckDBPyConnection) -> None:
    """No array element may hold the array delimiter: refuse such input by name."""
    row = con.execute(
        "SELECT coalesce(r.msg, r.record) FROM records r "
        "WHERE strpos(coalesce(r.msg, r.record), chr(31)) > 0 LIMIT 1"
    ).fetchone()
    bad = con.execute(
        "SELECT source FROM files WHERE strpos(source || batch, chr(31)) > 0 LIMIT 1"
    ).fetchone()
    if row or bad:
        what = f"messageId or record {row[0]!r}" if row else f"source {bad[0] if bad else ''!r}"
        raise InputError(
            f"{what} holds U+001F, the delimiter of the import's arrays: load such input "
            f"with `idgraph load` instead (backfill cannot write it as {ARRAY_DELIMITER!r})"
        )
