"""What a chunk changes on what is stored: new values computed in Python, written as they are.

The writer first locks the chunk's existing identifiers and reads what it needs of them
(:data:`identity.store.writer`'s first statement); from then on no other transaction can
change them until this one commits, so the new values can be computed here from the stored
ones and the chunk's rows (:mod:`identity.store.rows`), and written with plain ``SET``s: no
conditional Cypher per property, and only what changed. The rules are those every chunk
write follows (they commute, so the order of chunks does not matter):

- counts add (``seen``, a link's ``count``, ``event_count.<name>``);
- first times take the minimum, last times the maximum;
- ``sources`` gain the chunk's source when new; a link's ``party`` is the strongest seen
  (``first`` < ``second`` < ``third``);
- a trait keeps the latest observation per source (ties: the larger value as text);
- a link's ``evidence`` keeps the ``EVIDENCE_CAP`` earliest distinct references;
- an identifier's ``msgs`` keeps the codes of its messages of the last days (deduplication,
  see :func:`identity.store.rows.message_code`).

Times travel as epoch milliseconds, in a separate list of ``[property, millis]`` that the
statements turn into datetimes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from identity.store.rows import CODE_BITS, EVIDENCE_CAP, text_of

MAX_CODES = 10_000  # codes an identifier keeps at most (its most recent messages)


def kept_codes(codes: list[int], days: int) -> list[int]:
    """The codes an identifier keeps: distinct, sorted, those of the ``days`` days up to its
    most recent message (by event time), at most :data:`MAX_CODES`."""
    ordered = sorted(set(codes))
    if not ordered:
        return []
    cutoff = ((ordered[-1] >> CODE_BITS) - days) << CODE_BITS
    return ordered[bisect.bisect_left(ordered, cutoff) :][-MAX_CODES:]


@dataclass
class Change:
    """What to write on one node or relationship: plain values and times (epoch ms)."""

    props: dict[str, Any] = field(default_factory=dict)
    times: list[list[Any]] = field(default_factory=list)

    def time(self, name: str, millis: int) -> None:
        self.times.append([name, millis])

    def __bool__(self) -> bool:
        return bool(self.props or self.times)


@dataclass
class Stored:
    """An existing identifier as the writer read it (times in epoch ms)."""

    id: int
    seen: int
    first: int | None
    last: int | None
    sources: list[str]
    hashed: bool | None
    msgs: list[int] | None
    traits: dict[str, tuple[Any, int | None]]  # name -> (value, at) for this source
    events: dict[str, tuple[int | None, int | None, int | None]]  # name -> count, first, last


def new_identifier(row: dict[str, Any], source: str, batch: str, days: int) -> Change:
    """Everything a new identifier holds, from its chunk row."""
    change = Change(
        {
            "key": row["key"],
            "type": row["type"],
            "value": row["value"],
            "seen": row["seen"],
            "sources": [source],
            "batch": batch,
        }
    )
    if row["hashed"]:
        change.props["hashed"] = True
    if row.get("codes"):
        change.props["msgs"] = kept_codes(row["codes"], days)
    change.time("first_seen", row["first"])
    change.time("last_seen", row["last"])
    for event in row["events"]:
        change.props[f"event_count.{event['name']}"] = event["count"]
        change.time(f"event_first.{event['name']}", event["first"])
        change.time(f"event_last.{event['name']}", event["last"])
    for trait in row["traits"]:
        change.props[f"trait.{source}.{trait['name']}"] = trait["value"]
        change.time(f"trait_at.{source}.{trait['name']}", trait["at"])
    return change


def identifier_change(stored: Stored, row: dict[str, Any], source: str, days: int) -> Change:
    """What a chunk row changes on an existing identifier (``batch`` is already written)."""
    change = Change({"seen": stored.seen + row["seen"]})
    if stored.first is None or row["first"] < stored.first:
        change.time("first_seen", row["first"])
    if stored.last is None or row["last"] > stored.last:
        change.time("last_seen", row["last"])
    if source not in stored.sources:
        change.props["sources"] = [*stored.sources, source]
    if row["hashed"] and stored.hashed is None:
        change.props["hashed"] = True
    if row.get("codes") and stored.msgs is not None:  # read: the record's primary
        codes = kept_codes([*stored.msgs, *row["codes"]], days)
        if codes != stored.msgs:
            change.props["msgs"] = codes
    for event in row["events"]:
        name = event["name"]
        count, first, last = stored.events.get(name, (None, None, None))
        change.props[f"event_count.{name}"] = (count or 0) + event["count"]
        if first is None or event["first"] < first:
            change.time(f"event_first.{name}", event["first"])
        if last is None or event["last"] > last:
            change.time(f"event_last.{name}", event["last"])
    for trait in row["traits"]:
        name = trait["name"]
        value, at = stored.traits.get(name, (None, None))
        newer = at is None or at < trait["at"]
        if newer or (at == trait["at"] and text_of(value) < text_of(trait["value"])):
            change.props[f"trait.{source}.{name}"] = trait["value"]
            change.time(f"trait_at.{source}.{name}", trait["at"])
    return change


def new_link(row: dict[str, Any], source: str, party: str) -> Change:
    """Everything a new link holds, from its chunk row."""
    return Change(
        {"count": row["count"], "sources": [source], "party": party, "evidence": row["evidence"]},
        [["first_seen", row["first"]], ["last_seen", row["last"]]],
    )


def link_change(stored: dict[str, Any], row: dict[str, Any], source: str, party: str) -> Change:
    """What a chunk row changes on an existing link (``stored``: count, first, last,
    sources, party, evidence as read)."""
    change = Change({"count": (stored["count"] or 0) + row["count"]})
    if stored["first"] is None or row["first"] < stored["first"]:
        change.time("first_seen", row["first"])
    if stored["last"] is None or row["last"] > stored["last"]:
        change.time("last_seen", row["last"])
    sources = list(stored["sources"] or [])
    if source not in sources:
        change.props["sources"] = [*sources, source]
    if stored["party"] is None or party < stored["party"]:
        change.props["party"] = party
    held = list(stored["evidence"] or [])
    evidence = sorted(set(held) | set(row["evidence"]))[:EVIDENCE_CAP]
    if evidence != held:
        change.props["evidence"] = evidence
    return change
