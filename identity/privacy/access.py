"""The right of access: everything idgraph holds about one person, as one JSON document."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from neo4j.time import Date as Neo4jDate
from neo4j.time import DateTime as Neo4jDateTime

from identity.context import ServiceContext
from identity.errors import NotFoundError
from identity.privacy.forget import find_identity
from identity.store.privacy import read_batches, read_export


def plain(value: Any) -> Any:
    """A driver value as JSON-ready data: times as ISO 8601 text."""
    if isinstance(value, Neo4jDateTime | Neo4jDate):
        return value.iso_format()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _identifier(row: dict[str, Any]) -> dict[str, Any]:
    """One identifier: its properties, its traits per source and its event aggregates."""
    props = dict(row["properties"])
    traits: dict[str, dict[str, Any]] = {}
    events: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for name, value in props.items():
        head, _, tail = name.partition(".")
        if head in ("trait", "trait_at") and "." in tail:
            source, _, trait = tail.partition(".")
            slot = traits.setdefault(source, {}).setdefault(trait, {})
            slot["value" if head == "trait" else "at"] = value
        elif head in ("event_count", "event_first", "event_last") and tail:
            events.setdefault(tail, {})[head.removeprefix("event_")] = value
        else:
            rest[name] = value
    return {
        **rest,
        "labels": sorted(row["labels"]),
        "traits": traits,
        "events": events,
        "links": [{"other": link["other"], **link["properties"]} for link in row["links"]],
        "dmp_segments": [{"name": s["name"], **s["properties"]} for s in row["dmp_segments"]],
        "audiences": row["audiences"],
    }


def _batch_ids(identifiers: list[dict[str, Any]]) -> list[str]:
    """The batches that wrote about these identifiers: the last one of each identifier and
    those named by its links' evidence (``<time> <batch>:<record>``)."""
    found: set[str] = set()
    for ident in identifiers:
        if ident.get("batch"):
            found.add(str(ident["batch"]))
        for link in ident["links"]:
            for evidence in link.get("evidence") or []:
                _, _, ref = str(evidence).partition(" ")
                batch, sep, _ = ref.partition(":")
                if sep:
                    found.add(batch)
    return sorted(found)


def export_profile(
    ctx: ServiceContext, *, id: str | None = None, identifier: str | None = None
) -> dict[str, Any]:
    """Everything idgraph holds about one person (the right of access), as one JSON-ready
    document: the identity and its profile properties, each identifier with its properties,
    traits per source, event aggregates, links (other end, times, sources, party, evidence),
    DMP segments and audience exports, the segments it is in, its history (its own events
    and those of the identities merged into it) and the batches that wrote about it."""
    identity, _ = find_identity(ctx, id, identifier)
    row = read_export(ctx.graph, identity)
    if row is None:
        raise NotFoundError(f"identity {identity} is gone")
    props = dict(row["identity"])
    names = ("id", "status", "created_at", "updated_at", "size")
    basics = {k: props.pop(k) for k in names if k in props}
    identifiers = [_identifier(r) for r in row["identifiers"]]
    document: dict[str, Any] = plain(
        {
            "exported_at": datetime.now(UTC),
            "identity": {**basics, "merged_ids": sorted(row["merged"])},
            "profile": props,
            "identifiers": identifiers,
            "segments": row["segments"],
            "history": [
                {**h["properties"], "identity": h["identity"], "role": h["role"]}
                for h in row["history"]
            ],
            "batches": read_batches(ctx.graph, _batch_ids(identifiers)),
        }
    )
    return document
