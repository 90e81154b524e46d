"""A segment's condition tree as a Cypher predicate on ``p`` (an ``(:Identity)``).

The text is assembled from the fixed fragments below only: every name (trait, event, DMP
segment, purpose, identifier type) goes in as a property key *parameter* (``p[$s0]``) and
every value, cutoff and "now" as a value parameter, so nothing of a definition ever reaches
the query text. Each leaf is a never-null boolean (``coalesce(..., false)``), so that ``NOT``
of a condition on a missing property is true, as :func:`identity.segments.language.matches` says.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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

_COMPARE = {"eq": "=", "neq": "<>", "in": "IN", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def compile_condition(condition: Condition, now: datetime) -> tuple[str, dict[str, Any]]:
    """``(predicate, parameters)``: the predicate holds for the identities ``p`` that
    match at ``now`` (an aware datetime, the time the query runs)."""
    params: dict[str, Any] = {}

    def param(value: Any) -> str:
        name = f"s{len(params)}"
        params[name] = value
        return "$" + name

    def walk(c: Condition) -> str:
        match c:
            case All(parts):
                return "(" + " AND ".join(walk(p) for p in parts) + ")"
            case AnyOf(parts):
                return "(" + " OR ".join(walk(p) for p in parts) + ")"
            case Not(part):
                return "(NOT " + walk(part) + ")"
            case Trait(name, op, value):
                key = param(trait_key(name))
                if op == "exists":
                    return f"(p[{key}] IS {'NOT ' if value else ''}NULL)"
                if op == "contains":
                    # CONTAINS on a number is an error, not null: test the type first
                    return (
                        f"coalesce(p[{key}] IS :: STRING NOT NULL "
                        f"AND p[{key}] CONTAINS {param(value)}, false)"
                    )
                given = param(list(value) if op == "in" else value)
                return f"coalesce(p[{key}] {_COMPARE[op]} {given}, false)"
            case HasIdentifier(type_, count):
                return f"(coalesce(p[{param('count.' + type_)}], 0) >= {param(count)})"
            case Event(name, count, days):
                held = f"(coalesce(p[{param('event_count.' + name)}], 0) >= {param(count)})"
                if days is None:
                    return held
                last = f"p[{param('event_last.' + name)}]"
                cutoff = param(now - timedelta(days=days))
                return f"({held} AND coalesce({last} >= {cutoff}, false))"
            case DmpSegment(name):
                return f"coalesce(p[{param('dmp.' + name)}] > {param(now)}, false)"
            case Consent(purpose):
                return f"coalesce(p[{param('consent.' + purpose)}] = true, false)"
            case LastSeen(days):
                return f"coalesce(p.last_seen >= {param(now - timedelta(days=days))}, false)"
        raise TypeError(c)

    return walk(condition), params
