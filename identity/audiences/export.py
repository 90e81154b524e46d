"""Audience exports: the identifiers of a segment's members, filtered by consent, for ad platforms.

An *audience* is one way of exporting a segment: (segment, identifier types, hashed,
destination) gives a stable id. An export walks the segment's members a page at a time (keyset
pagination on the identity id), writing rows as it goes: memory holds one page. It keeps the
identifiers of the asked types that are not blocked and whose consent purpose
(``policy.consent_purpose``) the identity grants (``consent.<purpose> = true``; absent is not
granted), and counts those left out.

Hashing per destination is :mod:`identity.audiences.hashing`.

Deltas: ``(:Audience)-[:EXPORTED {run}]->(:Identifier)`` holds what the audience has exported.
Each export marks what it writes with its run, page by page (the unmarked before are the adds),
then deletes the EXPORTED relationships of earlier runs it did not see (the removals: left the
segment, consent withdrawn, blocked). A delta writes only adds and removes (``op`` column); a
full export writes everything and leaves the same state.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from identity.audiences.hashing import (
    DESTINATIONS,
    HASHED_TYPES,
    Destination,
    hashed_for,
)
from identity.context import ServiceContext
from identity.errors import ConflictError, InputError, NotFoundError
from identity.policy import Policy
from identity.store import audiences as store
from identity.store.audiences import MemberIdentifier
from identity.store.driver import Graph

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = get_args(Format)
PAGE_SIZE = 5000
STALE_AFTER = timedelta(hours=6)  # an export running longer than this is taken as dead

Progress = Callable[[int, int], None]  # (member identities done, total)


@dataclass(frozen=True)
class ExportRequest:
    """What to export; build it with :func:`export_request`, which checks it."""

    segment: str
    types: tuple[str, ...]
    format: Format = "csv"
    hashed: bool = False
    destination: Destination | None = None
    delta: bool = False

    @property
    def audience(self) -> str:
        """The stable id of (segment, types, hashed, destination)."""
        key = json.dumps([self.segment, sorted(self.types), self.hashed, self.destination])
        return "aud-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def export_request(
    policy: Policy,
    segment: str,
    types: Sequence[str],
    *,
    format: str = "csv",
    hashed: bool = False,
    destination: str | None = None,
    delta: bool = False,
) -> ExportRequest:
    """A checked request: known types (in the order given, once each), a known format, and a
    destination when hashing (a plain export needs none: its destination is not recorded)."""
    asked = tuple(dict.fromkeys(t.strip() for t in types if t.strip()))
    if not asked:
        raise InputError("no identifier types: give one or more, e.g. email,phone")
    unknown = [t for t in asked if t not in policy.types]
    if unknown:
        raise InputError(
            f"unknown identifier type {unknown[0]!r}: known types are {', '.join(policy.types)}"
        )
    fmt = format.strip().lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    dest = destination.strip().lower() if destination else None
    if dest is not None and dest not in DESTINATIONS:
        raise InputError(
            f"unknown destination {destination!r}: use one of {', '.join(DESTINATIONS)}"
        )
    if hashed and dest is None:
        raise InputError(
            "a hashed export needs a destination (google or meta): they normalize phones "
            "differently before hashing"
        )
    return ExportRequest(
        segment=segment.strip(),
        types=asked,
        format=fmt,
        hashed=hashed,
        destination=dest if hashed else None,
        delta=delta,
    )


@dataclass
class ExportReport:
    """What an export did: rows = adds + removes (delta) or eligible (full); identifiers (of
    the asked types) = eligible + skipped_consent + skipped_blocked + skipped_hashed."""

    id: str
    audience: str
    segment: str
    format: Format
    hashed: bool
    destination: Destination | None
    delta: bool
    types: tuple[str, ...]
    at: datetime
    file: str | None = None
    members: int = 0
    identifiers: int = 0
    eligible: int = 0
    rows: int = 0
    adds: int = 0
    removes: int = 0
    skipped_consent: dict[str, int] = field(default_factory=dict)
    skipped_blocked: int = 0
    skipped_hashed: int = 0

    @property
    def skipped_consent_total(self) -> int:
        return sum(self.skipped_consent.values())


class _Rows:
    """Writes rows in the export's format: ``identity_id,type,value`` (+ ``op`` for a delta)."""

    def __init__(self, out: TextIO, format: Format, delta: bool) -> None:
        self.out = out
        self.delta = delta
        self.csv = csv.writer(out, lineterminator="\n") if format == "csv" else None
        self.written = 0
        if self.csv is not None:
            self.csv.writerow(["identity_id", "type", "value", *(["op"] if delta else [])])

    def write(self, identity: str | None, type_: str, value: str, op: str) -> None:
        self.written += 1
        if self.csv is not None:
            self.csv.writerow([identity or "", type_, value, *([op] if self.delta else [])])
            return
        row = {"identity_id": identity, "type": type_, "value": value}
        if self.delta:
            row["op"] = op
        self.out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _value(request: ExportRequest, type_: str, value: str, stored_hashed: bool) -> str | None:
    """The value to write, or None when it cannot be given in the form the export promises."""
    if type_ not in HASHED_TYPES:
        return value
    if stored_hashed:
        fits = request.hashed and (type_ == "email" or request.destination == "google")
        return value if fits else None
    if request.hashed and request.destination is not None:
        return hashed_for(request.destination, type_, value)
    return value


def export_audience(
    ctx: ServiceContext,
    request: ExportRequest,
    out: TextIO,
    *,
    export_id: str | None = None,
    file: str | None = None,
    page_size: int = PAGE_SIZE,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ExportReport:
    """Export ``request``'s audience to ``out`` and record it; see the module docstring.

    Raises NotFoundError for an unknown segment, InputError for a segment never refreshed or a
    delta after an export that did not complete (run a full export to reset the state),
    ConflictError while another export of the same audience runs."""
    graph = ctx.graph
    segment = store.segment_state(graph, request.segment)
    if segment is None:
        raise NotFoundError(f"no segment {request.segment!r}: list segments to find its id")
    request = replace(request, segment=segment["id"])  # a name given: the audience is by id
    if segment["refreshed_at"] is None:
        raise InputError(
            f"segment {request.segment!r} has never been refreshed: refresh it first so that "
            "its members are materialized"
        )
    at = now or datetime.now(UTC)
    report = ExportReport(
        id=export_id or new_export_id(),
        audience=request.audience,
        segment=request.segment,
        format=request.format,
        hashed=request.hashed,
        destination=request.destination,
        delta=request.delta,
        types=request.types,
        at=at,
        file=file,
    )
    _claim(graph, request, report)
    try:
        store.start_export(graph, _record(report))
        _run(graph, ctx.policy, request, report, out, page_size, progress, segment)
        store.finish_export(graph, report.id, _counts(report), datetime.now(UTC))
    except BaseException as e:
        store.fail_export(graph, report.id, f"{type(e).__name__}: {e}", datetime.now(UTC))
        raise
    finally:
        store.release_audience(graph, report.audience, report.id)
    return report


def _claim(graph: Graph, request: ExportRequest, report: ExportReport) -> None:
    """Hold the audience for this export: one export of an audience runs at a time."""
    audience = {
        "segment": request.segment,
        "types": list(request.types),
        "hashed": request.hashed,
        "destination": request.destination,
    }
    claim = store.claim_audience(
        graph, report.audience, audience, report.id, report.at, report.at - STALE_AFTER
    )
    if not claim["claimed"]:
        raise ConflictError(
            f"export {claim['holder']} of audience {report.audience} is running (since "
            f"{claim['since']}): wait for it to finish"
        )
    if request.delta and claim["last"] is not None and claim["status"] != "completed":
        store.release_audience(graph, report.audience, report.id)
        raise InputError(
            f"the last export of audience {report.audience} ({claim['last']}) did not "
            "complete: run a full export (without delta) to reset what the audience holds"
        )


def _run(
    graph: Graph,
    policy: Policy,
    request: ExportRequest,
    report: ExportReport,
    out: TextIO,
    page_size: int,
    progress: Progress | None,
    segment: dict[str, Any],
) -> None:
    total, identities = int(segment["members"]), int(segment["identities"])
    purposes = {t: policy.consent_purpose(t) for t in request.types}
    rows = _Rows(out, request.format, request.delta)
    skipped: Counter[str] = Counter()
    # from the segment, pages cost members**2 / page_size; along the index, all identities
    along_index = total * total > page_size * identities
    after = ""
    while True:
        page = store.member_page(
            graph,
            request.segment,
            request.types,
            sorted(set(purposes.values())),
            after,
            page_size,
            along_index=along_index,
        )
        kept: list[tuple[str, MemberIdentifier, str]] = []
        for member in page:
            report.members += 1
            for ident in member.identifiers:
                report.identifiers += 1
                value = _value(request, ident.type, ident.value, ident.hashed)
                if ident.blocked:
                    report.skipped_blocked += 1
                elif purposes[ident.type] not in member.granted:
                    skipped[ident.type] += 1
                elif value is None:
                    report.skipped_hashed += 1
                else:
                    kept.append((member.id, ident, value))
        if kept:
            added = set(
                store.mark_exported(
                    graph, report.audience, report.id, [(i.key, m) for m, i, _ in kept], report.at
                )
            )
            report.eligible += len(kept)
            report.adds += len(added)
            for member_id, ident, value in kept:
                if not request.delta or ident.key in added:
                    rows.write(member_id, ident.type, value, "add")
        if progress is not None:
            progress(report.members, max(total, report.members))
        if len(page) < page_size:
            break
        after = page[-1].id
    while True:
        gone = store.take_removals(graph, report.audience, report.id, page_size)
        for r in gone:
            report.removes += 1
            value = _value(request, r["type"], r["value"], r["hashed"])
            if request.delta and value is not None:
                rows.write(r["identity"], r["type"], value, "remove")
        if len(gone) < page_size:
            break
    while True:
        erased = store.take_erasures(graph, report.audience, page_size)
        for r in erased:
            report.removes += 1
            if request.delta:
                rows.write(r["identity"], r["type"], r["value"], "remove")
        if len(erased) < page_size:
            break
    report.skipped_consent = {t: skipped[t] for t in request.types if skipped[t]}
    report.rows = rows.written
    out.flush()


def erasure_removals(exported: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Of what audiences exported of identifiers about to be erased, the removals their next
    delta can still send: hashed emails and phones, as exported (a SHA-256, no more
    personal than the erasure's tombstones). A value exported in clear (a plain export, a
    cookie or a maid) is not kept: only a full export takes it off the platform."""
    owed = []
    for row in exported:
        if not row["hashed"] or row["type"] not in HASHED_TYPES or row["destination"] is None:
            continue
        destination: Destination = row["destination"]
        request = ExportRequest(
            segment="", types=(row["type"],), hashed=True, destination=destination
        )
        value = _value(request, row["type"], row["value"], row["stored_hashed"])
        if value is not None:
            owed.append({**row, "value": value})
    return owed


def new_export_id() -> str:
    return f"exp-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def _record(report: ExportReport) -> dict[str, object]:
    return {
        "id": report.id,
        "audience": report.audience,
        "segment": report.segment,
        "at": report.at,
        "format": report.format,
        "hashed": report.hashed,
        "destination": report.destination,
        "delta": report.delta,
        "types": list(report.types),
        "file": report.file,
    }


_COUNTS = ("members", "identifiers", "eligible", "rows", "adds", "removes")
_SKIPPED = ("skipped_blocked", "skipped_hashed")


def _counts(report: ExportReport) -> dict[str, object]:
    return {
        **{name: getattr(report, name) for name in _COUNTS + _SKIPPED},
        "skipped_consent": report.skipped_consent_total,
        "skipped_consent_by_type": json.dumps(report.skipped_consent),
    }


def export_to_directory(
    ctx: ServiceContext, request: ExportRequest, directory: Path, **options: Any
) -> ExportReport:
    """Export into ``directory/<export id>.<format>`` (see :func:`export_to_file`)."""
    directory.mkdir(parents=True, exist_ok=True)
    export_id = new_export_id()
    path = directory / f"{export_id}.{request.format}"
    return export_to_file(ctx, request, path, export_id=export_id, **options)


def export_to_file(
    ctx: ServiceContext, request: ExportRequest, path: Path, **options: Any
) -> ExportReport:
    """Export into ``path``, written as ``<path>.part`` and renamed once complete, so that a
    download never sees half a file. ``options``: those of :func:`export_audience`."""
    part = path.with_name(path.name + ".part")
    try:
        with part.open("w", encoding="utf-8", newline="") as out:
            report = export_audience(ctx, request, out, file=path.name, **options)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    part.replace(path)
    return report
