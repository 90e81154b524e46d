"""Value types shared by loaders, the store and the resolver.

Loaders turn outside records into :class:`Observation` values; the store writes them. These
types hold no behaviour beyond what makes them comparable and printable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Party = Literal["first", "second", "third"]
PARTIES: tuple[Party, ...] = ("first", "second", "third")

# A trait value as stored: lists and objects are kept as their JSON text.
TraitValue = str | int | float | bool


@dataclass(frozen=True, slots=True, order=True)
class Identifier:
    """A normalized identifier. ``key`` (``type:value``) is unique in the graph."""

    type: str
    value: str
    hashed: bool = False

    @property
    def key(self) -> str:
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Something that was not loaded, and why: a whole record or one value of a record."""

    code: str
    message: str
    record: str
    field: str | None = None
    raw: object = None


@dataclass(frozen=True, slots=True)
class SegmentMembership:
    """A third-party segment seen on the record's identifiers, valid until ``expires_at``."""

    name: str
    expires_at: datetime


@dataclass(slots=True)
class Observation:
    """One accepted input record: what was seen together, when and by which source.

    ``record`` is the reference kept as evidence (a line number, or the Segment messageId).
    ``primary`` (the first identifier: the userId or the CRM's first mapped column when
    present) is the one that traits and event aggregates are recorded on, so an event counts
    once per identity whatever the number of identifiers the record carried, and after a
    split the traits stay with the part holding the identifier they were stated for.
    Third-party segments are recorded on every identifier of the record.
    """

    source: str
    party: Party
    record: str
    at: datetime
    identifiers: list[Identifier]
    message_id: str | None = None
    traits: dict[str, TraitValue] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    segments: list[SegmentMembership] = field(default_factory=list)
    rejected_values: list[Rejection] = field(default_factory=list)

    @property
    def primary(self) -> Identifier | None:
        return self.identifiers[0] if self.identifiers else None
