"""Steward actions in the graph: cuts and forced links on ``LINKED``, blocks on identifiers.

Each action is written in one transaction together with its audit
``(:IdentityEvent {kind: 'steward'})`` (linked to the identities that held its identifiers
before) and a completed ``(:Batch {source: 'steward'})`` that marks those identifiers (and,
for a block, their neighbours) as touched, so that the next incremental resolve picks them up
like the identifiers of a load.
The statements come from a fixed table, one per action; every value travels as a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from identity.store.driver import Graph
from identity.store.outbox import LABELS

_CUT_PROPS: LiteralString = "r.cut, r.cut_reason, r.cut_by, r.cut_at"

# One statement per action, over $a (and $b: two keys, $a < $b). Each returns ``n``, what it
# changed: 0 when the precondition it states no longer holds.
_CHANGES: dict[str, LiteralString] = {
    "cut_link": """
        MATCH (:Identifier {key: $a})-[r:LINKED]-(:Identifier {key: $b})
        SET r.cut = true, r.cut_reason = $reason, r.cut_by = $actor,
            r.cut_at = datetime({epochMillis: $at})
        RETURN count(r) AS n
    """,
    "restore_link": """
        MATCH (:Identifier {key: $a})-[r:LINKED]-(:Identifier {key: $b})
        WHERE r.cut = true
        REMOVE """
    + _CUT_PROPS
    + """
        RETURN count(r) AS n
    """,
    # a new link goes from the smaller key to the larger, as loads write them
    "force_merge": """
        MATCH (x:Identifier {key: $a}), (y:Identifier {key: $b})
        OPTIONAL MATCH (x)-[old:LINKED]-(y)
        WITH x, y, count(old) AS found
        FOREACH (_ IN CASE WHEN found = 0 THEN [1] ELSE [] END |
          CREATE (x)-[:LINKED {party: 'first', sources: ['steward'], count: 1, evidence: [],
                               first_seen: datetime({epochMillis: $at}),
                               last_seen: datetime({epochMillis: $at})}]->(y))
        WITH x, y
        MATCH (x)-[r:LINKED]-(y)
        SET r.forced = true, r.forced_reason = $reason, r.forced_by = $actor,
            r.forced_at = datetime({epochMillis: $at})
        REMOVE """
    + _CUT_PROPS
    + """
        RETURN count(r) AS n
    """,
    "block_identifier": """
        MATCH (i:Identifier {key: $a})
        SET i.blocked = true, i.blocked_reason = $reason, i.blocked_by = $actor,
            i.blocked_at = datetime({epochMillis: $at})
        RETURN count(i) AS n
    """,
    "unblock_identifier": """
        MATCH (i:Identifier {key: $a})
        WHERE i.blocked = true
        REMOVE i.blocked, i.blocked_reason, i.blocked_by, i.blocked_at
        RETURN count(i) AS n
    """,
}
ACTIONS = tuple(_CHANGES)
# A block changes every link of the identifier, so its neighbours are touched too, as both ends
# of a cut link are: their shared verdicts (and those of identifiers two links away) may change.
_TOUCHES_NEIGHBOURS = frozenset({"block_identifier", "unblock_identifier"})

_EVENT: LiteralString = (
    """
    CREATE (e:IdentityEvent:"""
    + LABELS
    + """ {id: $event, kind: 'steward', action: $action, reason: $reason,
                             actor: $actor, at: datetime({epochMillis: $at}), keys: $keys,
                             selected: $selected, batches: [$batch]})
    WITH e
    CALL (e) {
      UNWIND $before AS id
      MATCH (p:Identity {id: id})
      CREATE (e)-[:AFFECTED {role: 'before'}]->(p)
    }
    SET e.recorded = datetime.realtime()
"""
)
_BATCH: LiteralString = """
    MERGE (s:Source {name: 'steward'})
    ON CREATE SET s.party = 'first', s.created_at = datetime({epochMillis: $at})
    CREATE (b:Batch {id: $batch, source: 'steward', party: 'first', kind: 'steward',
                     status: 'completed', event: $event, read: 0, accepted: 0, rejected: 0,
                     started_at: datetime({epochMillis: $at}),
                     finished_at: datetime({epochMillis: $at})})-[:FROM]->(s)
    WITH b
    UNWIND $keys AS k
    MATCH (i:Identifier {key: k})
    SET i.batch = b.id, i.touched = b.id
    WITH b, i
    WHERE $neighbours
    MATCH (i)-[:LINKED]-(o:Identifier)
    SET o.batch = b.id, o.touched = b.id
"""


@dataclass(frozen=True)
class Held:
    """An identifier as a steward action needs it: its identity and its block, if any."""

    key: str
    identity: str | None
    blocked: bool
    blocked_by: str | None
    blocked_reason: str | None


@dataclass(frozen=True)
class LinkFlags:
    cut: bool
    forced: bool


def read_identifiers(graph: Graph, keys: Sequence[str]) -> dict[str, Held]:
    """The identifiers among ``keys`` that exist."""
    rows = graph.read_collected(
        "read identifiers for a steward action",
        """
        UNWIND $keys AS k
        MATCH (i:Identifier {key: k})
        OPTIONAL MATCH (i)-[:MEMBER_OF]->(p:Identity)
        RETURN collect([i.key, p.id, coalesce(i.blocked, false), i.blocked_by,
                        i.blocked_reason])
        """,
        {"keys": list(keys)},
    )
    return {row[0]: Held(*row) for row in rows}


def read_link(graph: Graph, a: str, b: str) -> LinkFlags | None:
    """Whether ``a`` and ``b`` are linked, and if so whether the link is cut or forced."""
    rows = graph.read(
        "read a link for a steward action",
        """
        MATCH (:Identifier {key: $a})-[r:LINKED]-(:Identifier {key: $b})
        RETURN coalesce(r.cut, false) AS cut, coalesce(r.forced, false) AS forced LIMIT 1
        """,
        {"a": a, "b": b},
    )
    return LinkFlags(rows[0]["cut"], rows[0]["forced"]) if rows else None


@dataclass(frozen=True)
class Audit:
    """Who acts, why and when, the audit event's id, the steward batch's id and the
    identities holding the identifiers before: what every steward action records."""

    reason: str
    actor: str
    at_ms: int
    event: str
    batch: str
    before: Sequence[str]

    def params(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "actor": self.actor,
            "at": self.at_ms,
            "event": self.event,
            "batch": self.batch,
            "before": list(self.before),
        }


def record_action(graph: Graph, *, action: str, keys: Sequence[str], audit: Audit) -> bool:
    """Apply ``action`` to ``keys`` with its audit event and steward batch, in one
    transaction; False (and nothing written) when its precondition no longer holds."""
    ends = sorted(keys)
    params: dict[str, Any] = {
        **audit.params(),
        "a": ends[0],
        "b": ends[-1],
        "action": action,
        "keys": list(keys),
        "selected": None,
        "neighbours": action in _TOUCHES_NEIGHBOURS,
    }
    return record_change(graph, _CHANGES[action], params, changes=1)


def record_change(
    graph: Graph, change: LiteralString, params: dict[str, Any], *, changes: int
) -> bool:
    """Run ``change``, then the audit event and the steward batch, in one transaction;
    False (nothing written) when ``change`` changed fewer than ``changes`` things."""

    def work(tx: ManagedTransaction) -> None:
        record = tx.run(change, params).single()
        if record is None or record["n"] < changes:
            raise _Unchanged  # rolls the transaction back
        tx.run(_EVENT, params).consume()
        tx.run(_BATCH, params).consume()

    try:
        graph.write(f"steward {params['action']}", work, query=change, parameters=params)
    except _Unchanged:
        return False
    return True


class _Unchanged(Exception):
    pass


def record_after(graph: Graph, event: str, run: str, after: Sequence[str]) -> None:
    """Link the audit event to the identities holding its identifiers once applied, and to
    the resolve run that applied it."""
    graph.run(
        "record the identities after a steward action",
        """
        MATCH (e:IdentityEvent {id: $event})
        SET e.run = $run
        WITH e
        UNWIND $after AS id
        MATCH (p:Identity {id: id})
        CREATE (e)-[:AFFECTED {role: 'after'}]->(p)
        """,
        {"event": event, "run": run, "after": list(after)},
    )


_CUT_ALL: LiteralString = """
    UNWIND $cuts AS pair
    MATCH (:Identifier {key: pair[0]})-[r:LINKED]-(:Identifier {key: pair[1]})
    SET r.cut = true, r.cut_reason = $reason, r.cut_by = $actor,
        r.cut_at = datetime({epochMillis: $at})
    RETURN count(r) AS n
"""


def record_cuts(
    graph: Graph, *, cuts: Sequence[tuple[str, str]], selected: Sequence[str], audit: Audit
) -> bool:
    """A split-off: cut every link of ``cuts`` (pairs of keys) with one audit event
    (``action: 'split_off'``, ``keys``: the ends of the cut links, ``selected``: the
    identifiers split off) and one steward batch touching the ends, in one transaction; False
    (nothing written) when a link is gone."""
    params: dict[str, Any] = {
        **audit.params(),
        "cuts": [list(pair) for pair in cuts],
        "action": "split_off",
        "keys": sorted({key for pair in cuts for key in pair}),
        "selected": list(selected),
        "neighbours": False,
    }
    return record_change(graph, _CUT_ALL, params, changes=len(cuts))
