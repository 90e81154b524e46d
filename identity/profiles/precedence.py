"""A profile: one view of a customer, merged from the traits and events of its identifiers.

Each identifier keeps what every source said about it (``trait.<source>.<name>`` with its
time, event aggregates, third-party segments). A profile picks, per trait name, one value by
the policy's precedence rules (:class:`identity.policy.ProfileRules`):

- by default the source order ``crm > app > web > segment > dmp`` (sources not listed come
  after, by name), then the most recent observation;
- per-trait overrides by name pattern: ``consent_*`` takes the most recent observation
  whatever the source, so a withdrawal on the website beats an older CRM opt-in;
- ties (same source and time) go to the smaller value then identifier key, so the result
  never depends on load order.

It also computes: first and last seen, identifiers per type, event counts with first and last
time per name, consents (``consent_<purpose>`` read as yes/no) and the third-party segments
reaching the identity through its identifiers, each with its latest expiry.

The profile is materialized on the ``(:Identity)`` node as flat properties (listed in
:func:`build_profile`), so that segments compile to plain property filters. Every resolve
rebuilds the profiles of the identities it touched (a split part keeps only its own members'
traits); a change of the precedence rules rebuilds them all (:mod:`identity.profiles.service`).
This module is pure: it builds a profile from members already read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from identity.model import TraitValue
from identity.policy import ProfileRules

# Property prefixes (and names) of the profile on an Identity node; anything else there
# (id, status, size, created_at, ...) belongs to the resolution.
PROFILE_PREFIXES: tuple[str, ...] = (
    "trait.",
    "trait_source.",
    "trait_at.",
    "trait_from.",
    "consent.",
    "count.",
    "event_count.",
    "event_first.",
    "event_last.",
    "dmp.",
)
PROFILE_FIELDS: tuple[str, ...] = ("first_seen", "last_seen", "profiled_at")

_YES = frozenset({"true", "yes", "y", "1", "granted", "opt-in", "opt_in", "optin", "subscribed"})
_NO = frozenset({"false", "no", "n", "0", "denied", "opt-out", "opt_out", "optout", "unsubscribed"})


@dataclass
class Member:
    """What one identifier contributes, as read from the graph (times in epoch ms)."""

    key: str
    type: str
    first_seen: int | None
    last_seen: int | None
    properties: dict[str, Any] = field(default_factory=dict)  # trait.*, trait_at.*, event_*
    dmp_segments: list[tuple[str, int]] = field(default_factory=list)  # (name, expires ms)


@dataclass(frozen=True)
class Summary:
    """What every member contributes, summed up: first and last seen (epoch ms), how many
    identifiers of each type."""

    first_seen: int | None
    last_seen: int | None
    counts: dict[str, int]

    @classmethod
    def of(cls, members: Sequence[Member]) -> Summary:
        firsts = [m.first_seen for m in members if m.first_seen is not None]
        lasts = [m.last_seen for m in members if m.last_seen is not None]
        counts: dict[str, int] = {}
        for m in members:
            counts[m.type] = counts.get(m.type, 0) + 1
        return cls(min(firsts, default=None), max(lasts, default=None), counts)


@dataclass(frozen=True, order=True)
class _Observation:
    source: str
    name: str
    value: TraitValue
    at: int
    key: str


def consent_value(value: object) -> bool | None:
    """A consent trait as yes (True), no (False) or unknown (None): booleans, 1/0 and the
    usual words (``true``, ``yes``, ``granted``, ``opt-in``, ``subscribed`` and opposites)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
    return None


def _observations(member: Member) -> Iterable[_Observation]:
    props = member.properties
    for prop, value in props.items():
        if not prop.startswith("trait."):
            continue
        source, _, name = prop[len("trait.") :].partition(".")
        at = props.get(f"trait_at.{source}.{name}")
        yield _Observation(source, name, value, int(at or 0), member.key)


def _chooser(rules: ProfileRules, name: str) -> Callable[[_Observation], tuple[Any, ...]]:
    """The sort key of ``name``'s observations under its rule: the smallest wins."""
    rule = rules.rule(name)
    if isinstance(rule, str):  # "latest"
        return lambda o: (-o.at, o.source, str(o.value), o.key)
    rank = {source: i for i, source in enumerate(rule)}
    last = len(rule)
    return lambda o: (rank.get(o.source, last), o.source, -o.at, str(o.value), o.key)


def choose_traits(members: Sequence[Member], rules: ProfileRules) -> dict[str, _Observation]:
    """Per trait name, the observation the precedence rules pick."""
    by_name: dict[str, list[_Observation]] = {}
    for member in members:
        for observation in _observations(member):
            by_name.setdefault(observation.name, []).append(observation)
    return {name: min(found, key=_chooser(rules, name)) for name, found in by_name.items()}


def _millis(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def build_profile(
    members: Sequence[Member],
    rules: ProfileRules,
    now: datetime,
    summary: Summary | None = None,
) -> dict[str, Any]:
    """The profile properties of an identity with ``members`` (none: an empty profile);
    ``summary`` (default: from ``members``) when only the members with traits, events or
    segments are given.

    ``trait.<name>`` (value), ``trait_source.<name>``, ``trait_at.<name>``,
    ``trait_from.<name>`` (identifier key); ``consent.<purpose>`` (bool, from the chosen
    ``consent_<purpose>`` trait, absent when not a yes or a no); ``first_seen``,
    ``last_seen``; ``count.<type>``; ``event_count.<name>``, ``event_first.<name>``,
    ``event_last.<name>``; ``dmp.<segment>`` (latest expiry); ``profiled_at`` (when it was
    built: written only when something else changed).
    """
    props: dict[str, Any] = {"profiled_at": now}
    total = summary or Summary.of(members)
    if total.first_seen is not None:
        props["first_seen"] = _millis(total.first_seen)
    if total.last_seen is not None:
        props["last_seen"] = _millis(total.last_seen)
    for type_, n in total.counts.items():
        props[f"count.{type_}"] = n
    for name, chosen in choose_traits(members, rules).items():
        props[f"trait.{name}"] = chosen.value
        props[f"trait_source.{name}"] = chosen.source
        props[f"trait_at.{name}"] = _millis(chosen.at)
        props[f"trait_from.{name}"] = chosen.key
        if name.startswith("consent_") and len(name) > len("consent_"):
            granted = consent_value(chosen.value)
            if granted is not None:
                props[f"consent.{name[len('consent_') :]}"] = granted
    events: dict[str, list[int]] = {}
    expiry: dict[str, int] = {}
    for member in members:
        p = member.properties
        for prop, value in p.items():
            if prop.startswith("event_count."):
                name = prop[len("event_count.") :]
                first, last = p.get(f"event_first.{name}"), p.get(f"event_last.{name}")
                entry = events.setdefault(name, [0, first or 0, last or 0])
                entry[0] += int(value)
                if first is not None and (entry[1] == 0 or first < entry[1]):
                    entry[1] = first
                if last is not None and last > entry[2]:
                    entry[2] = last
        for segment, expires in member.dmp_segments:
            expiry[segment] = max(expiry.get(segment, expires), expires)
    for name, (n, first, last) in events.items():
        props[f"event_count.{name}"] = n
        props[f"event_first.{name}"] = _millis(first or None)
        props[f"event_last.{name}"] = _millis(last or None)
    for segment, expires in expiry.items():
        props[f"dmp.{segment}"] = _millis(expires)
    return props


def is_profile_property(name: str) -> bool:
    return name in PROFILE_FIELDS or name.startswith(PROFILE_PREFIXES)
