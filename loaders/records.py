"""What every loader shares: bounded line reading, timestamps, traits and the step that turns
raw identifier values into normalized identifiers (or value rejections).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from identity.errors import InputError
from identity.model import Identifier, Observation, Party, Rejection, TraitValue
from identity.normalize import NormalizationError, Normalizer

Parsed = Observation | Rejection

RAW_PREVIEW = 2_000


@dataclass(frozen=True, slots=True)
class Line:
    """A physical line of a text file; ``data`` is None when it was longer than allowed."""

    number: int
    data: bytes | None
    length: int


def iter_lines(stream: IO[bytes], max_bytes: int) -> Iterator[Line]:
    """Yield the lines of a binary stream, never holding more than ``max_bytes`` of one line."""
    number = 0
    while True:
        chunk = stream.readline(max_bytes + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) <= max_bytes or chunk.endswith(b"\n"):
            yield Line(number, chunk, len(chunk))
            continue
        length = len(chunk)
        while not chunk.endswith(b"\n"):
            chunk = stream.readline(1 << 20)
            if not chunk:
                break
            length += len(chunk)
        yield Line(number, None, length)


def preview(raw: object) -> object:
    """The raw record as kept in a rejects file: cut to a readable size. Parsed JSON (a dict
    or list) is shown as JSON text; it is only serialized when something is rejected."""
    if isinstance(raw, dict | list):
        raw = json.dumps(raw, ensure_ascii=False, default=str)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if isinstance(raw, str) and len(raw) > RAW_PREVIEW:
        return raw[:RAW_PREVIEW] + f"... ({len(raw)} characters)"
    return raw


def parse_timestamp(value: object) -> datetime:
    """An ISO 8601 timestamp (``Z`` or offset; naive means UTC), or a plain date, as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"
    parsed = datetime.fromisoformat(text)  # Python 3.11 reads "Z" as UTC
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def trait_value(value: object) -> TraitValue | None:
    """A trait as stored: scalars as they are, lists and objects as JSON text, null dropped."""
    if value is None:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def normalize_all(
    normalizer: Normalizer,
    candidates: Iterable[tuple[str, str, object]],
    record: str,
) -> tuple[list[Identifier], list[Rejection]]:
    """Normalize ``(field, type, raw)`` candidates; duplicates collapse, failures are reported."""
    identifiers: list[Identifier] = []
    seen: set[str] = set()
    rejected: list[Rejection] = []
    for field, type_, raw in candidates:
        try:
            identifier = normalizer.normalize(type_, raw)
        except NormalizationError as e:
            rejected.append(Rejection(e.code, e.message, record, field, preview(raw)))
            continue
        if identifier.key not in seen:
            seen.add(identifier.key)
            identifiers.append(identifier)
    return identifiers, rejected


def observation_or_rejection(
    *,
    source: str,
    party: Party,
    record: str,
    at: datetime,
    identifiers: list[Identifier],
    rejected_values: list[Rejection],
    raw: object,
    message_id: str | None = None,
    traits: dict[str, TraitValue] | None = None,
    events: list[str] | None = None,
) -> Parsed:
    """An observation, or the record's rejection when no identifier survived normalization."""
    if not identifiers:
        reasons = "; ".join(f"{r.field}: {r.message}" for r in rejected_values)
        message = "no valid identifier in the record" + (f" ({reasons})" if reasons else "")
        return Rejection("no_identifier", message, record, None, preview(raw))
    return Observation(
        source=source,
        party=party,
        record=record,
        at=at,
        identifiers=identifiers,
        message_id=message_id,
        traits=traits or {},
        events=events or [],
        rejected_values=rejected_values,
    )


@contextlib.contextmanager
def open_input(path: Path) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(raw file, decoded stream): gzip is recognised by its magic bytes, not the name."""
    try:
        raw = path.open("rb")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield raw, unzipped  # type: ignore[misc]
        else:
            yield raw, raw
