"""What the API reads, each query taking a whole batch of keys (the DataLoaders call these).

Every function takes many ids or keys and answers them with one query, so a page of 50
profiles costs the same few queries as one profile. Rows come back as typed rows
(:class:`IdentityRow`, :class:`IdentifierRow`, ...): Cypher returns each as a list in the
row's field order (cheaper than maps for the driver), written once here from the row's
fields. Times are epoch milliseconds. :mod:`identity.api.types` turns them into GraphQL
objects. Pages are keyset-paginated: ``after`` is the last key (or ``[at, id]``) of the
previous page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString, TypeVar

from neo4j.time import DateTime

from identity.store.driver import AsyncGraph
from identity.store.read_types import (
    EventRow,
    IdentifierRow,
    IdentityRow,
    LinkRow,
    Page,
    QuarantineRow,
    Stats,
)
from identity.store.rows import label_for

R = TypeVar("R")


def _columns(row: type[tuple[Any, ...]], **cypher: str) -> str:
    """The Cypher list of ``row``'s columns, in its field order: one expression per field."""
    fields: tuple[str, ...] = row._fields  # type: ignore[attr-defined]
    assert set(fields) == set(cypher), (row, sorted(set(fields) ^ set(cypher)))
    return "[" + ", ".join(cypher[f] for f in fields) + "]"


_IDENTITY = _columns(
    IdentityRow,
    id="p.id",
    status="p.status",
    created_at="p.created_at.epochMillis",
    updated_at="p.updated_at.epochMillis",
    size="p.size",
)
_IDENTIFIER = _columns(
    IdentifierRow,
    key="i.key",
    type="i.type",
    value="i.value",
    hashed="coalesce(i.hashed, false)",
    first_seen="i.first_seen.epochMillis",
    last_seen="i.last_seen.epochMillis",
    seen="coalesce(i.seen, 0)",
    sources="coalesce(i.sources, [])",
    shared="i.shared",
    shared_reason="i.shared_reason",
    blocked="coalesce(i.blocked, false)",
    blocked_reason="i.blocked_reason",
)
EVENT_COLUMNS = _columns(
    EventRow,
    id="e.id",
    kind="e.kind",
    reason="e.reason",
    actor="e.actor",
    at="e.at.epochMillis",
    action="e.action",
    keys="coalesce(e.keys, [])",
    identities="COLLECT { MATCH (e)-[a:AFFECTED]->(x:Identity) RETURN [x.id, a.role] "
    "ORDER BY x.id }",
)
_LINK = _columns(
    LinkRow,
    other="o.key",
    first_seen="r.first_seen.epochMillis",
    last_seen="r.last_seen.epochMillis",
    times_seen="coalesce(r.count, 0)",
    sources="coalesce(r.sources, [])",
    party="r.party",
    evidence="coalesce(r.evidence, [])",
    cut="coalesce(r.cut, false)",
    cut_reason="r.cut_reason",
    cut_by="r.cut_by",
    forced="coalesce(r.forced, false)",
    forced_reason="r.forced_reason",
    forced_by="r.forced_by",
)


def _identifiers(rows: list[list[Any]]) -> list[IdentifierRow]:
    return [IdentifierRow._make(r) for r in rows]


# Times come back as epoch milliseconds: the driver's own temporal types cost a tenth of a
# millisecond each to build, more than the rest of a profile lookup's decoding.


def when(millis: int | None) -> datetime | None:
    """Epoch milliseconds (as read) as an aware UTC datetime."""
    return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)


def instant(millis: int) -> datetime:
    """Epoch milliseconds of a time that is always set, as an aware UTC datetime."""
    return datetime.fromtimestamp(millis / 1000, UTC)


def native(value: Any) -> Any:
    """A driver temporal value as a Python one (``datetime``); anything else as it is."""
    return value.to_native() if isinstance(value, DateTime) else value


async def _by_item(
    row: Callable[[list[Any]], R],
    reads: AsyncGraph,
    operation: str,
    query: LiteralString,
    items: Sequence[str],
) -> dict[str, R]:
    """``query`` over ``$items`` returning ``[item, row]`` records, as a map to ``row(...)``."""
    records = await reads.read(operation, query, {"items": list(items)})
    return {r[0]: row(r[1]) for r in records}


async def identities_by_key(reads: AsyncGraph, keys: Sequence[str]) -> dict[str, IdentityRow]:
    """The identity holding each identifier key (keys without one are absent)."""
    return await _by_item(
        IdentityRow._make,
        reads,
        "identity by identifier",
        "UNWIND $items AS k MATCH (:Identifier {key: k})-[:MEMBER_OF]->(p:Identity) "
        f"RETURN k, {_IDENTITY}",
        keys,
    )


async def identities_by_id(reads: AsyncGraph, ids: Sequence[str]) -> dict[str, IdentityRow]:
    """Each identity by id; a merged id gives its surviving identity (follow MERGED_INTO)."""
    return await _by_item(
        IdentityRow._make,
        reads,
        "identity by id",
        "UNWIND $items AS id MATCH (m:Identity {id: id}) "
        "WITH id, CASE WHEN m.status = 'merged' THEN COLLECT { "
        "  MATCH (m)-[:MERGED_INTO*1..50]->(s:Identity) WHERE s.status = 'active' "
        "  RETURN s LIMIT 1 } ELSE [m] END AS found "
        f"UNWIND found AS p RETURN id, {_IDENTITY}",
        ids,
    )


async def identifiers_by_key(reads: AsyncGraph, keys: Sequence[str]) -> dict[str, IdentifierRow]:
    return await _by_item(
        IdentifierRow._make,
        reads,
        "identifiers by key",
        f"UNWIND $items AS k MATCH (i:Identifier {{key: k}}) RETURN k, {_IDENTIFIER}",
        keys,
    )


async def attributes(reads: AsyncGraph, ids: Sequence[str]) -> dict[str, list[Any]]:
    """Per identity, each member's traits and event aggregates:
    ``[key, [[property name, value], ...]]`` for ``trait.*``, ``trait_at.*``, ``event_*``."""
    return await _by_item(
        list,
        reads,
        "identity attributes",
        "UNWIND $items AS id MATCH (p:Identity {id: id}) "
        "RETURN id, COLLECT { MATCH (p)<-[:MEMBER_OF]-(i:Identifier) "
        "  WITH i, [k IN keys(i) WHERE k STARTS WITH 'trait' OR k STARTS WITH 'event_'] AS ks "
        "  WHERE size(ks) > 0 RETURN [i.key, [k IN ks | [k, CASE "
        "    WHEN k STARTS WITH 'trait_at.' OR k STARTS WITH 'event_first.' "
        "      OR k STARTS WITH 'event_last.' THEN i[k].epochMillis ELSE i[k] END]]] "
        "  ORDER BY i.key }",
        ids,
    )


async def profiles(reads: AsyncGraph, ids: Sequence[str]) -> dict[str, list[Any]]:
    """Each identity's materialized profile (see :mod:`identity.profiles.precedence`) as
    ``[[property, value]]``, times in epoch milliseconds."""
    return await _by_item(
        list,
        reads,
        "identity profile",
        "UNWIND $items AS id MATCH (p:Identity {id: id}) "
        "RETURN id, [k IN keys(p) WHERE NOT k IN ['id', 'status', 'size', 'created_at', "
        "  'updated_at', 'merged_into'] | [k, CASE WHEN p[k] IS :: ZONED DATETIME "
        "  THEN p[k].epochMillis ELSE p[k] END]]",
        ids,
    )


# A page of identity p's identifiers by key, after $after, and how many of $types in all.
_MEMBERS = (
    "COLLECT { MATCH (p)<-[:MEMBER_OF]-(i:Identifier) "
    "  WHERE ($types IS NULL OR i.type IN $types) AND ($after IS NULL OR i.key > $after) "
    f"  RETURN {_IDENTIFIER} ORDER BY i.key LIMIT $limit }}, "
    "COUNT { MATCH (p)<-[:MEMBER_OF]-(i:Identifier) WHERE $types IS NULL OR i.type IN $types }"
)


def _page_parameters(
    items: Sequence[str], types: Sequence[str] | None, after: str | None, limit: int
) -> dict[str, Any]:
    return {
        "items": list(items),
        "types": list(types) if types else None,
        "after": after,
        "limit": limit,
    }


async def members_pages(
    reads: AsyncGraph,
    ids: Sequence[str],
    types: Sequence[str] | None,
    after: str | None,
    limit: int,
) -> dict[str, Page]:
    """A page of each identity's identifiers (by key, after ``after``) and how many in all."""
    records = await reads.read(
        "identity members",
        f"UNWIND $items AS id MATCH (p:Identity {{id: id}}) RETURN id, {_MEMBERS}",
        _page_parameters(ids, types, after, limit),
    )
    return {r[0]: Page(_identifiers(r[1]), r[2]) for r in records}


async def profiles_by_key(
    reads: AsyncGraph,
    keys: Sequence[str],
    types: Sequence[str] | None,
    after: str | None,
    limit: int,
) -> dict[str, tuple[IdentityRow, Page]]:
    """The identity holding each key *and* a page of its identifiers, in one query: what a
    profile lookup by identifier that lists identifiers needs (one round trip, not two)."""
    records = await reads.read(
        "profile by identifier",
        "UNWIND $items AS k MATCH (:Identifier {key: k})-[:MEMBER_OF]->(p:Identity) "
        f"RETURN k, {_IDENTITY}, {_MEMBERS}",
        _page_parameters(keys, types, after, limit),
    )
    return {r[0]: (IdentityRow._make(r[1]), Page(_identifiers(r[2]), r[3])) for r in records}


async def history_pages(
    reads: AsyncGraph, ids: Sequence[str], after: tuple[datetime, str] | None, limit: int
) -> dict[str, list[EventRow]]:
    """Newest first, the events of each identity and of the identities merged into it."""
    at, event = after if after else (None, None)
    records = await reads.read(
        "identity history",
        "UNWIND $ids AS id MATCH (p:Identity {id: id}) "
        "RETURN id, COLLECT { "
        "  MATCH (p)<-[:MERGED_INTO*0..50]-(:Identity)<-[:AFFECTED]-(e:IdentityEvent) "
        "  WITH DISTINCT e "
        "  WHERE $at IS NULL OR e.at < $at OR (e.at = $at AND e.id < $event) "
        f"  RETURN {EVENT_COLUMNS} ORDER BY e.at DESC, e.id DESC LIMIT $limit }}",
        {"ids": list(ids), "at": at, "event": event, "limit": limit},
    )
    return {r[0]: [EventRow._make(e) for e in r[1]] for r in records}


async def links_pages(
    reads: AsyncGraph, keys: Sequence[str], after: str | None, limit: int
) -> dict[str, Page]:
    """A page of each identifier's links (by the other end's key) and how many in all."""
    records = await reads.read(
        "identifier links",
        "UNWIND $keys AS k MATCH (i:Identifier {key: k}) "
        "RETURN k, COLLECT { MATCH (i)-[r:LINKED]-(o:Identifier) "
        "  WHERE $after IS NULL OR o.key > $after "
        f"  RETURN {_LINK} ORDER BY o.key LIMIT $limit }}, "
        "COUNT { (i)-[:LINKED]-() }",
        {"keys": list(keys), "after": after, "limit": limit},
    )
    return {r[0]: Page([LinkRow._make(link) for link in r[1]], r[2]) for r in records}


async def event_feed(
    reads: AsyncGraph,
    since: datetime | None,
    kinds: Sequence[str] | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[EventRow]:
    """Identity events oldest first, from ``since``, of ``kinds``. Events of a resolve still
    running are held back, so a consumer following the feed never skips part of a run."""
    at, event = after if after else (None, None)
    records = await reads.read(
        "identity event feed",
        "MATCH (e:IdentityEvent) WHERE e.at >= $since "
        "  AND ($kinds IS NULL OR e.kind IN $kinds) "
        "  AND ($at IS NULL OR e.at > $at OR (e.at = $at AND e.id > $event)) "
        "  AND NOT EXISTS { MATCH (run:ResolveRun {id: e.run}) WHERE run.status = 'running' } "
        f"RETURN {EVENT_COLUMNS} ORDER BY e.at, e.id LIMIT $limit",
        {
            "since": since or datetime.fromtimestamp(0).astimezone(),
            "kinds": list(kinds) if kinds else None,
            "at": at,
            "event": event,
            "limit": limit,
        },
    )
    return [EventRow._make(r[0]) for r in records]


async def shared_page(
    reads: AsyncGraph, after: str | None, limit: int
) -> tuple[list[tuple[IdentifierRow, int]], int]:
    """Identifiers flagged shared, by key, with the number of their links."""
    records = await reads.read(
        "review shared",
        "MATCH (i:Identifier) WHERE i.shared IS NOT NULL AND ($after IS NULL OR i.key > $after) "
        f"WITH i ORDER BY i.key LIMIT $limit RETURN {_IDENTIFIER}, COUNT {{ (i)-[:LINKED]-() }}",
        {"after": after, "limit": limit},
    )
    total = await reads.read(
        "review shared count", "MATCH (i:Identifier) WHERE i.shared IS NOT NULL RETURN count(i)"
    )
    return [(IdentifierRow._make(r[0]), int(r[1])) for r in records], int(total[0][0])


async def quarantines(reads: AsyncGraph, limit: int) -> list[QuarantineRow]:
    """Open quarantines, largest first: id, size, sample keys, since."""
    records = await reads.read(
        "review quarantines",
        "MATCH (q:Quarantine) WHERE q.status = 'open' "
        "RETURN [q.id, q.size, coalesce(q.sample, []), q.detected_at.epochMillis] "
        "ORDER BY q.size DESC, q.id LIMIT $limit",
        {"limit": limit},
    )
    return [QuarantineRow._make(r[0]) for r in records]


async def stats(reads: AsyncGraph, types: Sequence[str]) -> Stats:
    """Counts from Neo4j's count store where it has them (identifiers per type label, links),
    the identity size distribution through the status index."""
    per_type: dict[str, int] = {}
    for type_ in types:
        # labels come from the policy's types through label_for, never from a request
        label = label_for(type_)
        if not label.isidentifier():
            raise ValueError(f"identifier type {type_!r} has no safe label")
        records = await reads.read("count identifiers", f"MATCH (i:`{label}`) RETURN count(i)")
        per_type[type_] = int(records[0][0])
    links = await reads.read("count links", "MATCH ()-[r:LINKED]->() RETURN count(r)")
    sizes = await reads.read(
        "identity sizes",
        "MATCH (p:Identity) WHERE p.status = 'active' "
        "RETURN p.size AS size, count(*) AS n ORDER BY size",
    )
    return Stats(
        types=per_type,
        links=int(links[0][0]),
        sizes=[(int(r[0] or 0), int(r[1])) for r in sizes],
    )
