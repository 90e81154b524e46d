"""Reading the linking policy (``IDGRAPH_POLICY``, a TOML file): what may become an identifier, and
what may merge identities.

Loading uses the identifier types, the blocked values and the Segment mapping. Resolution
uses the rest: per type a ``limit`` per identity, a ``priority`` (the links between
higher-priority identifiers are kept first when a limit is hit) and a ``ttl_days`` after which
a link not seen again stops merging; per party and per source whether links may merge; how
shared identifiers are detected; and the circuit breaker. Every key has a default, so an empty
file (or none) is a working policy::

    [types.email]
    limit = 5
    priority = 80
    blocked = ["noreply@acme.com"]
    blocked_patterns = ['.*@acme-qa\\.com']

    [types.cookie]
    ttl_days = 180

    [types.phone]
    check = "possible"          # keep numbers of a possible length, allocated or not

    [types.loyalty_id]          # a new identifier type, label :LoyaltyId
    new = true                  # required, so that a misspelt type is an error
    limit = 1
    priority = 90

    [parties]
    third = false               # third-party links enrich, never merge (the default)

    [sources.partner_feed]
    merge = false               # this second-party source may not merge either

    [shared]
    anchor_types = ["crm_id", "email", "phone"]
    two_hop = true
    devices = true

    [circuit_breaker]
    max_identity_size = 1000

    [sources.web]
    retention_days = 395        # `idgraph purge` drops what only this source saw, after that

    [profiles]                  # how a profile's traits merge its identifiers' traits
    source_priority = ["crm", "app", "web", "segment", "dmp"]
    [profiles.traits]
    "consent_*" = "latest"      # the most recent wins, whatever the source
    "email" = ["crm", "web"]    # this source order for this trait

    [consent]                   # which consent an exported identifier of a type needs
    email = "marketing"         # the profile's consent_marketing must be true
    maid = "ads"

    [segment]
    user_id_type = "crm_id"
    previous_id_type = "cookie"
    [segment.external_ids]
    loyalty = "loyalty_id"

Errors name the file, the line and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from identity.errors import ConfigError
from identity.model import PARTIES
from identity.normalize import DEFAULT_TYPES
from identity.policy.model import (
    DEFAULT_ANCHOR_TYPES,
    DEFAULT_CONSENT,
    DEFAULT_EXTERNAL_ID_TYPES,
    DEFAULT_MAX_IDENTITY_SIZE,
    DEFAULT_PARTY_MERGE,
    DEFAULT_RULES,
    DEFAULT_SOURCE_PRIORITY,
    DEFAULT_TRAIT_RULES,
    PHONE_CHECKS,
    WORD,
    MatchingRules,
    PhoneCheck,
    Policy,
    ProfileRules,
    TraitRule,
    TypeRule,
)


def load_policy(path: Path | None) -> Policy:
    """The policy from a TOML file, or the defaults; errors name the file, line and key."""
    if path is None:
        return Policy()
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"IDGRAPH_POLICY {path}: {e}") from e
    return parse_policy(data, where=f"IDGRAPH_POLICY {path}", text=text)


def parse_policy(data: Mapping[str, Any], *, where: str = "policy", text: str = "") -> Policy:
    """Check and build a policy from parsed TOML; ``text`` (the file) gives line numbers."""
    return _Parser(data, where, text).policy()


class _Parser:
    def __init__(self, data: Mapping[str, Any], where: str, text: str) -> None:
        self.data = data
        self.where = where
        self.lines = text.splitlines()

    def fail(self, table: str, key: str | None, message: str) -> ConfigError:
        line = self._line_of(table, key)
        at = f" (line {line})" if line else ""
        return ConfigError(f"{self.where}{at}: {message}")

    def _line_of(self, table: str, key: str | None) -> int | None:
        """The line of ``key`` in ``[table]`` (or of the table itself), found in the text.

        Looks for the key under the table's header, then for the table written as a dotted
        key or an inline table under its parent (``[types]`` then ``email.limit = 5`` or
        ``email = { limit = 5 }``), then for the header alone.
        """
        # [types.email] limit = ..., then [types] email.limit = ... or email = { ... }, then a
        # dotted key at the top (types.email.limit = ...); with the key, then without it
        tables = [p for p in table.split(".") if p]
        attempts = [([*tables, key], True)] if key is not None else []
        for parts, with_key in [*attempts, (tables, False)]:
            for cut in range(len(parts) - 1, -1, -1):
                header, rest = ".".join(parts[:cut]), ".".join(parts[cut:])
                ending = r"\s*=" if with_key and cut == len(parts) - 1 else r"\s*[.=]"
                pattern = re.compile(rf"^\s*{_quoted_path(rest)}{ending}")
                line = self._find_in_table(header, pattern)
                if line:
                    return line
        if table:
            header_line = re.compile(rf"^\s*\[\s*{_quoted_path(table)}\s*\]")
            for number, text in enumerate(self.lines, start=1):
                if header_line.match(text):
                    return number
        return None

    def _find_in_table(self, table: str, pattern: re.Pattern[str]) -> int | None:
        header = re.compile(rf"^\s*\[\s*{_quoted_path(table)}\s*\]") if table else None
        inside = header is None
        for number, line in enumerate(self.lines, start=1):
            if line.strip().startswith("["):
                inside = bool(header and header.match(line))
                continue
            if inside and pattern.match(line):
                return number
        return None

    def table(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.fail("", name, f"[{name}] must be a table")
        return value

    def policy(self) -> Policy:
        types = list(DEFAULT_TYPES)
        blocked: dict[str, frozenset[str]] = {}
        patterns: dict[str, tuple[str, ...]] = {}
        rules = dict(DEFAULT_RULES)
        phone_check: PhoneCheck = "valid"
        for name, spec in self.table("types").items():
            table = f"types.{name}"
            if not WORD.match(name):
                raise self.fail(table, None, f"identifier type {name!r} must be a lower-case word")
            if not isinstance(spec, dict):
                raise self.fail("types", name, f"[{table}] must be a table")
            if name not in types and spec.get("new") is not True:
                raise self.fail(
                    table,
                    None,
                    f"unknown identifier type {name!r} (known: {', '.join(types)}); "
                    "declare a new type with new = true",
                )
            settings = {"limit", "priority", "ttl_days", "blocked", "blocked_patterns", "new"}
            unknown = set(spec) - settings - ({"check"} if name == "phone" else set())
            if unknown:
                key = sorted(unknown)[0]
                raise self.fail(
                    table,
                    key,
                    f"{table}.{key} is not a setting (known: limit, priority, ttl_days, "
                    "blocked, blocked_patterns; check for phone)",
                )
            if "check" in spec:
                phone_check = self._phone_check(table, spec["check"])
            if name not in types:
                types.append(name)
            blocked[name] = frozenset(self._strings(table, "blocked", spec))
            patterns[name] = self._patterns(table, spec)
            base = rules.get(name, TypeRule())
            rules[name] = TypeRule(
                limit=self._count(table, "limit", spec, base.limit, minimum=1),
                priority=self._int(table, "priority", spec, base.priority),
                ttl_days=self._count(table, "ttl_days", spec, base.ttl_days, minimum=1),
            )
        party_merge = dict(DEFAULT_PARTY_MERGE)
        for party, value in self.table("parties").items():
            if party not in PARTIES:
                raise self.fail(
                    "parties", party, f"parties.{party}: unknown party (first, second or third)"
                )
            if not isinstance(value, bool):
                raise self.fail("parties", party, f"parties.{party} must be true or false")
            party_merge[party] = value
        source_merge: dict[str, bool] = {}
        retention: dict[str, int] = {}
        for source, spec in self.table("sources").items():
            if not isinstance(spec, dict) or set(spec) - {"merge", "retention_days"}:
                raise self.fail(
                    f"sources.{source}",
                    None,
                    f"[sources.{source}] takes only merge = true|false and retention_days = N",
                )
            if "merge" in spec:
                if not isinstance(spec["merge"], bool):
                    message = f"sources.{source}.merge must be true or false"
                    raise self.fail(f"sources.{source}", "merge", message)
                source_merge[source] = spec["merge"]
            days = self._count(f"sources.{source}", "retention_days", spec, None, minimum=1)
            if days is not None:
                retention[source] = days
        shared = self.table("shared")
        anchors = tuple(self._strings("shared", "anchor_types", shared, DEFAULT_ANCHOR_TYPES))
        for anchor in anchors:
            if anchor not in types:
                raise self.fail(
                    "shared",
                    "anchor_types",
                    f"shared.anchor_types: {anchor!r} is not an "
                    f"identifier type (known: {', '.join(types)})",
                )
        two_hop = shared.get("two_hop", True)
        if not isinstance(two_hop, bool):
            raise self.fail("shared", "two_hop", "shared.two_hop must be true or false")
        devices = shared.get("devices", True)
        if not isinstance(devices, bool):
            raise self.fail("shared", "devices", "shared.devices must be true or false")
        breaker = self.table("circuit_breaker")
        max_size = self._count(
            "circuit_breaker", "max_identity_size", breaker, DEFAULT_MAX_IDENTITY_SIZE, minimum=2
        )
        segment = self.table("segment")
        user_id_type = segment.get("user_id_type", "crm_id")
        previous_id_type = segment.get("previous_id_type", "cookie")
        external = dict(DEFAULT_EXTERNAL_ID_TYPES)
        declared_ids = segment.get("external_ids", {})
        if not isinstance(declared_ids, dict) or not all(
            isinstance(v, str) for v in declared_ids.values()
        ):
            raise self.fail(
                "segment",
                "external_ids",
                "segment.external_ids must be a table of externalIds type = identifier type",
            )
        external.update(declared_ids)
        for key, value in (
            ("user_id_type", user_id_type),
            ("previous_id_type", previous_id_type),
            *((f"external_ids.{k}", v) for k, v in external.items()),
        ):
            if value not in types:
                table, _, short = f"segment.{key}".rpartition(".")
                raise self.fail(
                    table,
                    short,
                    f"segment.{key} = {value!r} is not an identifier type "
                    f"(known: {', '.join(types)})",
                )
        return Policy(
            types=tuple(types),
            blocked=blocked,
            blocked_patterns=patterns,
            user_id_type=user_id_type,
            previous_id_type=previous_id_type,
            external_id_types={k.lower(): v for k, v in external.items()},
            rules=rules,
            party_merge=party_merge,
            source_merge=source_merge,
            anchor_types=anchors,
            two_hop=two_hop,
            shared_devices=devices,
            max_identity_size=max_size,
            retention_days=retention,
            profiles=self._profiles(),
            consent=self._consent(types),
            phone_check=phone_check,
            matching=self._matching(),
        )

    def _matching(self) -> MatchingRules:
        table = self.table("matching")
        unknown = set(table) - {"merge", "review"}
        if unknown:
            key = sorted(unknown)[0]
            raise self.fail(
                "matching", key, f"matching.{key} is not a setting (known: merge, review)"
            )
        found = {}
        for key, default in (("merge", 0.99), ("review", 0.9)):
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise self.fail(
                    "matching",
                    key,
                    f"matching.{key} must be a probability in (0, 1], got {value!r}",
                )
            found[key] = float(value)
        if found["review"] > found["merge"]:
            raise self.fail(
                "matching",
                "review",
                f"matching.review ({found['review']}) must not be above matching.merge "
                f"({found['merge']})",
            )
        return MatchingRules(**found)

    def _phone_check(self, table: str, value: object) -> PhoneCheck:
        for check in PHONE_CHECKS:
            if value == check:
                return check
        raise self.fail(
            table,
            "check",
            f'{table}.check must be "valid" (numbers in allocated ranges) or "possible" '
            f"(numbers of a possible length), not {value!r}",
        )

    def _profiles(self) -> ProfileRules:
        table = self.table("profiles")
        unknown = set(table) - {"source_priority", "traits"}
        if unknown:
            key = sorted(unknown)[0]
            raise self.fail(
                "profiles", key, f"profiles.{key} is not a setting (known: source_priority, traits)"
            )
        order = tuple(self._strings("profiles", "source_priority", table, DEFAULT_SOURCE_PRIORITY))
        traits = table.get("traits", dict(DEFAULT_TRAIT_RULES))
        if not isinstance(traits, dict):
            raise self.fail("profiles", "traits", "[profiles.traits] must be a table")
        rules: list[tuple[str, TraitRule]] = []
        for pattern, rule in traits.items():
            if rule == "latest":
                rules.append((pattern, "latest"))
            elif isinstance(rule, list) and rule and all(isinstance(s, str) for s in rule):
                rules.append((pattern, tuple(rule)))
            else:
                raise self.fail(
                    "profiles.traits",
                    pattern,
                    f'profiles.traits.{pattern} must be "latest" or a non-empty list of '
                    f"sources, not {rule!r}",
                )
        return ProfileRules(order, tuple(rules))

    def _consent(self, types: list[str]) -> dict[str, str]:
        consent = dict(DEFAULT_CONSENT)
        for type_, purpose in self.table("consent").items():
            if type_ not in types:
                raise self.fail(
                    "consent",
                    type_,
                    f"consent.{type_}: not an identifier type (known: {', '.join(types)})",
                )
            if not isinstance(purpose, str) or not WORD.match(purpose):
                raise self.fail(
                    "consent",
                    type_,
                    f"consent.{type_} must be a purpose name (a lower-case word such as "
                    f'"marketing"), not {purpose!r}',
                )
            consent[type_] = purpose
        return consent

    def _strings(
        self, table: str, key: str, spec: Mapping[str, Any], default: tuple[str, ...] = ()
    ) -> list[str]:
        values = spec.get(key, list(default))
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise self.fail(table, key, f"{table}.{key} must be a list of strings")
        return values

    def _patterns(self, table: str, spec: Mapping[str, Any]) -> tuple[str, ...]:
        regexes = self._strings(table, "blocked_patterns", spec)
        for regex in regexes:
            try:
                re.compile(regex)
            except re.error as e:
                raise self.fail(
                    table,
                    "blocked_patterns",
                    f"{table}.blocked_patterns: {regex!r} is not a regex: {e}",
                ) from e
        return tuple(regexes)

    def _int(self, table: str, key: str, spec: Mapping[str, Any], default: int) -> int:
        value = spec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(table, key, f"{table}.{key} must be an integer, not {value!r}")
        return value

    def _count(
        self, table: str, key: str, spec: Mapping[str, Any], default: int | None, *, minimum: int
    ) -> int | None:
        """A positive bound; 0 or "none" in the file means no bound."""
        if key not in spec:
            return default
        value = spec[key]
        if value == "none" or (value == 0 and not isinstance(value, bool)):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(table, key, f"{table}.{key} must be an integer, not {value!r}")
        if value < minimum:
            raise self.fail(
                table, key, f"{table}.{key} = {value}: must be at least {minimum} (0 for none)"
            )
        return value


def _quoted_path(table: str) -> str:
    """A regex for a dotted table name whose parts may be quoted: types."emial"."""
    return r"\s*\.\s*".join(rf"\"?{re.escape(part)}\"?" for part in table.split("."))
