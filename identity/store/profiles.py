"""Reading what profiles are built from, and writing them onto ``(:Identity)`` nodes.

Profiles are rebuilt by pages of identity ids: one query reads every member's trait and event
properties and its third-party segments for the page, one ``UNWIND`` writes the page's
profiles, removing the profile properties a profile no longer has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from identity.store.driver import Graph

# Per identity: [first_seen, last_seen, [[type, count]]] over all members; the members that
# carry traits, events or DMP segments (labelled :Stated, so the others are not opened) as
# [key, type, [[property, value]], [[segment, expires]]] (times in epoch ms); and the
# current profile properties.
_READ_MEMBERS = """
UNWIND $ids AS id
MATCH (p:Identity {id: id})
CALL (p) {
  OPTIONAL MATCH (p)<-[:MEMBER_OF]-(i:Identifier)
  WITH i.type AS type, count(i) AS n, min(i.first_seen) AS first, max(i.last_seen) AS last
  RETURN [min(first).epochMillis, max(last).epochMillis,
          collect(CASE WHEN type IS NULL THEN null ELSE [type, n] END)] AS summary
}
RETURN id, summary, COLLECT {
  MATCH (p)<-[:MEMBER_OF]-(i:Stated)
  WITH i, [k IN keys(i) WHERE k STARTS WITH 'trait' OR k STARTS WITH 'event_'] AS ks,
       COLLECT { MATCH (i)-[m:IN_SEGMENT]->(s:DmpSegment)
                 RETURN [s.name, m.expires_at.epochMillis] } AS segments
  WHERE size(ks) > 0 OR size(segments) > 0
  RETURN [i.key, i.type, [k IN ks | [k, CASE
             WHEN k STARTS WITH 'trait_at.' OR k STARTS WITH 'event_first.'
               OR k STARTS WITH 'event_last.' THEN i[k].epochMillis ELSE i[k] END]],
          segments]
} AS members,
[k IN keys(p) WHERE k IN $fields OR any(prefix IN $prefixes WHERE k STARTS WITH prefix) |
 [k, CASE WHEN p[k] IS :: ZONED DATETIME THEN p[k].epochMillis ELSE p[k] END]] AS current
"""

_WRITE_PROFILES = """
UNWIND $rows AS row
MATCH (p:Identity {id: row.id})
FOREACH (k IN row.stale | SET p[k] = null)
SET p += row.props
FOREACH (t IN row.times | SET p[t[0]] = datetime({epochMillis: t[1]}))
"""


_STATED_CHUNK = """
MATCH (i:Stated) WHERE id(i) IN range($low, $high)
WITH i, [k IN keys(i) WHERE k STARTS WITH 'trait' OR k STARTS WITH 'event_'] AS ks
RETURN collect([i.key, i.type, [k IN ks | [k, CASE
         WHEN k STARTS WITH 'trait_at.' OR k STARTS WITH 'event_first.'
           OR k STARTS WITH 'event_last.' THEN i[k].epochMillis ELSE i[k] END]],
       COLLECT { MATCH (i)-[m:IN_SEGMENT]->(s:DmpSegment)
                 RETURN [s.name, m.expires_at.epochMillis] }]) AS rows
"""
_ID_STEP = 20_000


def stated_members(graph: Graph) -> Iterable[list[Any]]:
    """Every identifier that says something (labelled ``:Stated``: traits, events, DMP
    segments), as the rows :func:`read_members` gives, by blocks of internal ids."""
    top = graph.read("read the highest stated id", "MATCH (i:Stated) RETURN max(id(i)) AS top")
    high = top[0]["top"] if top else None
    if high is None:
        return
    for low in range(0, int(high) + 1, _ID_STEP):
        yield from graph.read_collected(
            "read stated identifiers", _STATED_CHUNK, {"low": low, "high": low + _ID_STEP - 1}
        )


def read_members(
    graph: Graph, ids: Sequence[str], fields: Sequence[str], prefixes: Sequence[str]
) -> dict[str, tuple[list[Any], list[list[Any]], list[list[Any]]]]:
    """Per identity in ``ids`` (an unknown id is absent): a summary of all its members
    (first and last seen in epoch ms, ``[[type, count]]``); the members with traits, events
    or DMP segments as rows (key, type, ``[[property, value]]`` with times in epoch ms,
    ``[[DMP segment, expires_at ms]]``); and its current profile properties (those in
    ``fields`` or starting with one of ``prefixes``) as ``[[property, value]]``, times in
    epoch ms. Only members that say something travel: most identifiers only count."""
    rows = graph.read(
        "read profile members",
        _READ_MEMBERS,
        {"ids": list(ids), "fields": list(fields), "prefixes": list(prefixes)},
    )
    return {row["id"]: (row["summary"], row["members"], row["current"]) for row in rows}


def write_profiles(graph: Graph, profiles: Sequence[dict[str, Any]]) -> None:
    """Write ``[{id, props, times, stale}]``: set ``props``, set ``times`` (``[[property,
    epoch ms]]``) as datetimes, remove the ``stale`` properties."""
    graph.run("write profiles", _WRITE_PROFILES, {"rows": list(profiles)})


def active_identity_pages(graph: Graph, size: int) -> Iterable[list[str]]:
    """Every active identity id, in pages of ``size`` by id (keyset: bounded memory)."""
    after = ""
    while True:
        page: list[str] = graph.read_collected(
            "read identity ids",
            "MATCH (p:Identity) WHERE p.id > $after AND p.status = 'active' "
            "WITH p.id AS id ORDER BY id LIMIT $size RETURN collect(id)",
            {"after": after, "size": size},
        )
        if not page:
            return
        yield page
        after = page[-1]


def profile_state(graph: Graph) -> str | None:
    """The fingerprint of the precedence rules the profiles were built under, if any."""
    rows = graph.read(
        "read profile state", "MATCH (s:ProfileState {id: 'profiles'}) RETURN s.rules AS rules"
    )
    return rows[0]["rules"] if rows else None


def set_profile_state(graph: Graph, rules: str) -> None:
    graph.run(
        "write profile state",
        "MERGE (s:ProfileState {id: 'profiles'}) SET s.rules = $rules, s.built_at = datetime()",
        {"rules": rules},
    )
