"""Audiences in the graph: what each audience has exported, and the record of every export.

``(:Audience {id, segment, types, hashed, destination, created_at})`` is one way of exporting a
segment; ``(:Audience)-[:EXPORTED {run, identity, at}]->(:Identifier)`` holds what its last
export sent, and ``(:AudienceExport {id, audience, ...})`` records each export. Members are read
a page at a time by identity id (keyset pagination), so that an export of any size holds one
page in memory. Every value travels as a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, LiteralString

from identity.store.driver import Graph


@dataclass(frozen=True)
class MemberIdentifier:
    """One identifier of a member identity, with what the export filter needs."""

    key: str
    type: str
    value: str
    hashed: bool
    blocked: bool


@dataclass(frozen=True)
class Member:
    """A member identity of the segment: its id, the consent purposes it grants (of those
    asked) and its identifiers of the asked types."""

    id: str
    granted: frozenset[str]
    identifiers: tuple[MemberIdentifier, ...]


def segment_state(graph: Graph, segment: str) -> dict[str, Any] | None:
    """The segment (by id, else by name): its id, refresh time, active members and all
    identities (to choose how to page); None when there is no such segment."""
    rows = graph.read(
        "read segment for export",
        """
        OPTIONAL MATCH (by_id:Segment {id: $segment})
        OPTIONAL MATCH (by_name:Segment {name: $segment})
        WITH coalesce(by_id, by_name) AS s WHERE s IS NOT NULL
        RETURN s.id AS id, s.name AS name, s.refreshed_at AS refreshed_at,
               COUNT { (s)-[:INCLUDES]->(:Identity {status: 'active'}) } AS members,
               COUNT { (:Identity) } AS identities
        """,
        {"segment": segment},
    )
    return rows[0] if rows else None


# Two ways to the next page of members, both in identity id order from ``$after``: from the
# segment (reads all its members and keeps the first ``$limit``: a page costs the segment's
# size) or along the identity id index, keeping members (a page costs the identities scanned
# to find ``$limit`` members: one pass over the index in all). The first suits segments small
# next to the graph, the second big ones.
_FROM_SEGMENT: LiteralString = """
    MATCH (:Segment {id: $segment})-[:INCLUDES]->(p:Identity {status: 'active'})
    WHERE p.id > $after
    WITH p ORDER BY p.id LIMIT $limit
"""
_ALONG_INDEX: LiteralString = """
    MATCH (p:Identity)
    WHERE p.id > $after AND p.status = 'active'
      AND EXISTS { (:Segment {id: $segment})-[:INCLUDES]->(p) }
    WITH p ORDER BY p.id LIMIT $limit
"""
_PAGE: LiteralString = """
    WITH p, [(i:Identifier)-[:MEMBER_OF]->(p) WHERE i.type IN $types |
             [i.key, i.type, i.value, coalesce(i.hashed, false), coalesce(i.blocked, false)]]
           AS ids
    RETURN collect([p.id, [x IN $purposes WHERE p['consent.' + x] = true], ids])
"""


def member_page(
    graph: Graph,
    segment: str,
    types: Sequence[str],
    purposes: Sequence[str],
    after: str,
    limit: int,
    *,
    along_index: bool = False,
) -> list[Member]:
    """The next ``limit`` member identities with ids above ``after``, in id order."""
    rows = graph.read_collected(
        "read segment members for export",
        (_ALONG_INDEX if along_index else _FROM_SEGMENT) + _PAGE,
        {
            "segment": segment,
            "types": list(types),
            "purposes": list(purposes),
            "after": after,
            "limit": limit,
        },
    )
    return [
        Member(
            id=pid,
            granted=frozenset(granted),
            identifiers=tuple(MemberIdentifier(*row) for row in ids),
        )
        for pid, granted, ids in rows
    ]


def claim_audience(
    graph: Graph,
    audience: str,
    request: Mapping[str, Any],
    export: str,
    at: datetime,
    stale_before: datetime,
) -> dict[str, Any]:
    """Create the audience if new and claim it for ``export`` unless another export runs it
    (one that started before ``stale_before`` is taken as dead). Returns ``claimed``, the
    ``holder`` and its ``since`` when not claimed, and the last export's id and status."""
    rows = graph.run(
        "claim audience",
        """
        MERGE (a:Audience {id: $audience})
        ON CREATE SET a += $request, a.created_at = $at
        SET a.claimed_at = $at
        WITH a, a.running AS holder, a.running_since AS since
        WITH a, holder, since, holder IS NULL OR since < $stale AS free
        SET a.running = CASE WHEN free THEN $export ELSE holder END,
            a.running_since = CASE WHEN free THEN $at ELSE since END
        WITH free, holder, since
        OPTIONAL MATCH (e:AudienceExport {audience: $audience})
        WITH free, holder, since, e ORDER BY e.at DESC LIMIT 1
        RETURN free AS claimed, holder, since, e.id AS last, e.status AS status
        """,
        {
            "audience": audience,
            "request": dict(request),
            "export": export,
            "at": at,
            "stale": stale_before,
        },
    )
    return rows[0]


def release_audience(graph: Graph, audience: str, export: str) -> None:
    """Let other exports of the audience run (when ``export`` holds it)."""
    graph.run(
        "release audience",
        """
        MATCH (a:Audience {id: $audience}) WHERE a.running = $export
        REMOVE a.running, a.running_since
        """,
        {"audience": audience, "export": export},
    )


def start_export(graph: Graph, record: Mapping[str, Any]) -> None:
    """Record an export as running (its counts are set when it completes)."""
    graph.run(
        "record audience export",
        """
        CREATE (e:AudienceExport)
        SET e = $record, e.status = 'running'
        """,
        {"record": dict(record)},
    )


def mark_exported(
    graph: Graph, audience: str, run: str, rows: Sequence[tuple[str, str]], at: datetime
) -> list[str]:
    """Mark ``(key, identity id)`` pairs exported by ``run``; return the keys the audience had
    not exported before (the adds)."""
    found = graph.run(
        "mark audience identifiers exported",
        """
        MATCH (a:Audience {id: $audience})
        UNWIND $rows AS row
        MATCH (i:Identifier {key: row[0]})
        OPTIONAL MATCH (a)-[old:EXPORTED]->(i)
        SET old.run = $run, old.identity = row[1], old.at = $at
        FOREACH (_ IN CASE WHEN old IS NULL THEN [1] ELSE [] END |
          CREATE (a)-[:EXPORTED {run: $run, identity: row[1], at: $at}]->(i))
        WITH i, old WHERE old IS NULL
        RETURN collect(i.key) AS keys
        """,
        {"audience": audience, "run": run, "rows": [list(r) for r in rows], "at": at},
    )
    return list(found[0]["keys"]) if found else []


def take_removals(graph: Graph, audience: str, run: str, limit: int) -> list[dict[str, Any]]:
    """Delete up to ``limit`` EXPORTED relationships of earlier runs (not seen by ``run``) and
    return what they pointed at: key, type, value, hashed and the identity it was exported
    under. Called until it returns fewer than ``limit``."""
    return graph.run(
        "take audience removals",
        """
        MATCH (:Audience {id: $audience})-[e:EXPORTED]->(i:Identifier)
        WHERE e.run <> $run
        WITH e, i LIMIT $limit
        WITH e, i.key AS key, i.type AS type, i.value AS value,
             coalesce(i.hashed, false) AS hashed, e.identity AS identity
        DELETE e
        RETURN key, type, value, hashed, identity
        """,
        {"audience": audience, "run": run, "limit": limit},
    )


def exported_identifiers(graph: Graph, keys: Sequence[str]) -> list[dict[str, Any]]:
    """What audiences exported of ``keys``: audience id, whether hashed and for which
    destination, the identity it was exported under, the identifier's type, value and
    whether it is stored hashed (read before those identifiers are erased)."""
    return graph.read(
        "read exports of identifiers",
        """
        UNWIND $keys AS k
        MATCH (a:Audience)-[x:EXPORTED]->(i:Identifier {key: k})
        RETURN a.id AS audience, coalesce(a.hashed, false) AS hashed,
               a.destination AS destination, x.identity AS identity, i.type AS type,
               i.value AS value, coalesce(i.hashed, false) AS stored_hashed
        """,
        {"keys": list(keys)},
    )


def record_erasures(graph: Graph, rows: Sequence[Mapping[str, Any]], at: datetime) -> None:
    """Removals an audience's next export owes for erased identifiers:
    ``(:AudienceErasure {audience, identity, type, value, at})``, ``value`` as exported."""
    graph.run(
        "record audience erasures",
        "UNWIND $rows AS r CREATE (:AudienceErasure {audience: r.audience, "
        "identity: r.identity, type: r.type, value: r.value, at: $at})",
        {"rows": [dict(r) for r in rows], "at": at},
    )


def take_erasures(graph: Graph, audience: str, limit: int) -> list[dict[str, Any]]:
    """Delete up to ``limit`` of ``audience``'s owed erasure removals and return them
    (identity, type, value as exported). Called until it returns fewer than ``limit``."""
    return graph.run(
        "take audience erasures",
        """
        MATCH (e:AudienceErasure {audience: $audience})
        WITH e LIMIT $limit
        WITH e, e.identity AS identity, e.type AS type, e.value AS value
        DELETE e
        RETURN identity, type, value
        """,
        {"audience": audience, "limit": limit},
    )


def finish_export(graph: Graph, export: str, counts: Mapping[str, Any], at: datetime) -> None:
    """Set an export's counts and mark it completed."""
    graph.run(
        "complete audience export",
        """
        MATCH (e:AudienceExport {id: $export})
        SET e += $counts, e.status = 'completed', e.finished_at = $at
        """,
        {"export": export, "counts": dict(counts), "at": at},
    )


def fail_export(graph: Graph, export: str, reason: str, at: datetime) -> None:
    """Mark an export failed: the next export of its audience must be a full one."""
    graph.run(
        "record failed audience export",
        """
        MATCH (e:AudienceExport {id: $export})
        SET e.status = 'failed', e.error = $reason, e.finished_at = $at
        """,
        {"export": export, "reason": reason[:500], "at": at},
    )


_EXPORT_FIELDS: LiteralString = """
    {id: e.id, audience: e.audience, segment: e.segment, at: e.at, status: e.status,
     format: e.format, hashed: e.hashed, destination: e.destination, delta: e.delta,
     file: e.file, types: e.types, members: e.members, rows: e.rows, adds: e.adds,
     removes: e.removes, eligible: e.eligible, identifiers: e.identifiers,
     skipped_consent: e.skipped_consent, skipped_consent_by_type: e.skipped_consent_by_type,
     skipped_blocked: e.skipped_blocked, skipped_hashed: e.skipped_hashed} AS export
"""


def audiences(graph: Graph, segment: str | None) -> list[dict[str, Any]]:
    """The audiences (of one segment, or all), with how many identifiers each has exported."""
    return graph.read(
        "list audiences",
        """
        MATCH (a:Audience)
        WHERE $segment IS NULL OR a.segment = $segment
        RETURN a.id AS id, a.segment AS segment, a.types AS types, a.hashed AS hashed,
               a.destination AS destination, a.created_at AS created_at,
               COUNT { (a)-[:EXPORTED]->() } AS exported
        ORDER BY a.created_at, a.id
        """,
        {"segment": segment},
    )


def exports(graph: Graph, audience: str | None, limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` exports (of one audience, or all), newest first."""
    rows = graph.read(
        "list audience exports",
        """
        MATCH (e:AudienceExport)
        WHERE $audience IS NULL OR e.audience = $audience
        WITH e ORDER BY e.at DESC, e.id LIMIT $limit
        RETURN """
        + _EXPORT_FIELDS,
        {"audience": audience, "limit": limit},
    )
    return [_decoded(r["export"]) for r in rows]


def exports_by_id(graph: Graph, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The exports of ``ids`` (those that exist), in no particular order."""
    rows = graph.read(
        "read audience exports",
        "UNWIND $ids AS id MATCH (e:AudienceExport {id: id}) RETURN " + _EXPORT_FIELDS,
        {"ids": list(ids)},
    )
    return [_decoded(r["export"]) for r in rows]


def _decoded(export: dict[str, Any]) -> dict[str, Any]:
    by_type = export.get("skipped_consent_by_type")
    export["skipped_consent_by_type"] = json.loads(by_type) if by_type else {}
    return export
