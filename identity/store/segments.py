"""Segments in the graph: definitions, materialized membership and its changes.

``(:Segment {id, name, description, definition, created_at, updated_at, created_by,
definition_at, refreshed_at, size})``, ``(:Segment)-[:INCLUDES {since}]->(:Identity)`` for the
members as of the last refresh, ``(:Segment)-[:LEFT {at}]->(:Identity)`` for those who left
(so ``changes(since)`` can list removals), one ``(:SegmentRefresh)`` per refresh.

A refresh writes only what changed, in batches of 10,000 rows (``CALL {...} IN
TRANSACTIONS``), so a segment over a million identities refreshes in bounded memory. An
identity has at most one of INCLUDES and LEFT to a segment: entering deletes LEFT, leaving
deletes INCLUDES. The predicate (``where``, on ``p``) comes from
:mod:`identity.store.segment_query` with its parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, LiteralString

from identity.errors import ConflictError, StoreError
from identity.store.driver import Graph

_SEGMENT = """s.id AS id, s.name AS name, s.description AS description,
    s.definition AS definition, s.created_at.epochMillis AS created_at,
    s.updated_at.epochMillis AS updated_at, s.created_by AS created_by,
    s.definition_at.epochMillis AS definition_at, s.refreshed_at.epochMillis AS refreshed_at,
    s.size AS size, s.refreshing_since.epochMillis AS refreshing_since"""
_ACTIVE = "MATCH (p:Identity {status: 'active'}) WHERE "
BATCH_ROWS = 10000


def _taken(error: StoreError, name: str) -> ConflictError | StoreError:
    if "ConstraintValidationFailed" in str(error):
        return ConflictError(f"segment name {name!r} is taken: choose another name")
    return error


def create(
    graph: Graph,
    *,
    id: str,
    name: str,
    description: str,
    definition: str,
    actor: str,
    now: datetime,
) -> dict[str, Any]:
    """Create a segment; ConflictError when the name is taken."""
    try:
        rows = graph.run(
            "create segment",
            """
            OPTIONAL MATCH (t:Segment {name: $name})
            WITH t WHERE t IS NULL
            CREATE (s:Segment {id: $id, name: $name, description: $description,
                               definition: $definition, created_at: $now, updated_at: $now,
                               definition_at: $now, created_by: $actor, size: 0})
            RETURN """
            + _SEGMENT,
            {
                "id": id,
                "name": name,
                "description": description,
                "definition": definition,
                "actor": actor,
                "now": now,
            },
        )
    except StoreError as e:
        raise _taken(e, name) from e
    if not rows:
        raise ConflictError(f"segment name {name!r} is taken: choose another name")
    return rows[0]


def find(graph: Graph, id_or_name: str) -> dict[str, Any] | None:
    """A segment by id, else by name."""
    rows = graph.read(
        "read segment",
        "OPTIONAL MATCH (a:Segment {id: $key}) OPTIONAL MATCH (b:Segment {name: $key}) "
        "WITH coalesce(a, b) AS s WHERE s IS NOT NULL RETURN " + _SEGMENT,
        {"key": id_or_name},
    )
    return rows[0] if rows else None


def list_all(graph: Graph) -> list[dict[str, Any]]:
    return graph.read("list segments", "MATCH (s:Segment) RETURN " + _SEGMENT + " ORDER BY s.name")


def update(
    graph: Graph,
    id: str,
    *,
    name: str | None,
    description: str | None,
    definition: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Change what is given; a new definition sets ``definition_at`` (members stay as they
    are until the next refresh). None when there is no such segment."""
    try:
        rows = graph.run(
            "update segment",
            """
            MATCH (s:Segment {id: $id})
            OPTIONAL MATCH (t:Segment {name: $name}) WHERE t.id <> $id
            WITH s, t IS NOT NULL AS taken
            CALL (s, taken) {
              WITH s, taken WHERE NOT taken
              SET s.name = coalesce($name, s.name),
                  s.description = coalesce($description, s.description),
                  s.definition_at = CASE WHEN $definition IS NULL OR $definition = s.definition
                                    THEN s.definition_at ELSE $now END,
                  s.definition = coalesce($definition, s.definition),
                  s.updated_at = $now
            }
            RETURN taken, """
            + _SEGMENT,
            {
                "id": id,
                "name": name,
                "description": description,
                "definition": definition,
                "now": now,
            },
        )
    except StoreError as e:
        raise _taken(e, name or "") from e
    if rows and rows[0]["taken"]:
        raise ConflictError(f"segment name {name!r} is taken: choose another name")
    return rows[0] if rows else None


def delete(graph: Graph, id: str) -> bool:
    """Delete a segment, its memberships (in batches) and its refresh records."""
    if not graph.read("segment exists", "MATCH (s:Segment {id: $id}) RETURN s.id", {"id": id}):
        return False
    graph.run_autocommit(
        "delete segment memberships",
        """
        MATCH (:Segment {id: $id})-[r:INCLUDES|LEFT]->()
        CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS
        """,
        {"id": id},
    )
    graph.run(
        "delete segment",
        "MATCH (s:Segment {id: $id}) OPTIONAL MATCH (r:SegmentRefresh {segment: $id}) "
        "DETACH DELETE s, r",
        {"id": id},
    )
    return True


def count_matching(graph: Graph, where: str, params: dict[str, Any]) -> int:
    """How many active identities meet the predicate now."""
    query: LiteralString = _ACTIVE + where + " RETURN count(p) AS n"
    return int(graph.read("estimate segment", query, params)[0]["n"])


def sample_matching(
    graph: Graph, where: str, params: dict[str, Any], limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """Up to ``limit`` matching identities (by id) with their traits."""
    query: LiteralString = (
        _ACTIVE + where + " RETURN p.id AS id, [k IN keys(p) WHERE k STARTS WITH 'trait.' "
        "| [substring(k, 6), p[k]]] AS traits ORDER BY p.id LIMIT $limit"
    )
    rows = graph.read("preview segment", query, {**params, "limit": limit})
    return [(r["id"], dict(r["traits"])) for r in rows]


def lock(graph: Graph, id: str, token: str, now: datetime, stale: datetime) -> None:
    """Mark the segment as being refreshed by ``token``; ConflictError when another refresh
    holds it and has shown life since ``stale``."""
    rows = graph.run(
        "lock segment refresh",
        """
        MATCH (s:Segment {id: $id})
        SET s.refresh_lock = true
        REMOVE s.refresh_lock
        WITH s, s.refreshing IS NULL OR s.refreshing_since < $stale AS free
        SET s.refreshing = CASE WHEN free THEN $token ELSE s.refreshing END,
            s.refreshing_since = CASE WHEN free THEN $now ELSE s.refreshing_since END
        RETURN free, s.name AS name, s.refreshing_since AS since
        """,
        {"id": id, "token": token, "now": now, "stale": stale},
    )
    if not rows:
        raise ConflictError(f"segment {id} was deleted")
    if not rows[0]["free"]:
        raise ConflictError(
            f"segment {rows[0]['name']!r} is being refreshed (since {rows[0]['since']}): "
            "wait for that refresh to finish"
        )


def unlock(graph: Graph, id: str, token: str) -> None:
    graph.run(
        "unlock segment refresh",
        "MATCH (s:Segment {id: $id}) WHERE s.refreshing = $token "
        "REMOVE s.refreshing, s.refreshing_since",
        {"id": id, "token": token},
    )


def left_query(where: str) -> LiteralString:
    """Members that no longer match or are no longer active: INCLUDES becomes LEFT {at}.

    The outer scan reads identities only and the writes touch relationships only, so the
    planner needs no Eager buffer (every row in memory) between them; likewise below."""
    return (
        "MATCH (p:Identity) WHERE NOT (coalesce(p.status = 'active', false) AND "
        + where
        + ") CALL (p) { MATCH (s:Segment {id: $segment})-[r:INCLUDES]->(p) "
        "DELETE r MERGE (s)-[l:LEFT]->(p) SET l.at = $now, l.announce = $refresh "
        "RETURN 1 AS changed } "
        "IN TRANSACTIONS OF 10000 ROWS RETURN count(*) AS n"
    )


def entered_query(where: str) -> LiteralString:
    """Matching active identities not yet members: INCLUDES {since}, any LEFT removed."""
    return (
        _ACTIVE
        + where
        + " CALL (p) { MATCH (s:Segment {id: $segment}) WHERE NOT EXISTS { (s)-[:INCLUDES]->(p) } "
        "CREATE (s)-[:INCLUDES {since: $now, announce: $refresh}]->(p) "
        "WITH s, p OPTIONAL MATCH (s)-[l:LEFT]->(p) DELETE l RETURN 1 AS changed } "
        "IN TRANSACTIONS OF 10000 ROWS RETURN count(*) AS n"
    )


def remove_left(
    graph: Graph, id: str, where: str, params: dict[str, Any], now: datetime, refresh: str
) -> int:
    """Run :func:`left_query`; how many left. Each change is tagged with the refresh for the
    outbox (:func:`identity.store.outbox.announce_segment`)."""
    rows = graph.run_autocommit(
        "segment refresh: left",
        left_query(where),
        {**params, "segment": id, "now": now, "refresh": refresh},
    )
    return int(rows[0]["n"])


def add_entered(
    graph: Graph, id: str, where: str, params: dict[str, Any], now: datetime, refresh: str
) -> int:
    """Run :func:`entered_query`; how many entered (tagged with the refresh likewise)."""
    rows = graph.run_autocommit(
        "segment refresh: entered",
        entered_query(where),
        {**params, "segment": id, "now": now, "refresh": refresh},
    )
    return int(rows[0]["n"])


def begin_refresh(graph: Graph, id: str, *, refresh: str, now: datetime) -> None:
    """The refresh's record, before it changes anything: a crash leaves it unannounced."""
    graph.run(
        "begin segment refresh",
        "CREATE (:SegmentRefresh {id: $refresh, segment: $id, at: $now})",
        {"id": id, "refresh": refresh, "now": now},
    )


def record_refresh(
    graph: Graph, id: str, *, refresh: str, entered: int, left: int, ms: int, now: datetime
) -> int:
    """Set the segment's size and refresh time; keep a SegmentRefresh; the size."""
    rows = graph.run(
        "record segment refresh",
        """
        MATCH (s:Segment {id: $id})
        WITH s, COUNT { (s)-[:INCLUDES]->() } AS size
        SET s.size = size, s.refreshed_at = $now
        MERGE (f:SegmentRefresh {id: $refresh})
        SET f += {segment: $id, at: $now, entered: $entered, left: $left, size: size, ms: $ms}
        RETURN size
        """,
        {"id": id, "refresh": refresh, "entered": entered, "left": left, "ms": ms, "now": now},
    )
    return int(rows[0]["size"]) if rows else 0


def refreshes(graph: Graph, id: str, last: int) -> list[dict[str, Any]]:
    """The last ``last`` refreshes of a segment, newest first."""
    return graph.read(
        "segment refreshes",
        """
        MATCH (r:SegmentRefresh {segment: $id}) WHERE r.size IS NOT NULL
        RETURN r.id AS id, r.at.epochMillis AS at, r.entered AS entered, r.left AS left,
               r.size AS size, r.ms AS ms
        ORDER BY r.at DESC LIMIT $last
        """,
        {"id": id, "last": last},
    )


_MEMBER_ROW: LiteralString = """
        RETURN [p.id, p.status, p.created_at.epochMillis, p.updated_at.epochMillis, p.size]
               AS identity, r.since.epochMillis AS since
"""


def members(
    graph: Graph, id: str, after: str | None, limit: int, *, along_index: bool | None = None
) -> list[dict[str, Any]]:
    """A page of members by identity id after ``after``: the identity row (id, status,
    created_at, updated_at, size) and ``since``.

    Two ways, the cheaper chosen unless ``along_index`` says: from the segment (reads and
    sorts all its memberships: a page costs the segment's size) or along the identity id
    index, keeping members (a page costs about ``limit`` x identities / members)."""
    if along_index is None:
        sizes = graph.read(
            "segment density",
            "MATCH (s:Segment {id: $id}) "
            "RETURN COUNT { (s)-[:INCLUDES]->() } AS members, COUNT { (:Identity) } AS all",
            {"id": id},
        )
        held, total = (sizes[0]["members"], sizes[0]["all"]) if sizes else (0, 0)
        along_index = held * held > limit * total
    query: LiteralString = (
        """
        MATCH (p:Identity)
        WHERE p.id > coalesce($after, '') AND EXISTS { (:Segment {id: $id})-[:INCLUDES]->(p) }
        WITH p ORDER BY p.id LIMIT $limit
        MATCH (:Segment {id: $id})-[r:INCLUDES]->(p)
        """
        if along_index
        else """
        MATCH (:Segment {id: $id})-[r:INCLUDES]->(p:Identity)
        WHERE $after IS NULL OR p.id > $after
        WITH p, r ORDER BY p.id LIMIT $limit
        """
    )
    return graph.read(
        "segment members", query + _MEMBER_ROW, {"id": id, "after": after, "limit": limit}
    )


def changes(
    graph: Graph, id: str, since: datetime, after: tuple[int, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Who entered (INCLUDES.since) and left (LEFT.at) after ``since``, by (time, identity)
    after the keyset ``after`` = (epoch ms, identity id)."""
    at, identity = after if after else (None, None)
    return graph.read(
        "segment changes",
        """
        MATCH (s:Segment {id: $id})
        CALL (s) {
          MATCH (s)-[r:INCLUDES]->(p:Identity) WHERE r.since > $since
          RETURN p.id AS identity, r.since.epochMillis AS at, 'entered' AS change
          UNION ALL
          MATCH (s)-[r:LEFT]->(p:Identity) WHERE r.at > $since
          RETURN p.id AS identity, r.at.epochMillis AS at, 'left' AS change
        }
        WITH identity, at, change
        WHERE $at IS NULL OR at > $at OR (at = $at AND identity > $identity)
        RETURN identity, at, change ORDER BY at, identity LIMIT $limit
        """,
        {"id": id, "since": since, "at": at, "identity": identity, "limit": limit},
    )
