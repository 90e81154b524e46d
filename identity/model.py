"""Value types shared by loaders, the store and the services; this module imports nothing
of the project, so that any layer may use it.

Loaders turn outside records into :class:`Observation` values; the store writes them. A
resolve plans its changes as :class:`Unit` values (identities, moves, merges and their
:class:`Event` records) that the store writes. These types hold no behaviour beyond what
makes them comparable and printable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

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
    # computed once: loads read it several times per record
    key: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.type}:{self.value}")


def split_key(key: str) -> tuple[str, str]:
    """``type:value`` -> (type, value): the key holds both, so reads need not fetch them."""
    type_, _, value = key.partition(":")
    return type_, value


@dataclass(frozen=True, slots=True)
class Rejection:
    """Something that was not loaded, and why: a whole record or one value of a record."""

    code: str
    message: str
    record: str
    field: str | None = None
    raw: object = None


@dataclass(frozen=True, slots=True)
class DmpMembership:
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
    dmp_segments: list[DmpMembership] = field(default_factory=list)
    rejected_values: list[Rejection] = field(default_factory=list)

    @property
    def primary(self) -> Identifier | None:
        return self.identifiers[0] if self.identifiers else None


# -- lineage: what a resolve writes ----------------------------------------------------------

_ID_POOL: list[str] = []


def new_id() -> str:
    """A random 128-bit id as 32 hex digits (identities and events): drawn from the OS
    random source 4,096 at a time, a fifth of the cost of ``str(uuid.uuid4())`` each."""
    if not _ID_POOL:
        pool = os.urandom(16 * 4096).hex()
        _ID_POOL.extend(pool[i : i + 32] for i in range(0, len(pool), 32))
    return _ID_POOL.pop()


@dataclass(frozen=True)
class OldIdentity:
    id: str
    created_at: int  # epoch ms


@dataclass
class Event:
    kind: str  # created | merged | split | quarantined
    reason: str
    identities: list[tuple[str, str]]  # (identity id, role)
    id: str = field(default_factory=lambda: new_id())


@dataclass
class Unit:
    """One independent change: identities to write, memberships to move, events.

    A *fresh* unit is one new identity whose identifiers had none: the writer creates it,
    its memberships and its event in one statement.
    """

    identities: list[dict[str, object]] = field(default_factory=list)  # id, size, new
    moves: list[dict[str, object]] = field(default_factory=list)  # key, node -> id
    members: list[str] = field(default_factory=list)  # a fresh unit's identifiers
    member_nodes: list[int] = field(default_factory=list)  # their internal ids
    merged: list[dict[str, str]] = field(default_factory=list)  # loser -> winner
    events: list[Event] = field(default_factory=list)
    fresh: bool = False
    profile: dict[str, Any] | None = None  # a fresh unit's profile: props, times (epoch ms)

    @property
    def weight(self) -> int:
        moved = len(self.moves) + len(self.members)
        return len(self.identities) + moved + len(self.merged) + len(self.events)


@dataclass(frozen=True)
class MatchStep:
    """One comparison of a matched pair: the level it reached and its match weight (log2 of
    the level's m/u, its term-frequency adjustment included)."""

    comparison: str
    level: str
    weight: float


@dataclass(frozen=True)
class MatchScore:
    """Why record matching scored a pair: the prior's weight, then each comparison's (the
    waterfall); the sum is the match weight w, and the probability ``2^w / (1 + 2^w)``."""

    probability: float
    prior_weight: float
    steps: tuple[MatchStep, ...]
    source: str
    model: int

    @property
    def match_weight(self) -> float:
        return self.prior_weight + sum(step.weight for step in self.steps)
