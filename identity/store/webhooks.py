"""Webhooks and their deliveries in the graph.

``(:Webhook {id, url, kinds, secret, description, include_identifiers, enabled, created_at,
created_by, updated_at, cursor, lease_owner, lease_until})``: ``cursor`` is the last outbox
number (:mod:`identity.store.outbox`) turned into deliveries; the lease lets one delivery
worker at a time work for a webhook (several servers may run one each).

``(:Delivery:Queued {id, webhook, seq, event, kind, keys, recorded, status, attempts, next_at,
first_at, last_at, last_status, last_error, delivered_at})``, one per webhook and outbox
entry (id ``<webhook>-<seq>``, unique: an entry is never queued twice). ``keys`` are the
identities (or the segment) it is about, which set the order of delivery; ``:Queued`` is
on pending deliveries only, so the worker's look at its queue never reads delivered ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, LiteralString

from neo4j import ManagedTransaction

from identity.store.driver import Graph
from identity.store.outbox import KIND

_WEBHOOK: LiteralString = """w.id AS id, w.url AS url, w.kinds AS kinds,
    w.description AS description, w.include_identifiers AS include_identifiers,
    w.enabled AS enabled, w.created_at.epochMillis AS created_at, w.created_by AS created_by,
    w.updated_at.epochMillis AS updated_at, w.cursor AS cursor"""
_DELIVERY: LiteralString = """d.id AS id, d.webhook AS webhook, d.seq AS seq, d.event AS event,
    d.kind AS kind, d.status AS status, d.attempts AS attempts,
    d.next_at.epochMillis AS next_at, d.first_at.epochMillis AS first_at,
    d.last_at.epochMillis AS last_at, d.last_status AS last_status,
    d.last_error AS last_error, d.delivered_at.epochMillis AS delivered_at,
    d.recorded.epochMillis AS recorded, d.keys AS keys"""


def create(graph: Graph, fields: dict[str, Any], *, actor: str, now: datetime) -> dict[str, Any]:
    """A new webhook, enabled, its cursor at the outbox's end (it receives what happens
    from now on)."""
    return graph.run(
        "create webhook",
        "OPTIONAL MATCH (c:OutboxSequence {id: 'outbox'}) "
        "CREATE (w:Webhook {id: $f.id, url: $f.url, kinds: $f.kinds, secret: $f.secret, "
        "  description: $f.description, include_identifiers: $f.include_identifiers, "
        "  enabled: true, created_at: $now, updated_at: $now, created_by: $actor, "
        "  cursor: coalesce(c.last, 0)}) "
        "RETURN " + _WEBHOOK,
        {"f": fields, "actor": actor, "now": now},
    )[0]


def update(graph: Graph, id: str, fields: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Set the given fields (None: unchanged); None when there is no such webhook."""
    rows = graph.run(
        "update webhook",
        "MATCH (w:Webhook {id: $id}) "
        "SET w.url = coalesce($f.url, w.url), w.kinds = coalesce($f.kinds, w.kinds), "
        "  w.secret = coalesce($f.secret, w.secret), "
        "  w.description = coalesce($f.description, w.description), "
        "  w.include_identifiers = coalesce($f.include_identifiers, w.include_identifiers), "
        "  w.enabled = coalesce($f.enabled, w.enabled), w.updated_at = $now "
        "RETURN " + _WEBHOOK,
        {"id": id, "f": fields, "now": now},
    )
    return rows[0] if rows else None


def delete(graph: Graph, id: str) -> bool:
    """Delete a webhook, then its deliveries (in batches: none can be queued after)."""
    rows = graph.run(
        "delete webhook", "MATCH (w:Webhook {id: $id}) DELETE w RETURN count(*) AS n", {"id": id}
    )
    graph.run_autocommit(
        "delete webhook deliveries",
        "MATCH (d:Delivery {webhook: $id}) CALL (d) { DELETE d } IN TRANSACTIONS OF 10000 ROWS",
        {"id": id},
    )
    return bool(rows and rows[0]["n"])


def find(graph: Graph, id: str) -> dict[str, Any] | None:
    rows = graph.read("read webhook", "MATCH (w:Webhook {id: $id}) RETURN " + _WEBHOOK, {"id": id})
    return rows[0] if rows else None


def list_all(graph: Graph) -> list[dict[str, Any]]:
    return graph.read(
        "list webhooks", "MATCH (w:Webhook) RETURN " + _WEBHOOK + " ORDER BY w.created_at, w.id"
    )


def claim(
    graph: Graph, id: str, owner: str, now: datetime, until: datetime
) -> dict[str, Any] | None:
    """Take (or keep) the webhook's lease for ``owner`` unless another worker holds one that
    has not run out; the webhook with its secret when taken. The lease is read first and
    written only to take it or once a third of it has run: workers that look several times a
    second do not write each time."""
    seen = graph.read(
        "look at webhook lease",
        "MATCH (w:Webhook {id: $id}) RETURN " + _WEBHOOK + ", w.secret AS secret, "
        "w.lease_owner AS lease_owner, w.lease_until.epochMillis AS lease_until",
        {"id": id},
    )
    if not seen or not seen[0]["enabled"]:
        return None
    held_until = seen[0]["lease_until"] or 0
    now_ms, until_ms = int(now.timestamp() * 1000), int(until.timestamp() * 1000)
    if seen[0]["lease_owner"] not in (None, owner) and held_until >= now_ms:
        return None  # another worker's, running
    if seen[0]["lease_owner"] == owner and held_until - now_ms > (until_ms - now_ms) * 2 / 3:
        return seen[0]  # ours, fresh
    rows = graph.run(
        "claim webhook",
        # the write lock first: the lease is then read as the last holder committed it
        "MATCH (w:Webhook {id: $id}) SET w.lease_checked = $now "
        "WITH w WHERE w.enabled "
        "  AND (w.lease_owner IS NULL OR w.lease_owner = $owner OR w.lease_until < $now) "
        "SET w.lease_owner = $owner, w.lease_until = $until "
        "RETURN " + _WEBHOOK + ", w.secret AS secret",
        {"id": id, "owner": owner, "now": now, "until": until},
    )
    return rows[0] if rows else None


def release(graph: Graph, id: str, owner: str) -> None:
    graph.run(
        "release webhook",
        "MATCH (w:Webhook {id: $id}) WHERE w.lease_owner = $owner "
        "REMOVE w.lease_owner, w.lease_until",
        {"id": id, "owner": owner},
    )


def fan_out(graph: Graph, id: str, owner: str, now: datetime, limit: int) -> int:
    """Queue a delivery for each outbox entry after the webhook's cursor that it subscribes
    to (at most ``limit`` entries looked at), and move the cursor past them, in one
    transaction; how many were queued. Only the lease holder does it."""

    def work(tx: ManagedTransaction) -> int:
        found = tx.run(
            "MATCH (w:Webhook {id: $id}) WHERE w.lease_owner = $owner "
            "MATCH (e:Outbox) WHERE e.seq > w.cursor "
            "WITH w, e ORDER BY e.seq LIMIT $limit "
            "WITH w, collect(e) AS entries, max(e.seq) AS upto "
            "SET w.cursor = upto "
            "WITH w, entries UNWIND entries AS e "
            "WITH w, e, " + KIND + " AS kind WHERE kind IN w.kinds "
            "CREATE (d:Delivery:Queued {id: w.id + '-' + toString(e.seq), webhook: w.id, "
            "  seq: e.seq, event: e.id, kind: kind, recorded: e.recorded, status: 'pending', "
            "  attempts: 0, next_at: $now, created_at: $now, "
            "  keys: CASE WHEN e:SegmentPage THEN ['segment:' + e.segment] "
            "        ELSE COLLECT { MATCH (e)-[a:AFFECTED]->(p:Identity) WHERE a.role <> 'after' "
            "                       RETURN DISTINCT p.id } END}) "
            "RETURN count(d) AS n",
            id=id,
            owner=owner,
            limit=limit,
            now=now,
        ).single()
        return int(found["n"]) if found else 0

    return graph.write(f"queue deliveries (webhook {id})", work)


def queue(graph: Graph, id: str, limit: int, after: int = -1) -> list[dict[str, Any]]:
    """``limit`` pending deliveries of a webhook numbered after ``after``, in outbox order."""
    return graph.read(
        "read delivery queue",
        "MATCH (d:Queued) WHERE d.webhook = $id AND d.seq > $after "
        "WITH d ORDER BY d.seq LIMIT $limit RETURN " + _DELIVERY,
        {"id": id, "limit": limit, "after": after},
    )


def record(graph: Graph, outcomes: Sequence[dict[str, Any]]) -> None:
    """Record attempts: ``{id, outcome: delivered|retry|failed, at, next_at, code, error}``."""
    graph.run(
        "record deliveries",
        """
        UNWIND $rows AS r
        MATCH (d:Delivery {id: r.id}) WHERE d.status = 'pending'
        SET d.attempts = d.attempts + 1, d.last_at = r.at, d.first_at = coalesce(d.first_at, r.at),
            d.last_status = r.code, d.last_error = r.error
        FOREACH (_ IN CASE WHEN r.outcome = 'delivered' THEN [1] ELSE [] END |
          SET d.status = 'delivered', d.delivered_at = r.at REMOVE d:Queued)
        FOREACH (_ IN CASE WHEN r.outcome = 'failed' THEN [1] ELSE [] END |
          SET d.status = 'failed' REMOVE d:Queued)
        FOREACH (_ IN CASE WHEN r.outcome = 'retry' THEN [1] ELSE [] END |
          SET d.next_at = r.next_at)
        """,
        {"rows": list(outcomes)},
    )


def deliveries(
    graph: Graph, webhook: str, status: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """A webhook's deliveries, newest first, of ``status``, numbered below ``before``."""
    return graph.read(
        "webhook deliveries",
        "MATCH (d:Delivery) WHERE d.webhook = $webhook AND d.seq < coalesce($before, 9e18) "
        "  AND ($status IS NULL OR d.status = $status) "
        "WITH d ORDER BY d.seq DESC LIMIT $limit RETURN " + _DELIVERY,
        {"webhook": webhook, "status": status, "before": before, "limit": limit},
    )


def redeliver(graph: Graph, webhook: str, ids: Sequence[str] | None, now: datetime) -> int:
    """Queue again the given deliveries of a webhook (none given: every failed one) as new:
    no attempt counted, due now. Delivered ones may be sent again too, when named."""
    rows = graph.run(
        "redeliver",
        "MATCH (d:Delivery) WHERE d.webhook = $webhook "
        "  AND CASE WHEN $ids IS NULL THEN d.status = 'failed' ELSE d.id IN $ids END "
        "SET d:Queued, d.status = 'pending', d.attempts = 0, d.next_at = $now, "
        "  d.first_at = null, d.delivered_at = null "
        "RETURN count(d) AS n",
        {"webhook": webhook, "ids": list(ids) if ids is not None else None, "now": now},
    )
    return int(rows[0]["n"])


def stats(graph: Graph) -> dict[str, Any]:
    """Deliveries by status, how many are waiting for a retry, the oldest pending entry's
    record time (epoch ms), and the outbox entries not numbered yet."""
    rows = graph.read(
        "webhook delivery stats",
        "CALL { MATCH (d:Delivery) WHERE d.status = 'delivered' RETURN count(d) AS delivered } "
        "CALL { MATCH (d:Delivery) WHERE d.status = 'failed' RETURN count(d) AS failed } "
        "CALL { MATCH (d:Queued) RETURN count(d) AS pending, "
        "  sum(CASE WHEN d.attempts > 0 THEN 1 ELSE 0 END) AS retrying, "
        "  min(d.recorded).epochMillis AS oldest } "
        "CALL { MATCH (e:Unsequenced) RETURN count(e) AS unsequenced, "
        "  min(e.recorded).epochMillis AS oldest_unsequenced } "
        "RETURN delivered, failed, pending, retrying, oldest, unsequenced, oldest_unsequenced",
    )
    return rows[0]


def prune(graph: Graph, before: datetime) -> int:
    """Delete deliveries delivered before ``before``; how many."""
    rows = graph.run_autocommit(
        "prune deliveries",
        "MATCH (d:Delivery) WHERE d.status = 'delivered' AND d.delivered_at < $before "
        "CALL (d) { DELETE d } IN TRANSACTIONS OF 10000 ROWS RETURN count(*) AS n",
        {"before": before},
    )
    return int(rows[0]["n"]) if rows else 0


def cursor_floor(graph: Graph) -> int:
    """The lowest cursor of any webhook (outbox entries below it are queued everywhere)."""
    rows = graph.read(
        "lowest webhook cursor",
        "OPTIONAL MATCH (c:OutboxSequence {id: 'outbox'}) "
        "OPTIONAL MATCH (w:Webhook) RETURN coalesce(min(w.cursor), c.last, 0) AS n",
    )
    return int(rows[0]["n"])
