"""GraphQL for webhooks (role admin): create, change, delete, list; deliveries; redelivery.
The service is :mod:`identity.webhooks.service`; delivery, :mod:`identity.webhooks.worker`."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.types import DEFAULT_PAGE, PageInfo, decode_cursor, encode_cursor, page_info
from identity.webhooks import service


@strawberry.enum(description="What a webhook receives (the value is the payload's kind).")
class WebhookKind(Enum):
    IDENTITY_CREATED = "identity.created"
    IDENTITY_MERGED = "identity.merged"
    IDENTITY_SPLIT = "identity.split"
    IDENTITY_FORGOTTEN = "identity.forgotten"
    IDENTITY_PURGED = "identity.purged"
    STEWARD_ACTION = "steward.action"
    SEGMENT_ENTERED = "segment.entered"
    SEGMENT_LEFT = "segment.left"


@strawberry.enum(description="Where a delivery stands.")
class DeliveryStatus(Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@strawberry.type(description="Where idgraph pushes changes, and which.")
class Webhook:
    id: strawberry.ID
    url: str
    kinds: list[str] = strawberry.field(description="Kinds it receives (identity.merged, ...).")
    description: str
    include_identifiers: bool = strawberry.field(
        description="Whether deliveries carry identifier values."
    )
    enabled: bool
    created_at: datetime
    created_by: str
    updated_at: datetime

    @classmethod
    def of(cls, w: service.Webhook) -> Webhook:
        return cls(
            id=strawberry.ID(w.id),
            url=w.url,
            kinds=list(w.kinds),
            description=w.description,
            include_identifiers=w.include_identifiers,
            enabled=w.enabled,
            created_at=w.created_at,
            created_by=w.created_by,
            updated_at=w.updated_at,
        )


@strawberry.type(description="A new webhook and its signing secret, shown this once.")
class WebhookCreated:
    webhook: Webhook
    secret: str


@strawberry.type(description="One outbox entry for one webhook, and how its sending went.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Sent as X-Idgraph-Delivery.")
    sequence: int = strawberry.field(description="The entry's place in the outbox.")
    event_id: strawberry.ID = strawberry.field(description="The body's id (stable).")
    kind: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    @classmethod
    def of(cls, d: service.Delivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(d.id),
            sequence=d.seq,
            event_id=strawberry.ID(d.event),
            kind=d.kind,
            status=DeliveryStatus(d.status),
            attempts=d.attempts,
            next_attempt_at=d.next_at,
            last_attempt_at=d.last_at,
            last_status_code=d.last_status,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo


def _kinds(kinds: list[WebhookKind] | None) -> list[str] | None:
    return None if kinds is None else [str(k.value) for k in kinds]


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="Every webhook. Role: admin.")
    async def webhooks(self, info: Info[Context, None]) -> list[Webhook]:
        services = info.context.acting("admin")
        return [Webhook.of(w) for w in await run_in_threadpool(service.list_webhooks, services)]

    @strawberry.field(description="A webhook's deliveries, newest first, of a status. Role: admin.")
    async def webhook_deliveries(
        self,
        info: Info[Context, None],
        webhook_id: strawberry.ID,
        status: DeliveryStatus | None = None,
        first: int = DEFAULT_PAGE,
        after: str | None = None,
    ) -> WebhookDeliveryConnection:
        context = info.context
        services = context.acting("admin")
        limit = context.page_size(first)
        before = decode_cursor(after)
        if before is not None and not isinstance(before, int):
            raise ApiError("BAD_USER_INPUT", f"invalid cursor {after!r}")
        found = await run_in_threadpool(
            lambda: service.deliveries(
                services,
                str(webhook_id),
                status=status.value if status else None,
                before=before,
                limit=limit + 1,
            )
        )
        edges = [
            WebhookDeliveryEdge(cursor=encode_cursor(d.seq), node=WebhookDelivery.of(d))
            for d in found[:limit]
        ]
        return WebhookDeliveryConnection(edges=edges, page_info=page_info(len(found), limit, edges))


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="Create a webhook: from now on, each change of the given kinds is POSTed "
        "to the URL, signed with the secret (generated when not given). Role: admin."
    )
    async def create_webhook(
        self,
        info: Info[Context, None],
        url: str,
        kinds: list[WebhookKind],
        secret: str | None = None,
        description: str = "",
        include_identifiers: bool = False,
    ) -> WebhookCreated:
        services = info.context.acting("admin")
        made = await run_in_threadpool(
            lambda: service.create_webhook(
                services,
                url,
                _kinds(kinds) or [],
                secret=secret,
                description=description,
                include_identifiers=include_identifiers,
            )
        )
        return WebhookCreated(webhook=Webhook.of(made.webhook), secret=made.secret)

    @strawberry.mutation(description="Change what is given of a webhook. Role: admin.")
    async def update_webhook(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        url: str | None = None,
        kinds: list[WebhookKind] | None = None,
        secret: str | None = None,
        description: str | None = None,
        include_identifiers: bool | None = None,
        enabled: bool | None = None,
    ) -> Webhook:
        services = info.context.acting("admin")
        changed = await run_in_threadpool(
            lambda: service.update_webhook(
                services,
                str(id),
                url=url,
                kinds=_kinds(kinds),
                secret=secret,
                description=description,
                include_identifiers=include_identifiers,
                enabled=enabled,
            )
        )
        return Webhook.of(changed)

    @strawberry.mutation(description="Delete a webhook and its deliveries. Role: admin.")
    async def delete_webhook(self, info: Info[Context, None], id: strawberry.ID) -> strawberry.ID:
        services = info.context.acting("admin")
        gone = await run_in_threadpool(service.delete_webhook, services, str(id))
        return strawberry.ID(gone.id)

    @strawberry.mutation(
        description="Queue deliveries again: the given ones, or every failed one; how many. "
        "Role: admin."
    )
    async def redeliver_webhook(
        self,
        info: Info[Context, None],
        webhook_id: strawberry.ID,
        delivery_ids: list[strawberry.ID] | None = None,
    ) -> int:
        services = info.context.acting("admin")
        ids = [str(i) for i in delivery_ids] if delivery_ids is not None else None
        return await run_in_threadpool(service.redeliver, services, str(webhook_id), ids)


# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
