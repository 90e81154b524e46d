"""The linking policy file (``IDGRAPH_POLICY``, TOML): identifier types and what to refuse.

This part of the policy governs loading: which identifier types exist (the defaults plus
any declared), values that must never become identifiers (exact and regex, on top of the
built-in list of test emails and placeholder phones), and how Segment ``externalIds`` types
map to identifier types. For example::

    [types.email]
    blocked = ["noreply@acme.com"]
    blocked_patterns = ['.*@acme-qa\\.com']

    [types.loyalty_id]          # a new identifier type, label :LoyaltyId

    [segment]
    user_id_type = "crm_id"
    previous_id_type = "cookie"
    [segment.external_ids]
    loyalty = "loyalty_id"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from identity.errors import ConfigError
from identity.normalize import DEFAULT_TYPES

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

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


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


def load_policy(path: Path | None) -> Policy:
    """The policy from a TOML file, or the defaults; errors name the file and the key."""
    if path is None:
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"IDGRAPH_POLICY {path}: {e}") from e
    return parse_policy(data, where=f"IDGRAPH_POLICY {path}")


def parse_policy(data: Mapping[str, Any], *, where: str = "policy") -> Policy:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    types = list(DEFAULT_TYPES)
    blocked: dict[str, frozenset[str]] = {}
    patterns: dict[str, tuple[str, ...]] = {}
    declared = data.get("types", {})
    if not isinstance(declared, dict):
        raise fail("[types] must be a table of identifier types")
    for name, spec in declared.items():
        if not _TYPE_NAME.match(name):
            raise fail(f"identifier type {name!r} must be a lower-case word")
        if not isinstance(spec, dict):
            raise fail(f"[types.{name}] must be a table")
        if name not in types:
            types.append(name)
        values = spec.get("blocked", [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise fail(f"types.{name}.blocked must be a list of strings")
        blocked[name] = frozenset(values)
        regexes = spec.get("blocked_patterns", [])
        if not isinstance(regexes, list) or not all(isinstance(v, str) for v in regexes):
            raise fail(f"types.{name}.blocked_patterns must be a list of strings")
        for regex in regexes:
            try:
                re.compile(regex)
            except re.error as e:
                raise fail(f"types.{name}.blocked_patterns: {regex!r} is not a regex: {e}") from e
        patterns[name] = tuple(regexes)
    segment = data.get("segment", {})
    if not isinstance(segment, dict):
        raise fail("[segment] must be a table")
    user_id_type = segment.get("user_id_type", "crm_id")
    previous_id_type = segment.get("previous_id_type", "cookie")
    external = dict(DEFAULT_EXTERNAL_ID_TYPES)
    external.update(segment.get("external_ids", {}))
    for key, value in (
        ("user_id_type", user_id_type),
        ("previous_id_type", previous_id_type),
        *((f"external_ids.{k}", v) for k, v in external.items()),
    ):
        if value not in types:
            raise fail(
                f"segment.{key} = {value!r} is not an identifier type (known: {', '.join(types)})"
            )
    return Policy(
        types=tuple(types),
        blocked=blocked,
        blocked_patterns=patterns,
        user_id_type=user_id_type,
        previous_id_type=previous_id_type,
        external_id_types={k.lower(): v for k, v in external.items()},
    )
