"""The staging database: every accepted record as rows in an on-disk DuckDB database.

Parsing appends, per record, one row to ``records`` and one per identifier, trait, event
and DMP membership to ``idents``, ``traits``, ``events`` and ``dmp`` (through DuckDB's
appender, :data:`FLUSH_EVERY` records at a time, so Python holds a bounded buffer whatever
the file's size). DuckDB keeps the tables in a file under the state directory, works within
``IDGRAPH_BACKFILL_MEMORY`` and spills larger sorts and hash tables to its temporary folder
beside it: the aggregation of :mod:`identity.backfill.aggregate` runs out of core.

What a row holds is what :func:`identity.store.rows.aggregate` reads of an observation, in
the form it uses: times in epoch milliseconds computed as a load computes them, the
message's deduplication code (:func:`identity.store.rows.message_code`), trait values with
the text a tie between equal times compares (:func:`identity.store.rows.text_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from identity.model import Observation, Rejection, TraitValue
from identity.store.rows import message_code, millis_of, text_of

FLUSH_EVERY = 20_000

TABLES = {
    "files": "file INTEGER, batch VARCHAR, source VARCHAR, party VARCHAR",
    # holder: the primary identifier after erased ones are dropped (NULL: every identifier
    # was erased); lookup: the primary the load looks the message code up on
    "records": "seq BIGINT, file INTEGER, chunk INTEGER, msg VARCHAR, code BIGINT, "
    "lookup VARCHAR, holder VARCHAR, ts BIGINT, ev BIGINT, record VARCHAR, forgot INTEGER",
    "idents": "seq BIGINT, key VARCHAR, hashed BOOLEAN",
    "traits": "seq BIGINT, name VARCHAR, vtype VARCHAR, vtext VARCHAR",
    "events": "seq BIGINT, name VARCHAR",
    "dmp": "seq BIGINT, name VARCHAR, expires BIGINT",
    # rejections that count only when their record is not a duplicate (erased identifiers)
    "pending": "seq BIGINT, file INTEGER, whole BOOLEAN, code VARCHAR, message VARCHAR, "
    "record VARCHAR",
}


def value_type(value: TraitValue) -> str:
    """The type tag of a trait value: ``b``oolean, ``i``nteger, ``f``loat or ``s``tring."""
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    return "s"


def typed_value(vtype: str, vtext: str) -> TraitValue:
    """The trait value a (type tag, text) pair stands for (``text_of`` inverted)."""
    if vtype == "b":
        return vtext == "true"
    if vtype == "i":
        return int(vtext)
    if vtype == "f":
        return float(vtext)
    return vtext


@dataclass(frozen=True)
class Staged:
    """One record as parsed (``original``) and as written (``kept``: erased identifiers
    dropped, None when none is left), with its rejections for erased identifiers."""

    seq: int
    file: int
    chunk: int
    original: Observation
    kept: Observation | None
    forgotten: tuple[list[Rejection], list[Rejection]] = ([], [])


class Staging:
    """The staging database of one backfill (see the module docstring)."""

    def __init__(self, directory: Path, *, memory: str, threads: int | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.con = duckdb.connect(str(directory / "staging.duckdb"))
        self.con.execute(f"SET memory_limit = '{memory}'")  # checked by Settings' pattern
        self.con.execute("SET temp_directory = ?", [str(directory / "spill")])
        self.con.execute("SET preserve_insertion_order = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        for name, columns in TABLES.items():
            self.con.execute(f"CREATE OR REPLACE TABLE {name} ({columns})")
        self._buffers: dict[str, list[tuple[Any, ...]]] = {name: [] for name in TABLES}
        self._pending = 0

    def add_file(self, file: int, batch: str, source: str, party: str) -> None:
        self.con.execute("INSERT INTO files VALUES (?, ?, ?, ?)", [file, batch, source, party])

    def add(self, staged: Staged) -> None:
        """Buffer one record's rows; they reach the database every FLUSH_EVERY records."""
        obs, kept, seq = staged.original, staged.kept, staged.seq
        at = millis_of(obs.at)  # exact milliseconds: the time and the evidence's order
        msg = obs.message_id
        b = self._buffers
        b["records"].append(
            (
                seq, staged.file, staged.chunk, msg,
                message_code(msg, at) if msg is not None else None,
                obs.identifiers[0].key,
                kept.identifiers[0].key if kept is not None else None,
                at, at, obs.record, len(staged.forgotten[1]),
            )
        )  # fmt: skip
        records, values = staged.forgotten
        for whole, rejections in ((True, records), (False, values)):
            for r in rejections:
                b["pending"].append((seq, staged.file, whole, r.code, r.message, r.record))
        if kept is not None:
            b["idents"].extend((seq, i.key, i.hashed) for i in kept.identifiers)
            b["traits"].extend(
                (seq, name, value_type(v), text_of(v)) for name, v in kept.traits.items()
            )
            b["events"].extend((seq, name) for name in kept.events)
            b["dmp"].extend((seq, m.name, millis_of(m.expires_at)) for m in kept.dmp_segments)
        self._pending += 1
        if self._pending >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        for name, rows in self._buffers.items():
            if rows:
                appender = self.con.appender(name)
                appender.append_rows(rows)
                appender.flush()
                rows.clear()
        self._pending = 0

    def close(self) -> None:
        self.con.close()
