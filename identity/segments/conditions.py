"""The parse tree of a segment definition: plain values, so that the store can compile it
(:mod:`identity.store.segment_query`) without depending on the language's parser
(:mod:`identity.segments.language`). Imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class All:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


@dataclass(frozen=True)
class Trait:
    name: str
    op: str
    value: Any  # a scalar, a tuple of scalars (in) or a bool (exists)


@dataclass(frozen=True)
class HasIdentifier:
    type: str
    count_gte: int


@dataclass(frozen=True)
class Event:
    name: str
    count_gte: int
    within_days: int | None


@dataclass(frozen=True)
class DmpSegment:
    name: str


@dataclass(frozen=True)
class Consent:
    purpose: str


@dataclass(frozen=True)
class LastSeen:
    days: int


Condition = All | AnyOf | Not | Trait | HasIdentifier | Event | DmpSegment | Consent | LastSeen


def trait_key(name: str) -> str:
    return f"trait.{name}"
