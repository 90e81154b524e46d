"""The linking policy's values: per-type rules, party and source trust, guards, profiles,
consent, and the Segment mapping. Every field has a default, so ``Policy()`` is a working
policy; :mod:`identity.policy.parse` reads one from its TOML file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from identity.normalize import DEFAULT_TYPES

PhoneCheck = Literal["valid", "possible"]
PHONE_CHECKS: tuple[PhoneCheck, ...] = ("valid", "possible")

# "latest", or sources in order of precedence
TraitRule = str | tuple[str, ...]

DEFAULT_EXTERNAL_ID_TYPES: Mapping[str, str] = {
    "cookie": "cookie",
    "anonymous_id": "cookie",
    "ga_client_id": "cookie",
    "email": "email",
    "phone": "phone",
    "device": "device",
    "device_id": "device",
    "maid": "maid",
    "idfa": "maid",
    "gaid": "maid",
    "crm_id": "crm_id",
    "user_id": "crm_id",
    "dmp_id": "dmp_id",
}

WORD = re.compile(r"^[a-z][a-z0-9_]{0,31}$")  # an identifier type, a consent purpose


@dataclass(frozen=True)
class TypeRule:
    """How identifiers of one type take part in identities.

    ``limit``: most identifiers of this type one identity may hold (None: no limit).
    ``priority``: a link's weight is the lower priority of its two ends; when a limit is hit,
    heavier links are kept first. ``ttl_days``: a link involving this type stops merging
    once it has not been seen for that long (None: never expires; a link takes the shorter
    TTL of its two ends).
    """

    limit: int | None = None
    priority: int = 10
    ttl_days: int | None = None


DEFAULT_RULES: Mapping[str, TypeRule] = {
    "crm_id": TypeRule(limit=1, priority=100),
    "email": TypeRule(limit=5, priority=80),
    "phone": TypeRule(limit=3, priority=60),
    "device": TypeRule(limit=10, priority=40, ttl_days=730),
    "maid": TypeRule(limit=10, priority=30, ttl_days=730),
    "cookie": TypeRule(limit=200, priority=20, ttl_days=180),
    "dmp_id": TypeRule(limit=10, priority=5, ttl_days=30),
}
DEFAULT_PARTY_MERGE: Mapping[str, bool] = {"first": True, "second": True, "third": False}
DEFAULT_ANCHOR_TYPES: tuple[str, ...] = ("crm_id", "email", "phone")
DEFAULT_MAX_IDENTITY_SIZE = 1000
DEFAULT_SOURCE_PRIORITY: tuple[str, ...] = ("crm", "app", "web", "segment", "dmp")
DEFAULT_TRAIT_RULES: tuple[tuple[str, TraitRule], ...] = (("consent_*", "latest"),)
DEFAULT_CONSENT: Mapping[str, str] = {
    "email": "marketing",
    "phone": "marketing",
    "crm_id": "marketing",
    "cookie": "ads",
    "device": "ads",
    "maid": "ads",
    "dmp_id": "ads",
}


@dataclass(frozen=True)
class ProfileRules:
    """How a profile's traits are chosen among its identifiers'
    (see :mod:`identity.profiles.precedence`).

    A trait's rule is the first of ``traits`` whose pattern (``fnmatch``) matches its name,
    else ``source_priority``: ``"latest"`` (the most recent observation wins, whatever the
    source) or a tuple of sources (earlier wins, sources not listed come after, in name
    order; then the most recent).
    """

    source_priority: tuple[str, ...] = DEFAULT_SOURCE_PRIORITY
    traits: tuple[tuple[str, TraitRule], ...] = DEFAULT_TRAIT_RULES

    def rule(self, trait: str) -> TraitRule:
        for pattern, rule in self.traits:
            if fnmatch.fnmatchcase(trait, pattern):
                return rule
        return self.source_priority

    def fingerprint(self) -> str:
        """A short hash of the rules: profiles built under other rules are rebuilt."""
        text = json.dumps([self.source_priority, self.traits])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MatchingRules:
    """What record matching (``idgraph match run``) does with a scored pair: at ``merge`` or
    above, a matched link that may merge; from ``review`` up to ``merge``, a pair for a
    steward to accept or reject; below ``review``, nothing. Applied when a run writes."""

    merge: float = 0.99
    review: float = 0.9


@dataclass(frozen=True)
class Policy:
    types: tuple[str, ...] = DEFAULT_TYPES
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    blocked_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    user_id_type: str = "crm_id"
    previous_id_type: str = "cookie"
    external_id_types: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_EXTERNAL_ID_TYPES)
    )
    rules: Mapping[str, TypeRule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    party_merge: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_PARTY_MERGE))
    source_merge: Mapping[str, bool] = field(default_factory=dict)
    anchor_types: tuple[str, ...] = DEFAULT_ANCHOR_TYPES
    two_hop: bool = True
    # two anchors meeting only on one device, their use of it alternating: two people
    shared_devices: bool = True
    max_identity_size: int | None = DEFAULT_MAX_IDENTITY_SIZE  # None: no circuit breaker
    retention_days: Mapping[str, int] = field(default_factory=dict)  # per source
    profiles: ProfileRules = field(default_factory=ProfileRules)
    consent: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CONSENT))
    # how strictly phones are checked: "valid" (in an allocated range) or "possible" (length)
    phone_check: PhoneCheck = "valid"
    matching: MatchingRules = field(default_factory=MatchingRules)

    def consent_purpose(self, type_: str) -> str:
        """The consent purpose an identifier of ``type_`` needs to be exported (a type the
        policy does not map needs ``marketing``)."""
        return self.consent.get(type_, "marketing")

    def rule(self, type_: str) -> TypeRule:
        """The rule of ``type_``; a type the policy does not know has no limit and no TTL."""
        return self.rules.get(type_) or TypeRule()

    def may_merge(self, sources: list[str], party: str) -> bool:
        """Whether a link seen by ``sources`` (strongest party ``party``) may merge.

        A source's own setting wins over its party's; one source that may merge is enough.
        """
        for source in sources:
            allowed = self.source_merge.get(source)
            if allowed is True:
                return True
            if allowed is None and self.party_merge.get(party, False):
                return True
        return False

    def fingerprint(self) -> str:
        """A short hash of everything resolution depends on: a change calls for ``--full``."""
        resolution = {
            "blocked": {k: sorted(v) for k, v in sorted(self.blocked.items()) if v},
            "blocked_patterns": {k: list(v) for k, v in sorted(self.blocked_patterns.items()) if v},
            "rules": {k: asdict(v) for k, v in sorted(self.rules.items())},
            "party_merge": dict(sorted(self.party_merge.items())),
            "source_merge": dict(sorted(self.source_merge.items())),
            "anchor_types": list(self.anchor_types),
            "two_hop": self.two_hop,
            "shared_devices": self.shared_devices,
            "max_identity_size": self.max_identity_size,
        }
        text = json.dumps(resolution, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
