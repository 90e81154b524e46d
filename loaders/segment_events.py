"""Segment-spec events (also what RudderStack and Jitsu emit) -> observations.

Accepts NDJSON (one event, or one ``{"batch": [...]}`` payload, per line), a JSON array of
events, or one HTTP batch payload, gzip-compressed or plain; the caller opens the file.
Where identifiers come from (https://segment.com/docs/connections/spec/common/):

====================================  ==========================================
``anonymousId``                       ``cookie``
``userId``                            ``crm_id`` (``user_id_type``)
``previousId`` (alias)                ``cookie`` (``previous_id_type``)
``context.device.id``                 ``device``
``context.device.advertisingId``      ``maid``
``traits.email|phone`` (identify),    ``email``, ``phone``
``context.traits.email|phone``
``context.externalIds[] {id, type}``  the type mapped by ``external_id_types``
====================================  ==========================================

Traits come from ``traits`` (identify) and ``context.traits``; ``track`` events count under
their ``event`` name, ``page`` and ``screen`` under ``page:<name>`` and ``screen:<name>``.
A record is rejected only when it cannot be read or has no valid identifier; a bad value in
it (a malformed email, ``"traits": 5``) is reported and the rest of the record still loads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from identity.model import Party, Rejection, TraitValue
from identity.normalize import Normalizer
from identity.policy import DEFAULT_EXTERNAL_ID_TYPES
from loaders.records import (
    Parsed,
    iter_lines,
    normalize_all,
    observation_or_rejection,
    parse_timestamp,
    preview,
    trait_value,
)

EVENT_TYPES = ("identify", "track", "page", "screen", "alias", "group")
TIMESTAMP_FIELDS = ("timestamp", "originalTimestamp", "receivedAt", "sentAt")
IDENTIFIER_TRAITS = {"email": "email", "phone": "phone"}
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class SegmentEventOptions:
    """How Segment fields map to identifier types, and the source the events count under."""

    source: str = "segment"
    party: Party = "first"
    user_id_type: str = "crm_id"
    previous_id_type: str = "cookie"
    external_id_types: Mapping[str, str] = field(
        default_factory=lambda: dict(DEFAULT_EXTERNAL_ID_TYPES)
    )
    max_record_bytes: int = 4 * 1024 * 1024


def read_segment_events(
    stream: IO[bytes], normalizer: Normalizer, options: SegmentEventOptions, *, now: datetime
) -> Iterator[Parsed]:
    """Yield one observation or rejection per event found in the stream, in file order."""
    lines = iter_lines(stream, options.max_record_bytes)
    for line in lines:
        ref = str(line.number)
        if line.data is None:
            yield Rejection(
                "record_too_large",
                f"line of {line.length} bytes exceeds the limit of "
                f"{options.max_record_bytes} bytes (IDGRAPH_MAX_RECORD_BYTES)",
                ref,
            )
            continue
        text = line.data.strip()
        if not text:
            continue
        try:
            document = json.loads(text.decode("utf-8"))
        except UnicodeDecodeError as e:
            yield Rejection(
                "invalid_utf8",
                f"not UTF-8: {e.reason} at byte {e.start}",
                ref,
                raw=preview(line.data),
            )
            continue
        except json.JSONDecodeError as e:
            if line.number == 1 and text[:1] in (b"[", b"{"):
                yield from _read_document(text, stream, normalizer, options, now)
                return
            yield Rejection(
                "invalid_json",
                f"invalid JSON: {e.msg} at column {e.colno}",
                ref,
                raw=preview(line.data),
            )
            continue
        yield from _events_of(document, ref, normalizer, options, now, line.data)


def _read_document(
    head: bytes,
    stream: IO[bytes],
    normalizer: Normalizer,
    options: SegmentEventOptions,
    now: datetime,
) -> Iterator[Parsed]:
    """A pretty-printed JSON array or batch payload: the whole file is one document."""
    rest = stream.read(MAX_DOCUMENT_BYTES)
    if stream.read(1):
        yield Rejection(
            "record_too_large",
            f"a multi-line JSON document over {MAX_DOCUMENT_BYTES} bytes: use NDJSON",
            "1",
        )
        return
    data = head + b"\n" + rest
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        yield Rejection("invalid_utf8", f"not UTF-8: {e.reason}", "1", raw=preview(data))
        return
    except json.JSONDecodeError as e:
        yield Rejection(
            "invalid_json",
            f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}",
            "1",
            raw=preview(data),
        )
        return
    yield from _events_of(document, "1", normalizer, options, now, None)


def _events_of(
    document: object,
    ref: str,
    normalizer: Normalizer,
    options: SegmentEventOptions,
    now: datetime,
    raw: bytes | None,
) -> Iterator[Parsed]:
    if isinstance(document, dict) and "batch" in document:
        items = document["batch"]
        if not isinstance(items, list):
            yield Rejection(
                "wrong_type", "batch must be a list of events", ref, "batch", preview(raw)
            )
            return
    elif isinstance(document, list):
        items = document
    else:
        yield event_to_parsed(document, ref, normalizer, options, now)
        return
    for index, item in enumerate(items):
        yield event_to_parsed(item, f"{ref}#{index}", normalizer, options, now)


def event_to_parsed(
    event: object, ref: str, normalizer: Normalizer, options: SegmentEventOptions, now: datetime
) -> Parsed:
    """One Segment event as an observation, or the reason it cannot be one."""
    if not isinstance(event, dict):
        return Rejection(
            "not_an_object",
            f"an event must be a JSON object, got {type(event).__name__}",
            ref,
            raw=preview(json.dumps(event)),
        )
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return Rejection(
            "unknown_type",
            f"type must be one of {', '.join(EVENT_TYPES)}; got {kind!r}",
            ref,
            "type",
            preview(event),
        )
    at = now
    for name in TIMESTAMP_FIELDS:
        if event.get(name) is not None:
            try:
                at = parse_timestamp(event[name])
            except ValueError as e:
                return Rejection(
                    "invalid_timestamp",
                    f"{name}: {e}",
                    ref,
                    name,
                    preview(event),
                )
            break

    value_rejections: list[Rejection] = []

    def obj(container: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        value = container.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            value_rejections.append(
                Rejection(
                    "wrong_type",
                    f"{path} must be an object, got {type(value).__name__}",
                    ref,
                    path,
                    preview(json.dumps(value, default=str)),
                )
            )
            return {}
        return value

    context = obj(event, "context", "context")
    device = obj(context, "device", "context.device")
    context_traits = obj(context, "traits", "context.traits")
    traits = obj(event, "traits", "traits") if kind == "identify" else {}

    candidates: list[tuple[str, str, object]] = []
    user_id = event.get("userId")
    if user_id is not None:
        candidates.append(("userId", options.user_id_type, user_id))
    for path, type_, value in (
        ("anonymousId", "cookie", event.get("anonymousId")),
        ("context.device.id", "device", device.get("id")),
        ("context.device.advertisingId", "maid", device.get("advertisingId")),
    ):
        if value is not None:
            candidates.append((path, type_, value))
    if kind == "alias" and event.get("previousId") is not None:
        candidates.append(("previousId", options.previous_id_type, event["previousId"]))
    for prefix, bag in (("traits", traits), ("context.traits", context_traits)):
        for key, type_ in IDENTIFIER_TRAITS.items():
            if bag.get(key) is not None:
                candidates.append((f"{prefix}.{key}", type_, bag[key]))
    candidates.extend(_external_ids(context, ref, options, value_rejections))

    identifiers, rejected = normalize_all(normalizer, candidates, ref)
    merged_traits: dict[str, TraitValue] = {}
    for bag in (context_traits, traits):
        for key, value in bag.items():
            stored = trait_value(value)
            if key not in IDENTIFIER_TRAITS and stored is not None:
                merged_traits[key] = stored
    if kind == "group" and event.get("groupId") is not None:
        group = trait_value(event["groupId"])
        if group is not None:
            merged_traits["group_id"] = group

    events: list[str] = []
    if kind == "track":
        event_name = event.get("event")
        if isinstance(event_name, str) and event_name.strip():
            events.append(event_name.strip())
        else:
            value_rejections.append(
                Rejection(
                    "missing_event",
                    f"track needs an event name, got {event_name!r}",
                    ref,
                    "event",
                )
            )
    elif kind in ("page", "screen"):
        page_name = event.get("name")
        label = page_name.strip() if isinstance(page_name, str) else ""
        events.append(f"{kind}:{label}" if label else kind)

    message_id = event.get("messageId")
    return observation_or_rejection(
        source=options.source,
        party=options.party,
        record=ref,
        at=at,
        identifiers=identifiers,
        rejected_values=rejected + value_rejections,
        raw=event,
        message_id=str(message_id) if message_id not in (None, "") else None,
        traits=merged_traits,
        events=events,
    )


def _external_ids(
    context: Mapping[str, Any],
    ref: str,
    options: SegmentEventOptions,
    rejections: list[Rejection],
) -> Iterator[tuple[str, str, object]]:
    external = context.get("externalIds")
    if external is None:
        return
    if not isinstance(external, list):
        rejections.append(
            Rejection(
                "wrong_type",
                "context.externalIds must be a list",
                ref,
                "context.externalIds",
                preview(str(external)),
            )
        )
        return
    for index, item in enumerate(external):
        path = f"context.externalIds[{index}]"
        if not isinstance(item, dict) or "id" not in item:
            rejections.append(
                Rejection(
                    "wrong_type",
                    f"{path} must be an object with id and type",
                    ref,
                    path,
                    preview(str(item)),
                )
            )
            continue
        mapped = options.external_id_types.get(str(item.get("type", "")).lower())
        if mapped is None:
            rejections.append(
                Rejection(
                    "unknown_type",
                    f"{path}.type {item.get('type')!r} is not mapped to an identifier type",
                    ref,
                    path,
                    preview(str(item)),
                )
            )
            continue
        yield path, mapped, item["id"]
