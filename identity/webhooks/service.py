"""Managing webhooks (admin): create, change, delete, list; their deliveries; redelivery."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from identity.context import ServiceContext
from identity.errors import InputError, NotFoundError
from identity.store import outbox
from identity.store import webhooks as store
from identity.store.reads import when
from identity.webhooks.addresses import AddressGuard, check_url

KINDS = (
    "identity.created",
    "identity.merged",
    "identity.split",
    "identity.forgotten",
    "identity.purged",
    "steward.action",
    "segment.entered",
    "segment.left",
)
STATUSES = ("pending", "delivered", "failed")
MAX_DESCRIPTION = 2000
MIN_SECRET = 16


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    kinds: list[str]
    description: str
    include_identifiers: bool
    enabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    cursor: int

    @classmethod
    def of(cls, row: dict[str, Any]) -> Webhook:
        return cls(
            id=row["id"],
            url=row["url"],
            kinds=list(row["kinds"]),
            description=row["description"] or "",
            include_identifiers=bool(row["include_identifiers"]),
            enabled=bool(row["enabled"]),
            created_at=when(row["created_at"]) or datetime.fromtimestamp(0, UTC),
            created_by=row["created_by"] or "",
            updated_at=when(row["updated_at"]) or datetime.fromtimestamp(0, UTC),
            cursor=int(row["cursor"] or 0),
        )


@dataclass(frozen=True)
class Created:
    webhook: Webhook
    secret: str  # shown once: it is never read back


@dataclass(frozen=True)
class Delivery:
    id: str
    webhook: str
    seq: int
    event: str
    kind: str
    status: str
    attempts: int
    next_at: datetime | None
    last_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> Delivery:
        return cls(
            id=row["id"],
            webhook=row["webhook"],
            seq=int(row["seq"]),
            event=row["event"],
            kind=row["kind"],
            status=row["status"],
            attempts=int(row["attempts"]),
            next_at=when(row["next_at"]) if row["status"] == "pending" else None,
            last_at=when(row["last_at"]),
            last_status=row["last_status"],
            last_error=row["last_error"],
            delivered_at=when(row["delivered_at"]),
        )


def _kinds(kinds: Sequence[str]) -> list[str]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown webhook kinds {unknown}: choose from {', '.join(KINDS)}")
    if not kinds:
        raise InputError(f"a webhook needs at least one kind: {', '.join(KINDS)}")
    return sorted(set(kinds), key=KINDS.index)


def _secret(secret: str) -> str:
    if len(secret) < MIN_SECRET:
        raise InputError(f"a webhook secret needs at least {MIN_SECRET} characters")
    if len(secret) > 256:
        raise InputError("a webhook secret has at most 256 characters")
    return secret


def _description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InputError(f"description longer than {MAX_DESCRIPTION} characters")
    return description


def _url(ctx: ServiceContext, url: str) -> str:
    checked = check_url(url)
    AddressGuard(ctx.settings.webhook_allow_hosts).check_literal(checked)
    return checked


def create_webhook(
    ctx: ServiceContext,
    url: str,
    kinds: Sequence[str],
    *,
    secret: str | None = None,
    description: str = "",
    include_identifiers: bool = False,
    now: datetime | None = None,
) -> Created:
    """A webhook receiving the entries of ``kinds`` from now on, signed with ``secret``
    (generated when not given; returned once, never read back)."""
    key = _secret(secret) if secret is not None else secrets.token_urlsafe(32)
    fields: dict[str, Any] = {
        "id": f"wh-{secrets.token_hex(8)}",
        "url": _url(ctx, url),
        "kinds": _kinds(kinds),
        "secret": key,
        "description": _description(description),
        "include_identifiers": include_identifiers,
    }
    while outbox.sequence(ctx.graph):  # what committed before is not "from now on"
        pass
    row = store.create(
        ctx.graph, fields, actor=ctx.actor or "idgraph", now=now or datetime.now(UTC)
    )
    return Created(Webhook.of(row), key)


def update_webhook(
    ctx: ServiceContext,
    id: str,
    *,
    url: str | None = None,
    kinds: Sequence[str] | None = None,
    secret: str | None = None,
    description: str | None = None,
    include_identifiers: bool | None = None,
    enabled: bool | None = None,
) -> Webhook:
    """Change what is given; a disabled webhook keeps its queue and gets nothing new queued
    until enabled again (then it catches up)."""
    fields = {
        "url": _url(ctx, url) if url is not None else None,
        "kinds": _kinds(kinds) if kinds is not None else None,
        "secret": _secret(secret) if secret is not None else None,
        "description": _description(description) if description is not None else None,
        "include_identifiers": include_identifiers,
        "enabled": enabled,
    }
    row = store.update(ctx.graph, id, fields, datetime.now(UTC))
    if row is None:
        raise NotFoundError(f"no webhook {id!r}")
    return Webhook.of(row)


def delete_webhook(ctx: ServiceContext, id: str) -> Webhook:
    """Delete a webhook and its deliveries."""
    found = get_webhook(ctx, id)
    store.delete(ctx.graph, id)
    return found


def get_webhook(ctx: ServiceContext, id: str) -> Webhook:
    row = store.find(ctx.graph, id)
    if row is None:
        raise NotFoundError(f"no webhook {id!r}")
    return Webhook.of(row)


def list_webhooks(ctx: ServiceContext) -> list[Webhook]:
    return [Webhook.of(r) for r in store.list_all(ctx.graph)]


def deliveries(
    ctx: ServiceContext,
    webhook: str,
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[Delivery]:
    """A webhook's deliveries, newest first (``before``: an outbox number, for paging)."""
    if status is not None and status not in STATUSES:
        raise InputError(f"unknown delivery status {status!r}: choose from {', '.join(STATUSES)}")
    get_webhook(ctx, webhook)
    rows = store.deliveries(ctx.graph, webhook, status, before, limit)
    return [Delivery.of(r) for r in rows]


def redeliver(ctx: ServiceContext, webhook: str, ids: Sequence[str] | None = None) -> int:
    """Queue again the named deliveries of a webhook, or every failed one; how many."""
    get_webhook(ctx, webhook)
    return store.redeliver(ctx.graph, webhook, ids, datetime.now(UTC))
