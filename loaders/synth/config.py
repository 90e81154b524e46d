"""What ``generate`` is asked for (``SynthConfig``) and what it reports (``SynthSummary``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; the same config and seed always give the same bytes."""

    people: int = 1000
    seed: int = 42
    events_per_person: float = 10.0
    start: datetime = datetime(2026, 9, 1, tzinfo=UTC)
    days: int = 60
    gzip: bool = False
    # every person on mobile apps only: each event carries an anonymousId, a device id and an
    # advertising id (the shape of an app-first business, and the costliest to load)
    apps_only: bool = False


@dataclass(frozen=True)
class SynthSummary:
    """Counts of what was written and the files, by name (events, crm, dmp, truth, mappings)."""

    people: int
    events: int
    crm_rows: int
    dmp_rows: int
    files: dict[str, Path]
