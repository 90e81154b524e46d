"""Aggregating a chunk of observations into the rows the write statements take.

Pure Python, no Cypher: one row per identifier (carrying the event aggregates and traits
stated on it), per unordered pair of identifiers and per (identifier, DMP segment). Times are
epoch milliseconds, evidence strings start with a fixed-width time so that they sort by it,
and rows come sorted by key so that concurrent writers take their locks in one order.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from identity.model import Observation, Rejection

DEFAULT_LABELS = {
    "cookie": "Cookie",
    "email": "Email",
    "phone": "Phone",
    "device": "Device",
    "maid": "Maid",
    "crm_id": "CrmId",
    "dmp_id": "DmpId",
}
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EVIDENCE_CAP = 5
DAY_MS = 86_400_000
CODE_BITS = 40
DUPLICATE = "duplicate_message_id"
FORGOTTEN = "forgotten"  # an identifier erased on request (its key's hash has a tombstone)


def message_code(message_id: str, at_ms: int) -> int:
    """A message's deduplication code: the day of the event (high bits) and 40 bits of a
    hash of its id. Sorting codes sorts them by day, so a window is one comparison; a
    retried message has the same id and time, so the same code."""
    digest = hashlib.blake2b(message_id.encode("utf-8"), digest_size=CODE_BITS // 8).digest()
    return ((at_ms // DAY_MS) << CODE_BITS) | int.from_bytes(digest, "big")


def label_for(type_: str) -> str:
    """The node label of an identifier type: the default ones, else the type in CamelCase."""
    if type_ in DEFAULT_LABELS:
        return DEFAULT_LABELS[type_]
    if not _TYPE_NAME.match(type_):
        raise ValueError(f"identifier type {type_!r} is not a lower-case word")
    return "".join(part.capitalize() for part in type_.split("_"))


@dataclass
class Counts:
    """Counts of a load or of one chunk: ``read == accepted + rejected`` always."""

    read: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    value_reasons: Counter[str] = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        self.read += other.read
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.reasons.update(other.reasons)
        self.value_reasons.update(other.value_reasons)

    def copy(self) -> Counts:
        return replace(
            self, reasons=Counter(self.reasons), value_reasons=Counter(self.value_reasons)
        )


@dataclass
class ChunkRows:
    """One chunk's observations, aggregated into the rows the write statements take.

    An identifier row carries the event aggregates and traits recorded on it, so one
    statement writes the node with everything stated about it.
    """

    identifiers: list[dict[str, Any]]
    links: list[dict[str, Any]]
    dmp_segments: list[dict[str, Any]]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def millis_of(at: datetime) -> int:
    """Times travel as epoch milliseconds (the driver packs ints far faster than datetimes,
    and Cypher turns them back with ``datetime({epochMillis: ...})``), counted exactly."""
    return (at - _EPOCH) // _MILLISECOND


def iso_of(at: datetime) -> str:
    """Fixed-width UTC time to the millisecond, so that evidence strings sort by time."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def text_of(value: object) -> str:
    """A trait value as Cypher's toString() writes it: the tie-break between equal times."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def aggregate(observations: Iterable[Observation], batch_id: str) -> ChunkRows:
    """Fold a chunk into one row per identifier, per unordered pair and per segment.

    The hot loop of a load: plain dict and list operations only. A link keeps its
    :data:`EVIDENCE_CAP` earliest references as (time, record) and formats only those.
    """
    identifiers: dict[str, dict[str, Any]] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    dmp_segments: dict[tuple[str, str], dict[str, Any]] = {}
    for obs in observations:
        at = millis_of(obs.at)
        idents = obs.identifiers
        for ident in idents:
            row = identifiers.get(ident.key)
            if row is None:
                identifiers[ident.key] = {
                    "key": ident.key, "type": ident.type, "value": ident.value,
                    "hashed": ident.hashed, "label": label_for(ident.type),
                    "first": at, "last": at, "seen": 1, "events": {}, "traits": {},
                }  # fmt: skip
            else:
                if at < row["first"]:
                    row["first"] = at
                elif at > row["last"]:
                    row["last"] = at
                row["seen"] += 1
        if len(idents) > 1:
            keys = sorted([i.key for i in idents])
            # evidence sorts as its text does: by the time to the millisecond, then the record
            reference = (at, f"{batch_id}:{obs.message_id or obs.record}", obs.at)
            for n, a in enumerate(keys):
                for b in keys[n + 1 :]:
                    link = links.get((a, b))
                    if link is None:
                        links[(a, b)] = {
                            "a": a, "b": b, "first": at, "last": at, "count": 1,
                            "evidence": [reference],
                        }  # fmt: skip
                        continue
                    if at < link["first"]:
                        link["first"] = at
                    elif at > link["last"]:
                        link["last"] = at
                    link["count"] += 1
                    kept = link["evidence"]
                    if len(kept) < EVIDENCE_CAP or reference < kept[-1]:
                        kept.append(reference)
                        kept.sort()
                        del kept[EVIDENCE_CAP:]
        primary = idents[0] if idents else None
        if primary is None:
            continue
        target = identifiers[primary.key]
        if obs.message_id:
            target.setdefault("codes", []).append(message_code(obs.message_id, at))
        for name, value in obs.traits.items():
            previous = target["traits"].get(name)
            stated = (at, text_of(value))
            if previous is None or (previous["at"], text_of(previous["value"])) < stated:
                target["traits"][name] = {"name": name, "value": value, "at": at}
        for name in obs.events:
            stat = target["events"].get(name)
            if stat is None:
                target["events"][name] = {"name": name, "count": 1, "first": at, "last": at}
            else:
                stat["count"] += 1
                stat["first"] = min(stat["first"], at)
                stat["last"] = max(stat["last"], at)
        for membership in obs.dmp_segments:
            expires = millis_of(membership.expires_at)
            for ident in idents:
                seg = dmp_segments.get((ident.key, membership.name))
                if seg is None:
                    dmp_segments[(ident.key, membership.name)] = {
                        "key": ident.key, "name": membership.name, "first": at, "last": at,
                        "expires": expires,
                    }  # fmt: skip
                else:
                    seg["first"] = min(seg["first"], at)
                    seg["last"] = max(seg["last"], at)
                    seg["expires"] = max(seg["expires"], expires)
    for link in links.values():
        # distinct references (a record seen twice in a chunk is one), as text, in time order
        texts = [f"{iso_of(when)} {ref}" for _, ref, when in link["evidence"]]
        link["evidence"] = list(dict.fromkeys(texts))
    for row in identifiers.values():
        row["events"] = list(row["events"].values())
        row["traits"] = list(row["traits"].values())
    # Sorted rows take their locks in one global order: fewer deadlocks between writers.
    return ChunkRows(
        [identifiers[k] for k in sorted(identifiers)],
        [links[k] for k in sorted(links)],
        [dmp_segments[k] for k in sorted(dmp_segments)],
    )


def suppress_forgotten(
    observations: Iterable[Observation], forgotten: set[str], counts: Counts
) -> tuple[list[Observation], list[Rejection], list[Rejection]]:
    """Drop the ``forgotten`` identifiers (erased on request) from a chunk's observations.

    Each dropped identifier is a rejected value (reason ``forgotten``) of its record; a record
    left with no identifier is a rejected record (reason ``forgotten``) and writes nothing.
    When a record's primary identifier is dropped, the traits and events stated for it go
    with it (they were about the erased person). ``counts`` is adjusted in place so that it
    still reconciles; the rejections carry no value (the rejects file must not bring the
    erased data back). Returns (kept observations, rejected records, rejected values).
    """
    kept: list[Observation] = []
    records: list[Rejection] = []
    values: list[Rejection] = []
    for obs in observations:
        dropped = [i for i in obs.identifiers if i.key in forgotten]
        if not dropped:
            kept.append(obs)
            continue
        for ident in dropped:
            counts.value_reasons[FORGOTTEN] += 1
            values.append(
                Rejection(
                    FORGOTTEN,
                    f"{ident.type} identifier erased on request (a tombstone holds its hash)",
                    obs.record,
                )
            )
        left = [i for i in obs.identifiers if i.key not in forgotten]
        if not left:
            counts.accepted -= 1
            counts.rejected += 1
            counts.reasons[FORGOTTEN] += 1
            records.append(
                Rejection(FORGOTTEN, "every identifier of the record was erased on request",
                          obs.record)
            )  # fmt: skip
            continue
        primary_dropped = obs.identifiers[0].key in forgotten
        kept.append(
            replace(
                obs,
                identifiers=left,
                traits={} if primary_dropped else obs.traits,
                events=[] if primary_dropped else obs.events,
            )
        )
    return kept, records, values
