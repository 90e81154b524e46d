"""A table's records as record matching reads them: one row per record identifier, the compared
columns cleaned per kind, in a DuckDB table (on disk: memory stays bounded whatever the size).

Cleaning makes equal what only looks different, and leaves the rest to the comparisons:
names and places lose case, accents and punctuation; a date of birth becomes ``YYYY-MM-DD``
(``YYYYMMDD``, ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``DD/MM/YYYY``, ``DD.MM.YYYY``; anything else is
kept as its digits, so a typo is still a near match); a postcode loses spaces; an email loses
case and any ``+tag`` of its local part (``Jean.Martin+shop@X.com`` -> ``jean.martin@x.com``;
the comparison looks at the local part on its own too); a phone keeps its last nine digits.
Blank and null-like cells are NULL.

A row whose record identifier is missing or invalid is rejected with its reason; a second row
of the same record identifier is rejected as a duplicate (the first is kept).
"""

from __future__ import annotations

import csv
import io
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from identity.errors import InputError
from identity.model import Rejection
from identity.normalize import NormalizationError, Normalizer
from loaders.match_spec import MatchSpec
from loaders.records import open_input, preview
from loaders.table import TableMapping, check_header

_BATCH = 50_000
_NULLISH = {"", "null", "none", "nan", "n/a", "na", "undefined", "-"}
_NOT_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\D+")
_DATE_FORMATS = (
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$"), (1, 2, 3)),
    (re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})$"), (3, 2, 1)),
)


def _text(value: str) -> str | None:
    folded = unicodedata.normalize("NFKD", value.lower())
    plain = "".join(ch for ch in folded if not unicodedata.combining(ch))
    cleaned = _SPACES.sub(" ", _NOT_WORD.sub(" ", plain)).strip()
    return cleaned or None


def _dob(value: str) -> str | None:
    value = value.strip()
    for pattern, (y, m, d) in _DATE_FORMATS:
        found = pattern.match(value)
        if found:
            return f"{found[y]}-{int(found[m]):02d}-{int(found[d]):02d}"
    digits = _DIGITS.sub("", value)
    return digits or None


def _postcode(value: str) -> str | None:
    return value.upper().replace(" ", "").replace("-", "") or None


def _email(value: str) -> str | None:
    local, at, domain = value.strip().lower().partition("@")
    local = local.split("+", 1)[0]
    return f"{local}{at}{domain}" if local else None


def _phone(value: str) -> str | None:
    digits = _DIGITS.sub("", value)
    return digits[-9:] if len(digits) >= 6 else None


CLEAN: dict[str, Callable[[str], str | None]] = {
    "name": _text,
    "dob": _dob,
    "postcode": _postcode,
    "city": _text,
    "street": _text,
    "email": _email,
    "phone": _phone,
    "text": _text,
}


@dataclass
class Records:
    """What :func:`read_records` put in ``con``'s table ``records``."""

    count: int = 0
    rows: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # unique_id -> record identifier key

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)


def columns(spec: MatchSpec) -> list[str]:
    """The table's columns: ids, the label, each compared column."""
    return ["unique_id", "record_key", "label", *(c.name for c in spec.compared)]


def read_records(
    con: duckdb.DuckDBPyConnection, path: Path, mapping: TableMapping, normalizer: Normalizer
) -> Records:
    """Read ``path`` through ``mapping``'s ``[match]`` section into the table ``records``."""
    spec = mapping.match
    if spec is None:
        raise InputError(f"the mapping of source {mapping.source!r} has no [match] section")
    check_header(path, mapping)
    names = columns(spec)
    schema = pa.schema([("unique_id", pa.int64())] + [(name, pa.string()) for name in names[1:]])
    con.execute(
        "CREATE OR REPLACE TABLE records (unique_id BIGINT, "
        + ", ".join(f'"{n}" VARCHAR' for n in names[1:])
        + ")"
    )
    out = Records()
    seen: set[str] = set()
    batch: dict[str, list[object]] = {name: [] for name in names}

    def flush() -> None:
        if batch["unique_id"]:
            con.register("batch_in", pa.table(batch, schema=schema))
            con.execute("INSERT INTO records SELECT * FROM batch_in")
            con.unregister("batch_in")
            for values in batch.values():
                values.clear()

    record_type = mapping.identifiers[spec.record]
    for ref, row in _rows(path, mapping):
        out.rows += 1
        if isinstance(row, Rejection):
            out.rejected.append(row)
            continue
        raw = row.get(spec.record, "")
        try:
            key = normalizer.normalize(record_type, raw).key
        except NormalizationError as e:
            out.rejected.append(Rejection(e.code, e.message, ref, spec.record, preview(raw)))
            continue
        if key in seen:
            out.rejected.append(
                Rejection(
                    "duplicate_record",
                    f"{key} is on an earlier row: the first is compared",
                    ref,
                    spec.record,
                    preview(raw),
                )
            )
            continue
        seen.add(key)
        batch["unique_id"].append(out.count)
        batch["record_key"].append(key)
        out.keys.append(key)
        label = row.get(spec.label, "").strip() if spec.label else ""
        batch["label"].append(None if label.lower() in _NULLISH else label)
        for c in spec.compared:
            cell = row[c.column].strip()
            batch[c.name].append(None if cell.lower() in _NULLISH else CLEAN[c.kind](cell))
        out.count += 1
        if len(batch["unique_id"]) >= _BATCH:
            flush()
    flush()
    return out


def _rows(path: Path, mapping: TableMapping) -> Iterator[tuple[str, dict[str, str] | Rejection]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open_input(path) as (_, stream):
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text, delimiter=mapping.delimiter)
        header = next(reader, None) or []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield (
                    str(reader.line_num),
                    Rejection(
                        "wrong_column_count",
                        f"{len(row)} fields where the header has {len(header)}",
                        str(reader.line_num),
                        raw=preview(mapping.delimiter.join(row)),
                    ),
                )
                continue
            yield str(reader.line_num), dict(zip(header, row, strict=True))
        text.detach()
