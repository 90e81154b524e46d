"""CSV tables (a CRM export, a DMP cookie-sync feed) -> observations, through a mapping file.

Every CRM names its columns differently, so a TOML mapping says which column holds which
identifier type and trait (the format is documented in docs/loading.md):

    source = "crm"              party = "first"            timestamp = "Updated"
    [identifiers]  "Customer ID" = "crm_id"   "E-mail" = "email"
    [traits]       "First Name" = "first_name"
    [segments]     column = "segments"  separator = "|"  ttl_days = 30  (or ttl_column)
    [match]        record matching: the columns compared (loaders.match_spec)

The mapping is checked against the identifier types and the file's header before any row is
loaded; a mistake there is an :class:`InputError` naming it. Bad rows are rejected one by one.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from identity.errors import InputError
from identity.model import PARTIES, DmpMembership, Observation, Party, Rejection, TraitValue
from identity.normalize import Normalizer
from loaders.match_spec import MatchSpec, parse_match
from loaders.records import (
    Parsed,
    normalize_all,
    observation_or_rejection,
    open_input,
    parse_timestamp,
    preview,
    trait_value,
)

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TRAIT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TRUE = {"true", "yes", "y", "1", "opt-in", "opted in", "on"}
_FALSE = {"false", "no", "n", "0", "opt-out", "opted out", "off"}


@dataclass(frozen=True)
class DmpSegmentColumn:
    column: str
    separator: str = "|"
    ttl_days: float | None = None
    ttl_column: str | None = None


@dataclass(frozen=True)
class TableMapping:
    source: str
    party: Party
    identifiers: Mapping[str, str]
    traits: Mapping[str, str] = field(default_factory=dict)
    timestamp: str | None = None
    dmp_segments: DmpSegmentColumn | None = None
    delimiter: str = ","
    match: MatchSpec | None = None  # [match]: record matching (identity.matching)

    @property
    def columns(self) -> list[str]:
        """Every column the mapping names."""
        named = [*self.identifiers, *self.traits]
        if self.timestamp:
            named.append(self.timestamp)
        if self.dmp_segments:
            named.append(self.dmp_segments.column)
            if self.dmp_segments.ttl_column:
                named.append(self.dmp_segments.ttl_column)
        if self.match:
            named.extend(c for c in self.match.columns if c not in named)
        return named


def load_mapping(path: Path, identifier_types: tuple[str, ...]) -> TableMapping:
    """Read and check a mapping file; every problem is an :class:`InputError` naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InputError(f"mapping file not found: {path}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"mapping {path}: not valid TOML: {e}") from e
    return parse_mapping(data, identifier_types, where=str(path))


def parse_mapping(
    data: Mapping[str, Any], identifier_types: tuple[str, ...], *, where: str = "mapping"
) -> TableMapping:
    def fail(message: str) -> InputError:
        return InputError(f"{where}: {message}")

    known = {
        "source", "party", "timestamp", "identifiers", "traits", "segments", "delimiter", "match"
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)} (expected: {', '.join(sorted(known))})")
    source = data.get("source")
    if not isinstance(source, str) or not _SOURCE_NAME.match(source):
        raise fail(f'source must be a name such as "crm", got {source!r}')
    party = data.get("party", "first")
    if party not in PARTIES:
        raise fail(f"party must be one of {', '.join(PARTIES)}, got {party!r}")
    identifiers = data.get("identifiers")
    if not isinstance(identifiers, dict) or not identifiers:
        raise fail("[identifiers] must map at least one column to an identifier type")
    for column, type_ in identifiers.items():
        if type_ not in identifier_types:
            raise fail(
                f"column {column!r} maps to unknown identifier type {type_!r} "
                f"(known: {', '.join(identifier_types)})"
            )
    traits = data.get("traits", {})
    if not isinstance(traits, dict):
        raise fail("[traits] must map columns to trait names")
    for column, name in traits.items():
        if not isinstance(name, str) or not _TRAIT_NAME.match(name):
            raise fail(f"trait name for column {column!r} must be a word, got {name!r}")
    timestamp = data.get("timestamp")
    if timestamp is not None and not isinstance(timestamp, str):
        raise fail("timestamp must be a column name")
    delimiter = data.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise fail("delimiter must be one character")
    return TableMapping(
        source=source,
        party=party,
        identifiers=dict(identifiers),
        traits=dict(traits),
        timestamp=timestamp,
        dmp_segments=_dmp_segments(data.get("segments"), fail),
        delimiter=delimiter,
        match=parse_match(data["match"], identifiers, fail) if "match" in data else None,
    )


def _dmp_segments(section: object, fail: Any) -> DmpSegmentColumn | None:
    if section is None:
        return None
    if not isinstance(section, dict) or not isinstance(section.get("column"), str):
        raise fail('[segments] needs column = "<column name>"')
    ttl_days, ttl_column = section.get("ttl_days"), section.get("ttl_column")
    if (ttl_days is None) == (ttl_column is None):
        raise fail("[segments] needs exactly one of ttl_days or ttl_column")
    if ttl_days is not None and (not isinstance(ttl_days, int | float) or ttl_days <= 0):
        raise fail(f"[segments] ttl_days must be a positive number, got {ttl_days!r}")
    separator = section.get("separator", "|")
    if not isinstance(separator, str) or not separator:
        raise fail("[segments] separator must be a non-empty string")
    return DmpSegmentColumn(section["column"], separator, ttl_days, ttl_column)


def read_table(
    stream: IO[bytes], mapping: TableMapping, normalizer: Normalizer, *, now: datetime
) -> Iterator[Parsed]:
    """Yield one observation or rejection per data row; checks the header first."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _rows(text, mapping, normalizer, now)
    finally:
        text.detach()  # the caller owns the binary stream


def _rows(
    text: IO[str], mapping: TableMapping, normalizer: Normalizer, now: datetime
) -> Iterator[Parsed]:
    reader = csv.reader(text, delimiter=mapping.delimiter)
    header = next(reader, None)
    if header is None:
        return
    _check_columns(header, mapping)
    for row in reader:
        ref = str(reader.line_num)
        if not any(cell.strip() for cell in row):
            continue
        if any(_has_surrogates(cell) for cell in row):
            yield Rejection(
                "invalid_utf8",
                "the row is not valid UTF-8",
                ref,
                raw=preview(",".join(c.encode("utf-8", "replace").decode() for c in row)),
            )
            continue
        if len(row) != len(header):
            yield Rejection(
                "wrong_column_count",
                f"{len(row)} fields where the header has {len(header)}",
                ref,
                raw=preview(mapping.delimiter.join(row)),
            )
            continue
        yield _row_to_parsed(dict(zip(header, row, strict=True)), ref, mapping, normalizer, now)


def _has_surrogates(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _row_to_parsed(
    row: dict[str, str],
    ref: str,
    mapping: TableMapping,
    normalizer: Normalizer,
    now: datetime,
) -> Parsed:
    raw = mapping.delimiter.join(row.values())
    at = now
    if mapping.timestamp and row[mapping.timestamp].strip():
        try:
            at = parse_timestamp(row[mapping.timestamp])
        except ValueError as e:
            return Rejection(
                "invalid_timestamp",
                f"{mapping.timestamp}: {e}",
                ref,
                mapping.timestamp,
                preview(raw),
            )
    candidates = [
        (col, type_, row[col]) for col, type_ in mapping.identifiers.items() if row[col].strip()
    ]
    identifiers, rejected = normalize_all(normalizer, candidates, ref)
    traits: dict[str, TraitValue] = {}
    for column, name in mapping.traits.items():
        cell = row[column].strip()
        if cell:
            value = _cell_value(cell, name)
            if value is not None:
                traits[name] = value
    parsed = observation_or_rejection(
        source=mapping.source,
        party=mapping.party,
        record=ref,
        at=at,
        identifiers=identifiers,
        rejected_values=rejected,
        raw=raw,
        traits=traits,
    )
    if isinstance(parsed, Observation) and mapping.dmp_segments:
        _add_dmp_segments(parsed, row, mapping.dmp_segments, ref)
    return parsed


def _cell_value(cell: str, name: str) -> TraitValue | None:
    """Consent columns become booleans ("yes", "opt-in", "1"...); other cells stay text."""
    if name.startswith("consent_"):
        lowered = cell.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return trait_value(cell)


def _add_dmp_segments(
    observation: Observation, row: Mapping[str, str], spec: DmpSegmentColumn, ref: str
) -> None:
    names = [s.strip() for s in row[spec.column].split(spec.separator) if s.strip()]
    if not names:
        return
    ttl = spec.ttl_days
    if spec.ttl_column:
        cell = row[spec.ttl_column].strip()
        try:
            ttl = float(cell)
            if ttl <= 0:
                raise ValueError
        except ValueError:
            observation.rejected_values.append(
                Rejection(
                    "invalid_ttl",
                    f"{spec.ttl_column} must be a positive number of days, got {cell!r}",
                    ref,
                    spec.column,
                    preview(row[spec.column]),
                )
            )
            return
    assert ttl is not None
    expires = observation.at + timedelta(days=ttl)
    observation.dmp_segments.extend(DmpMembership(name, expires) for name in dict.fromkeys(names))


def check_header(path: Path, mapping: TableMapping) -> None:
    """Fail before loading when the file lacks a column the mapping names."""
    try:
        with open_input(path) as (_, stream):
            text = io.TextIOWrapper(stream, "utf-8-sig", errors="replace", newline="")
            header = next(csv.reader(text, delimiter=mapping.delimiter), None)
            text.detach()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from e
    if header is None:
        raise InputError(f"{path} is empty: nothing to load")
    _check_columns(header, mapping, f"{path}: ")


def _check_columns(header: list[str], mapping: TableMapping, where: str = "") -> None:
    missing = [c for c in mapping.columns if c not in header]
    if missing:
        raise InputError(
            f"{where}column(s) {', '.join(repr(c) for c in missing)} named in the mapping are "
            f"not in the file (its columns: {', '.join(repr(c) for c in header)})"
        )
