"""Segments: a small JSON language for "which customers", parsed, validated and evaluated.

A definition is a tree of conditions on the profile properties that ``identity.profiles``
materializes on each active ``(:Identity)``:

- ``{"all": [c, ...]}``, ``{"any": [c, ...]}`` (non-empty lists), ``{"not": c}``;
- ``{"trait": "country", "eq": "FR"}`` with exactly one operator: ``eq``, ``neq``, ``in`` (a
  non-empty list of scalars), ``gt``, ``gte``, ``lt``, ``lte`` (a number or a string),
  ``contains`` (a string) or ``exists`` (``false``: the trait is missing). ``neq`` matches
  profiles *having* the trait with another value; ``{"not": {"trait": ..., "eq": ...}}`` also
  matches profiles without it. Values of another type never match (``1`` is not ``"1"``);
- ``{"has_identifier": "email", "count_gte": 2}``: at least that many identifiers of a type
  of the policy (``count_gte`` defaults to 1);
- ``{"event": "Order Completed", "count_gte": 2, "within_days": 30}``: ``count_gte`` is on
  the *all-time* count of the event (profiles keep aggregates, not every occurrence), and
  ``within_days`` asks that its *last* occurrence be within the last D days: "2 orders, the
  last one this month", not "2 orders this month". Both are optional: the event alone means
  it happened at least once;
- ``{"dmp_segment": "travel_intenders"}``: a third-party segment not expired now;
- ``{"consent": "marketing"}``: consent for that purpose granted (unknown is not granted);
- ``{"last_seen_within_days": 90}``: the identity was seen in the last D days.

Every problem of a definition is reported at once, each with the JSON path of its node
(``$.all[1].trait``) and the reason. Trees are capped at depth 16 and 200 conditions.
:func:`matches` is the reference semantics, in Python; the store compiles the same tree to
parameterized Cypher (``identity.store.segment_query``); the tree itself is
:mod:`identity.segments.conditions` and tests hold the two together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from identity.errors import InputError
from identity.segments.conditions import (
    All,
    AnyOf,
    Condition,
    Consent,
    DmpSegment,
    Event,
    HasIdentifier,
    LastSeen,
    Not,
    Trait,
    trait_key,
)

MAX_DEPTH = 16
MAX_NODES = 200
MAX_NAME = 200
MAX_IN = 1000
MAX_DAYS = 36600

OPERATORS = ("eq", "neq", "in", "gt", "gte", "lt", "lte", "contains", "exists")
_ALLOWED = {
    "all": {"all"},
    "any": {"any"},
    "not": {"not"},
    "trait": {"trait", *OPERATORS},
    "has_identifier": {"has_identifier", "count_gte"},
    "event": {"event", "count_gte", "within_days"},
    "dmp_segment": {"dmp_segment"},
    "consent": {"consent"},
    "last_seen_within_days": {"last_seen_within_days"},
}
_KINDS = tuple(_ALLOWED)


class SegmentDefinitionError(InputError):
    """A segment definition is invalid; ``problems`` lists (JSON path, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        listed = "; ".join(f"{path}: {reason}" for path, reason in problems)
        super().__init__(f"invalid segment definition ({len(problems)} problems): {listed}")


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and not math.isfinite(value):
        return "a non-finite number"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if _is_number(value) else type(value).__name__
    )


class _Parser:
    def __init__(self, identifier_types: Collection[str]) -> None:
        self.types = identifier_types
        self.problems: list[tuple[str, str]] = []
        self.nodes = 0
        self.truncated = False

    def fail(self, path: str, reason: str) -> None:
        self.problems.append((path, reason))

    def name(self, node: Mapping[str, Any], key: str, path: str) -> str | None:
        value = node[key]
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}", f"must be a non-empty string, got {_kind(value)}")
            return None
        if len(value) > MAX_NAME:
            self.fail(f"{path}.{key}", f"longer than {MAX_NAME} characters")
            return None
        return value

    def count(self, node: Mapping[str, Any], key: str, path: str, top: int) -> int | None:
        value = node[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            shown = value if _is_number(value) else _kind(value)
            self.fail(f"{path}.{key}", f"must be a whole number from 1 to {top}, got {shown}")
            return None
        return value

    def parse(self, node: Any, path: str, depth: int) -> Condition | None:
        if self.nodes >= MAX_NODES:
            self.truncated = True
            return None
        self.nodes += 1
        if depth > MAX_DEPTH:
            self.fail(path, f"nested deeper than {MAX_DEPTH} levels: flatten the definition")
            return None
        if not isinstance(node, dict):
            self.fail(path, f"a condition must be an object, got {_kind(node)}")
            return None
        kinds = [k for k in _KINDS if k in node]
        if not kinds:
            unknown = ", ".join(repr(k) for k in node) or "nothing"
            self.fail(path, f"no condition in {unknown}: expected one of {', '.join(_KINDS)}")
            return None
        if len(kinds) > 1:
            self.fail(
                path,
                f"mixes {' and '.join(kinds)}: one condition per object (combine with all/any)",
            )
            return None
        kind = kinds[0]
        for key in node:
            if key not in _ALLOWED[kind]:
                allowed = ", ".join(sorted(_ALLOWED[kind]))
                self.fail(
                    f"{path}.{key}", f"unknown key in a {kind} condition (allowed: {allowed})"
                )
        found: Condition | None = getattr(self, f"_{kind}")(node, path, depth)
        return found

    def _group(self, node: Mapping[str, Any], path: str, depth: int, key: str) -> Any:
        parts = node[key]
        if not isinstance(parts, list) or not parts:
            self.fail(
                f"{path}.{key}", f"must be a non-empty list of conditions, got {_kind(parts)}"
            )
            return None
        parsed = []
        for i, part in enumerate(parts):
            parsed.append(self.parse(part, f"{path}.{key}[{i}]", depth + 1))
        return None if None in parsed else tuple(parsed)

    def _all(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        parts = self._group(node, path, depth, "all")
        return All(parts) if parts else None

    def _any(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        parts = self._group(node, path, depth, "any")
        return AnyOf(parts) if parts else None

    def _not(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        part = self.parse(node["not"], f"{path}.not", depth + 1)
        return Not(part) if part else None

    def _trait(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        name = self.name(node, "trait", path)
        ops = [k for k in OPERATORS if k in node]
        if len(ops) != 1:
            self.fail(
                path,
                f"a trait condition needs exactly one operator of {', '.join(OPERATORS)}, "
                f"got {', '.join(ops) or 'none'}",
            )
            return None
        op = ops[0]
        value, where = node[op], f"{path}.{op}"
        ok = True
        if op in ("eq", "neq"):
            ok = _is_scalar(value)
            need = "a string, number or boolean"
        elif op == "in":
            ok = isinstance(value, list) and 0 < len(value) <= MAX_IN
            ok = ok and all(_is_scalar(v) for v in value)
            need = f"a non-empty list (up to {MAX_IN}) of strings, numbers or booleans"
            value = tuple(value) if ok else value
        elif op in ("gt", "gte", "lt", "lte"):
            ok = _is_number(value) or isinstance(value, str)
            need = "a number or a string"
        elif op == "contains":
            ok = isinstance(value, str) and value != ""
            need = "a non-empty string"
        else:
            ok = isinstance(value, bool)
            need = "true or false"
        if not ok:
            self.fail(where, f"must be {need}, got {_kind(value)}")
            return None
        return Trait(name, op, value) if name else None

    def _has_identifier(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        type_ = self.name(node, "has_identifier", path)
        if type_ is not None and type_ not in self.types:
            self.fail(
                f"{path}.has_identifier",
                f"unknown identifier type {type_!r} (known: {', '.join(self.types)})",
            )
            type_ = None
        count = self.count(node, "count_gte", path, 10**6) if "count_gte" in node else 1
        return HasIdentifier(type_, count) if type_ and count else None

    def _event(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        name = self.name(node, "event", path)
        count = self.count(node, "count_gte", path, 10**9) if "count_gte" in node else 1
        days = self.count(node, "within_days", path, MAX_DAYS) if "within_days" in node else -1
        if name is None or count is None or days is None:
            return None
        return Event(name, count, None if days == -1 else days)

    def _dmp_segment(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        name = self.name(node, "dmp_segment", path)
        return DmpSegment(name) if name else None

    def _consent(self, node: Mapping[str, Any], path: str, depth: int) -> Condition | None:
        purpose = self.name(node, "consent", path)
        return Consent(purpose) if purpose else None

    def _last_seen_within_days(
        self, node: Mapping[str, Any], path: str, depth: int
    ) -> Condition | None:
        days = self.count(node, "last_seen_within_days", path, MAX_DAYS)
        return LastSeen(days) if days else None


def parse(definition: Any, identifier_types: Collection[str]) -> Condition:
    """The condition tree of a definition (a JSON value, or JSON text), or
    :class:`SegmentDefinitionError` listing every problem with its path."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as e:
            raise SegmentDefinitionError([("$", f"not JSON: {e}")]) from e
    parser = _Parser(identifier_types)
    tree = parser.parse(definition, "$", 1)
    if parser.truncated:
        parser.fail("$", f"more than {MAX_NODES} conditions: split it into simpler segments")
    if parser.problems or tree is None:
        raise SegmentDefinitionError(parser.problems or [("$", "invalid")])
    return tree


def to_json(condition: Condition) -> dict[str, Any]:
    """The canonical JSON form of a tree (what is stored and shown)."""
    match condition:
        case All(parts):
            return {"all": [to_json(p) for p in parts]}
        case AnyOf(parts):
            return {"any": [to_json(p) for p in parts]}
        case Not(part):
            return {"not": to_json(part)}
        case Trait(name, op, value):
            return {"trait": name, op: list(value) if op == "in" else value}
        case HasIdentifier(type_, count):
            return {"has_identifier": type_, **({"count_gte": count} if count != 1 else {})}
        case Event(name, count, days):
            found: dict[str, Any] = {"event": name}
            if count != 1:
                found["count_gte"] = count
            if days is not None:
                found["within_days"] = days
            return found
        case DmpSegment(name):
            return {"dmp_segment": name}
        case Consent(purpose):
            return {"consent": purpose}
        case LastSeen(days):
            return {"last_seen_within_days": days}
    raise TypeError(condition)


def traits_of(condition: Condition) -> list[str]:
    """The trait names a tree looks at, in order of appearance."""
    match condition:
        case All(parts) | AnyOf(parts):
            return list(dict.fromkeys(n for p in parts for n in traits_of(p)))
        case Not(part):
            return traits_of(part)
        case Trait(name, _, _):
            return [name]
    return []


def _same(a: Any, b: Any) -> bool:
    """Cypher equality of stored scalars: numbers with numbers, strings with strings, booleans
    with booleans; values of different types are never equal."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return isinstance(a, str) and isinstance(b, str) and a == b


def _order(a: Any, b: Any, op: str) -> bool:
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    return bool({"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op])


def _recent(value: Any, now: datetime, days: int) -> bool:
    return isinstance(value, datetime) and value >= now - timedelta(days=days)


def matches(condition: Condition, profile: Mapping[str, Any], now: datetime) -> bool:
    """Whether a profile (an Identity's properties) meets the condition at time ``now``:
    the reference semantics the compiled Cypher follows."""
    match condition:
        case All(parts):
            return all(matches(p, profile, now) for p in parts)
        case AnyOf(parts):
            return any(matches(p, profile, now) for p in parts)
        case Not(part):
            return not matches(part, profile, now)
        case Trait(name, op, value):
            held = profile.get(trait_key(name))
            if op == "exists":
                return (held is not None) is bool(value)
            if held is None:
                return False
            if op == "eq":
                return _same(held, value)
            if op == "neq":
                return not _same(held, value)
            if op == "in":
                return any(_same(held, v) for v in value)
            if op == "contains":
                return isinstance(held, str) and value in held
            return _order(held, value, op)
        case HasIdentifier(type_, count):
            return int(profile.get(f"count.{type_}") or 0) >= count
        case Event(name, count, days):
            if int(profile.get(f"event_count.{name}") or 0) < count:
                return False
            return days is None or _recent(profile.get(f"event_last.{name}"), now, days)
        case DmpSegment(name):
            expires = profile.get(f"dmp.{name}")
            return isinstance(expires, datetime) and expires > now
        case Consent(purpose):
            return profile.get(f"consent.{purpose}") is True
        case LastSeen(days):
            return _recent(profile.get("last_seen"), now, days)
    raise TypeError(condition)
