"""What a profile says about a customer: traits, events, consents, computed traits.

The chosen traits and the computed ones are read from the profile materialized on the
identity (:mod:`identity.profiles.precedence`); ``traitObservations`` lists every source's value as
loaded on each identifier, which is what the precedence rules chose from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from identity.store.reads import instant, native, when


@strawberry.type(description="A trait: its value, the source and time it was seen at, and the "
                 "identifier it was seen on.")  # fmt: skip
class Trait:
    name: str
    value: JSON | None
    source: str
    observed_at: datetime | None
    identifier: str = strawberry.field(description="The key of the identifier it was seen on.")


@strawberry.type(description="How often the identity did something, over all its identifiers.")
class EventAggregate:
    name: str
    count: int
    first_at: datetime | None
    last_at: datetime | None


@strawberry.type(description="A consent purpose (from the trait consent_<purpose>).")
class Consent:
    purpose: str
    granted: bool
    source: str | None
    observed_at: datetime | None


@strawberry.type
class IdentifierCount:
    type: str
    count: int


@strawberry.type(description="A third-party segment reaching the identity, until it expires.")
class DmpSegment:
    name: str
    expires_at: datetime


def observed_traits(members: list[list[Any]]) -> list[Trait]:
    """Every ``trait.<source>.<name>`` of the members, by name then newest first."""
    traits: list[Trait] = []
    for key, props in members:
        values = dict(props)
        for prop, value in values.items():
            if prop.startswith("trait."):
                source, _, name = prop[len("trait.") :].partition(".")
                traits.append(
                    Trait(
                        name=name,
                        value=native(value),
                        source=source,
                        observed_at=when(values.get(f"trait_at.{source}.{name}")),
                        identifier=key,
                    )
                )
    traits.sort(key=lambda t: (t.name, -(t.observed_at.timestamp() if t.observed_at else 0)))
    return traits


@dataclass
class ProfileView:
    """A materialized profile (``[[property, value]]`` as read) in API types."""

    traits: list[Trait] = field(default_factory=list)
    events: list[EventAggregate] = field(default_factory=list)
    consents: list[Consent] = field(default_factory=list)
    counts: list[IdentifierCount] = field(default_factory=list)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    dmp: list[DmpSegment] = field(default_factory=list)

    def dmp_segments(self, now: datetime) -> list[DmpSegment]:
        return [s for s in self.dmp if s.expires_at > now]

    @classmethod
    def of(cls, props: list[list[Any]]) -> ProfileView:
        p = dict(props)
        view = cls(first_seen=when(p.get("first_seen")), last_seen=when(p.get("last_seen")))
        for prop, value in sorted(p.items()):
            kind, _, name = prop.partition(".")
            if kind == "trait":
                view.traits.append(
                    Trait(
                        name=name,
                        value=value,
                        source=p.get(f"trait_source.{name}") or "",
                        observed_at=when(p.get(f"trait_at.{name}")),
                        identifier=p.get(f"trait_from.{name}") or "",
                    )
                )
            elif kind == "event_count":
                view.events.append(
                    EventAggregate(
                        name=name,
                        count=int(value),
                        first_at=when(p.get(f"event_first.{name}")),
                        last_at=when(p.get(f"event_last.{name}")),
                    )
                )
            elif kind == "consent":
                trait = f"consent_{name}"
                view.consents.append(
                    Consent(
                        purpose=name,
                        granted=bool(value),
                        source=p.get(f"trait_source.{trait}"),
                        observed_at=when(p.get(f"trait_at.{trait}")),
                    )
                )
            elif kind == "count":
                view.counts.append(IdentifierCount(type=name, count=int(value)))
            elif kind == "dmp" and value is not None:
                view.dmp.append(DmpSegment(name=name, expires_at=instant(value)))
        return view
