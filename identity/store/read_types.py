"""The typed rows the API reads (:mod:`identity.store.reads`): one per kind of record, in the
column order of their Cypher lists. Times are epoch milliseconds."""

from __future__ import annotations

from typing import Any, NamedTuple


class IdentityRow(NamedTuple):
    id: str
    status: str
    created_at: int
    updated_at: int
    size: int


class IdentifierRow(NamedTuple):
    key: str
    type: str
    value: str
    hashed: bool
    first_seen: int | None
    last_seen: int | None
    seen: int
    sources: list[str]
    shared: str | None
    shared_reason: str | None
    blocked: bool
    blocked_reason: str | None


class LinkRow(NamedTuple):
    """A link as seen from one of its ends: ``other`` is the key at the other end."""

    other: str
    first_seen: int | None
    last_seen: int | None
    times_seen: int  # the link's count (a tuple's own ``count`` is a method)
    sources: list[str]
    party: str | None
    evidence: list[str]
    cut: bool
    cut_reason: str | None
    cut_by: str | None
    forced: bool
    forced_reason: str | None
    forced_by: str | None


class EventRow(NamedTuple):
    id: str
    kind: str
    reason: str | None
    actor: str | None
    at: int
    action: str | None
    keys: list[str]
    identities: list[list[str]]  # [identity id, role]


class QuarantineRow(NamedTuple):
    id: str
    size: int
    sample: list[str]
    detected_at: int | None


class Page(NamedTuple):
    rows: list[Any]
    total: int


class Stats(NamedTuple):
    types: dict[str, int]
    links: int
    sizes: list[tuple[int, int]]  # (identity size, identities of that size)


class LoadRow(NamedTuple):
    """A load with its reasons for rejecting: ``[code, records]`` (whole records) and
    ``[code, values]`` (values dropped from records that loaded)."""

    batch: str
    source: str
    file: str | None
    status: str | None
    started_at: int | None
    finished_at: int | None
    read: int
    accepted: int
    rejected: int
    reasons: list[list[Any]]
    value_reasons: list[list[Any]]


class RunRow(NamedTuple):
    """A resolve with its changes and the seconds of each step: ``[step, seconds]``."""

    run: str
    mode: str
    status: str
    started_at: int | None
    finished_at: int | None
    identifiers: int | None
    created: int | None
    merged: int | None
    split: int | None
    seconds: list[list[Any]]
    error: str | None
