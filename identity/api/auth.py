"""API keys and roles.

Keys come from ``IDGRAPH_API_KEYS`` (GraphQL, ``Authorization: Bearer KEY``) and
``IDGRAPH_WRITE_KEYS`` (Segment ingestion, the key as HTTP basic-auth user name). Only the
SHA-256 of each key is kept in memory; a presented key is compared with every known one in
constant time, so neither timing nor logs reveal a key. A key's *name* (given, or derived
from its role and hash) is what audit events and logs record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar

from identity.errors import ConfigError

T = TypeVar("T")

Role = Literal["reader", "steward", "marketer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "steward", "marketer", "admin")

# What each role may do. "read": profiles, identifiers, the merge feed, stats. "steward":
# explanations, the review queue and the steward mutations. "marketer": segments and
# audiences. "admin": everything, including privacy operations.
Permission = Literal["read", "steward", "marketer", "admin"]
GRANTS: dict[Role, frozenset[Permission]] = {
    "reader": frozenset({"read"}),
    "steward": frozenset({"read", "steward"}),
    "marketer": frozenset({"read", "marketer"}),
    "admin": frozenset({"read", "steward", "marketer", "admin"}),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (never the key) and its role."""

    name: str
    role: Role

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


@dataclass(frozen=True)
class WriteKey:
    """An ingestion key: its name and the source its events count under."""

    name: str
    source: str


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class _KeyRing(Generic[T]):
    def __init__(self, entries: dict[str, T]) -> None:
        self._entries = [(_digest(key), value) for key, value in entries.items()]

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, presented: str) -> T | None:
        """The value of ``presented``, comparing with every key whatever the outcome."""
        digest = _digest(presented)
        found: T | None = None
        for known, value in self._entries:
            if hmac.compare_digest(known, digest):
                found = value
        return found


def _read_json(raw: str, variable: str) -> object:
    text = raw.strip()
    if not text.startswith(("{", "[")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"invalid settings: {variable}: neither JSON nor the path of a file: {text[:40]!r}"
            )
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"invalid settings: {variable}: invalid JSON: {e.msg} at column {e.colno}"
        ) from e


def _key_name(role: str, key: str) -> str:
    return f"{role}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


class ApiKeys:
    """The GraphQL API keys; ``find`` gives the :class:`Principal` of a bearer token."""

    def __init__(self, keys: dict[str, Principal]) -> None:
        self._ring = _KeyRing(keys)

    def __len__(self) -> int:
        return len(self._ring)

    @classmethod
    def parse(cls, raw: str | None, variable: str = "IDGRAPH_API_KEYS") -> ApiKeys:
        if not raw:
            return cls({})
        data = _read_json(raw, variable)
        if not isinstance(data, dict):
            raise ConfigError(f"invalid settings: {variable}: expected a JSON object key -> role")
        keys: dict[str, Principal] = {}
        for number, (key, spec) in enumerate(data.items(), start=1):
            where = f"invalid settings: {variable}: entry {number}"
            if len(key) < 8:
                raise ConfigError(f"{where}: a key needs at least 8 characters")
            role, name = (spec, None) if isinstance(spec, str) else _role_and_name(spec, where)
            if role not in ROLES:
                raise ConfigError(f"{where}: unknown role {role!r} (roles: {', '.join(ROLES)})")
            keys[key] = Principal(name or _key_name(role, key), role)
        return cls(keys)

    def find(self, token: str) -> Principal | None:
        return self._ring.find(token)


def _role_and_name(spec: object, where: str) -> tuple[str, str | None]:
    if not isinstance(spec, dict) or not isinstance(spec.get("role"), str):
        raise ConfigError(f'{where}: expected a role or {{"role": ..., "name": ...}}')
    name = spec.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ConfigError(f"{where}: name must be a non-empty string")
    return spec["role"], name


class WriteKeys:
    """The ingestion write keys; ``find`` gives the :class:`WriteKey` of a basic-auth user."""

    def __init__(self, keys: dict[str, WriteKey]) -> None:
        self._ring = _KeyRing(keys)

    def __len__(self) -> int:
        return len(self._ring)

    @classmethod
    def parse(cls, raw: str | None, variable: str = "IDGRAPH_WRITE_KEYS") -> WriteKeys:
        if not raw:
            return cls({})
        data = _read_json(raw, variable)
        entries = dict.fromkeys(data, "segment") if isinstance(data, list) else data
        if not isinstance(entries, dict):
            raise ConfigError(f"invalid settings: {variable}: expected a JSON object or list")
        keys: dict[str, WriteKey] = {}
        for number, (key, source) in enumerate(entries.items(), start=1):
            where = f"invalid settings: {variable}: entry {number}"
            if not isinstance(key, str) or len(key) < 8:
                raise ConfigError(f"{where}: a key needs at least 8 characters")
            if not isinstance(source, str) or not source.strip():
                raise ConfigError(f"{where}: the source must be a non-empty string")
            keys[key] = WriteKey(_key_name("write", key), source.strip())
        return cls(keys)

    def find(self, key: str) -> WriteKey | None:
        return self._ring.find(key)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def basic_user(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic ...`` header (Segment's write key)."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, _ = decoded.partition(":")
    return user or None
