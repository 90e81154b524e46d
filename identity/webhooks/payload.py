"""The body of a delivery: one JSON object per outbox entry.

``{"id", "kind", "at", "sequence", "identities": [{"id", "role"}], "actor"}``, plus
``"action"`` for a steward action and ``"segment": {"id", "refresh", "page"}`` for segment
changes. The roles are the identity events' (``created``; ``survivor`` and ``merged``; ``split``
and ``part``; ``before`` for a steward action; ``forgotten``; ``purged``; ``entered`` and
``left`` for segments).

Identifier values are added only for a webhook created with ``include_identifiers`` (with the
event's ``reason``, which names identifiers, "new identifiers: email:..."): each
identity's identifiers as held when the delivery is sent (at most
:data:`IDENTIFIERS_PER_IDENTITY`), and a steward action's named identifiers. They are read at
sending time, never stored with the entry: once a person is erased, no delivery can carry
their identifiers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from identity.store.outbox import OutboxRow

IDENTIFIERS_PER_IDENTITY = 100


def _identifier(key: str) -> dict[str, str]:
    type_, _, value = key.partition(":")
    return {"type": type_, "value": value}


def document(row: OutboxRow, identifiers: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The entry as a JSON-ready dict; ``identifiers`` (identity id -> keys) when wanted."""
    identities: list[dict[str, Any]] = [{"id": i, "role": role} for i, role in row.identities]
    body: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "at": datetime.fromtimestamp(row.at / 1000, UTC).isoformat().replace("+00:00", "Z"),
        "sequence": row.seq,
        "identities": identities,
        "actor": row.actor,
    }
    if row.action is not None:
        body["action"] = row.action
    if row.segment is not None:
        body["segment"] = {"id": row.segment, "refresh": row.refresh, "page": row.page}
    if identifiers is not None:
        body["reason"] = row.reason  # reasons name identifiers ("new identifiers: email:...")
        for entry in identities:
            entry["identifiers"] = [_identifier(k) for k in identifiers.get(entry["id"], [])]
        if row.action is not None:
            body["identifiers"] = [_identifier(k) for k in row.keys]
    return body


def encode(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
