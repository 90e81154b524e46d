"""The ``[match]`` section of a table's mapping file: which columns record matching compares.

    [match]
    record = "Customer ID"                 # the column whose identifier stands for the record
    label = "Person"                       # optional: records with one label are one person
    blocking = [["Last Name"], ["Birth Date"], ["Zip", "Street"]]   # default: see below
    [match.compare]
    "First Name" = "name"    "Last Name" = "name"    "Birth Date" = "dob"
    "Zip" = "postcode"       "City" = "city"         "Street" = "street"
    "E-mail" = "email"       "Phone" = "phone"       "Tax number" = "text"

A blocking rule lists columns that must be equal for two records to be compared at all
(pairs meeting any rule are compared). Without ``blocking``, each compared column of kind
dob, email, phone or text is a rule on its own, the name columns together are one more, and a
postcode goes with the street (or the last name column; alone when there is neither).
Mappings without a ``[match]`` section load as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from identity.errors import InputError

# the kinds of comparison (identity.matching.comparisons builds each one)
KINDS = ("name", "dob", "postcode", "city", "street", "email", "phone", "text")
_ALONE = ("dob", "email", "phone", "text")
_NAME = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Compared:
    column: str  # as in the file
    kind: str
    name: str  # a SQL-safe name, unique within the section (e.g. "last_name")


@dataclass(frozen=True)
class MatchSpec:
    record: str
    compared: tuple[Compared, ...]
    blocking: tuple[tuple[str, ...], ...]  # each rule: SQL-safe names of compared columns
    label: str | None = None

    @property
    def columns(self) -> list[str]:
        """Every file column the section names."""
        return [self.record, *(c.column for c in self.compared)] + (
            [self.label] if self.label else []
        )

    def by_name(self, name: str) -> Compared:
        return next(c for c in self.compared if c.name == name)

    def fingerprint(self) -> str:
        """A short hash of what a model depends on: the comparisons and the blocking rules."""
        text = json.dumps(
            [[(c.name, c.kind) for c in self.compared], [list(r) for r in self.blocking]]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_match(
    section: object, identifiers: Mapping[str, str], fail: Callable[[str], InputError]
) -> MatchSpec:
    """Check a ``[match]`` section against the mapping's identifier columns."""
    if not isinstance(section, dict):
        raise fail("[match] must be a table")
    known = {"record", "label", "blocking", "compare"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise fail(
            f"[match]: unknown key(s) {', '.join(unknown)} (expected: {', '.join(sorted(known))})"
        )
    record = section.get("record")
    if not isinstance(record, str) or record not in identifiers:
        raise fail(
            f"[match] record must name one of the [identifiers] columns "
            f"({', '.join(repr(c) for c in identifiers)}), got {record!r}"
        )
    compare = section.get("compare")
    if not isinstance(compare, dict) or not compare:
        raise fail("[match.compare] must map at least one column to a kind of comparison")
    compared: list[Compared] = []
    names: set[str] = set()
    for column, kind in compare.items():
        if kind not in KINDS:
            raise fail(
                f"[match.compare] column {column!r}: unknown kind {kind!r} "
                f"(known: {', '.join(KINDS)})"
            )
        name = _sql_name(column, names)
        names.add(name)
        compared.append(Compared(column, kind, name))
    label = section.get("label")
    if label is not None and not isinstance(label, str):
        raise fail("[match] label must be a column name")
    by_column = {c.column: c.name for c in compared}
    blocking = section.get("blocking")
    if blocking is None:
        rules: list[tuple[str, ...]] = [(c.name,) for c in compared if c.kind in _ALONE]
        named = tuple(c.name for c in compared if c.kind == "name")
        if named:
            rules.append(named)
        # a postcode alone pairs a whole town: with the street (or the last name) instead
        streets = [c.name for c in compared if c.kind == "street"] or list(named[-1:])
        for c in compared:
            if c.kind == "postcode" and streets:
                rules.append((c.name, streets[0]))
            elif c.kind == "postcode":
                rules.append((c.name,))
    else:
        if not isinstance(blocking, list) or not blocking:
            raise fail("[match] blocking must be a list of rules, each a list of columns")
        rules = []  # filled below
        for rule in blocking:
            if not isinstance(rule, list) or not rule or not all(isinstance(c, str) for c in rule):
                raise fail(f"[match] blocking rule {rule!r} must be a list of column names")
            missing = [c for c in rule if c not in by_column]
            if missing:
                raise fail(
                    f"[match] blocking rule {rule!r} names {', '.join(map(repr, missing))}, "
                    "not a column of [match.compare]"
                )
            rules.append(tuple(by_column[c] for c in rule))
    if not rules:
        raise fail("[match] needs a blocking rule (no compared column makes one on its own)")
    return MatchSpec(record, tuple(compared), tuple(dict.fromkeys(rules)), label)


def _sql_name(column: str, taken: set[str]) -> str:
    base = _NAME.sub("_", column.lower()).strip("_") or "column"
    if base[0].isdigit():
        base = "c_" + base
    name, n = base, 2
    while name in taken or name in {"unique_id", "record_key", "label"}:
        name, n = f"{base}_{n}", n + 1
    return name
