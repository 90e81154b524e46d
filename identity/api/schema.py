"""The GraphQL schema: queries for apps and stewards, steward mutations.

Resolvers check the caller's role first, then call the store's readers (through the request's
DataLoaders) or a service (explain, steward actions); they hold no business logic. Services
that are synchronous run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.extensions import (
    AddValidationRules,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.query_depth_limiter import create_validator
from strawberry.tools import merge_types
from strawberry.types import Info
from strawberry.types.nodes import SelectedField

from identity.api.audiences import AudienceMutation, AudienceQuery
from identity.api.console import ConsoleQuery
from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.extensions import CodedErrors, Gate, WakeAfterMutations
from identity.api.matching import MatchMutation, MatchQuery, MatchScore
from identity.api.privacy import PrivacyMutation, PrivacyQuery
from identity.api.reports import (
    Explanation,
    Hop,
    LoadInfo,
    Quarantine,
    ResolveInfo,
    ReviewQueue,
    SharedDevice,
    SharedIdentifier,
    SharedIdentifierConnection,
    SharedIdentifierEdge,
    SizeCount,
    Stats,
    StewardResult,
    TypeCount,
)
from identity.api.segments import SegmentMutation, SegmentQuery
from identity.api.steward import StewardMutation, StewardQuery, reason_text, typed
from identity.api.subscriptions import Subscription
from identity.api.types import (
    DEFAULT_PAGE,
    Identifier,
    IdentifierInput,
    IdentityEventConnection,
    IdentityEventKind,
    Profile,
    converted,
    encode_cursor,
    event_cursor,
    key_cursor,
    members_args,
    page_info,
)
from identity.api.webhooks import WebhookMutation, WebhookQuery
from identity.config import Settings
from identity.normalize import NormalizationError
from identity.resolve.explain import explain as explain_service
from identity.steward import actions as steward
from identity.store import activity, reads
from identity.store.reads import when


def _key(context: Context, given: IdentifierInput) -> str:
    """The stored key of an identifier as an app typed it, normalized as loaders do."""
    try:
        return context.normalizer.normalize(given.type.strip(), given.value).key
    except NormalizationError as e:
        raise ApiError("BAD_USER_INPUT", f"identifier {given.type}:{given.value!r}: {e}") from e


def _members_asked(info: Info[Context, None]) -> tuple[Any, ...] | None:
    """The members loader's arguments when the profile asks for one page of identifiers
    (so that the lookup can read it with the identity); None otherwise."""
    asked = [
        f
        for f in info.selected_fields[0].selections
        if isinstance(f, SelectedField) and f.name == "identifiers"
    ]
    if len(asked) != 1:
        return None
    arguments = asked[0].arguments
    first = arguments.get("first", DEFAULT_PAGE)  # a literal comes as its source text
    types, after = arguments.get("types"), arguments.get("after")
    if isinstance(first, str) and first.isdigit():
        first = int(first)
    if not isinstance(first, int) or not (types is None or isinstance(types, list)):
        return None
    try:
        return members_args(types, after, info.context.page_size(first))
    except ApiError:
        return None  # the field itself reports it


@strawberry.type
class Query:
    @strawberry.field(
        description="A customer by identity id (a merged id gives its survivor) or by any of "
        "its identifiers. Role: reader."
    )
    async def profile(
        self,
        info: Info[Context, None],
        id: strawberry.ID | None = None,
        identifier: IdentifierInput | None = None,
    ) -> Profile | None:
        context = info.context
        context.require("read")
        if (id is None) == (identifier is None):
            raise ApiError("BAD_USER_INPUT", "give exactly one of id and identifier")
        if id is not None:
            row = await context.loaders.identity_by_id.load(str(id))
            if row is None:
                raise ApiError("NOT_FOUND", f"no identity {str(id)[:80]!r}")
            return Profile.from_row(row, str(id))
        assert identifier is not None
        key = _key(context, identifier)
        args = _members_asked(info)
        if args is None:
            row = await context.loaders.identity_by_key.load(key)
        else:  # the identity and the page of identifiers asked for, in one query
            found = await context.loaders.profile_by_key.load((args, key))
            row = found[0] if found else None
            if found:
                context.loaders.members.prime((args, found[0].id), found[1])
        if row is None:
            raise ApiError("NOT_FOUND", f"no identity holds {key[:120]!r}")
        return Profile.from_row(row)

    @strawberry.field(
        description="Many customers at once, by ids or by identifiers (not both), in the order "
        "asked; null where none is found. Role: reader."
    )
    async def profiles(
        self,
        info: Info[Context, None],
        ids: list[strawberry.ID] | None = None,
        identifiers: list[IdentifierInput] | None = None,
    ) -> list[Profile | None]:
        context = info.context
        context.require("read")
        if (ids is None) == (identifiers is None):
            raise ApiError("BAD_USER_INPUT", "give exactly one of ids and identifiers")
        asked = [str(i) for i in ids] if ids is not None else None
        keys = [_key(context, k) for k in identifiers or []]
        context.page_size(len(asked if asked is not None else keys))
        if asked is not None:
            rows = await context.loaders.identity_by_id.load_many(asked)
            return [Profile.from_row(r, a) if r else None for r, a in zip(rows, asked, strict=True)]
        rows = await context.loaders.identity_by_key.load_many(keys)
        return [Profile.from_row(r) if r else None for r in rows]

    @strawberry.field(description="One identifier, its links and its identity. Role: reader.")
    async def identifier(self, info: Info[Context, None], type: str, value: str) -> Identifier:
        context = info.context
        context.require("read")
        key = _key(context, IdentifierInput(type=type, value=value))
        row = await context.loaders.identifier.load(key)
        if row is None:
            raise ApiError("NOT_FOUND", f"no identifier {key[:120]!r}")
        return Identifier.from_row(row)

    @strawberry.field(
        description="Why two identifiers are, or are not, the same customer. Role: steward."
    )
    async def explain(
        self, info: Info[Context, None], a: IdentifierInput, b: IdentifierInput
    ) -> Explanation:
        services = info.context.acting("steward")
        result = await run_in_threadpool(explain_service, services, typed(a), typed(b))
        return converted(
            Explanation,
            result,
            identity_a=strawberry.ID(result.identity_a) if result.identity_a else None,
            identity_b=strawberry.ID(result.identity_b) if result.identity_b else None,
            path=[converted(Hop, h, match=MatchScore.of(h.match)) for h in result.path],
        )

    @strawberry.field(
        description="The merge/split feed, oldest first: follow it with `after` to keep "
        "downstream copies in step. Events of a resolve still running are held back until it "
        "completes. Role: reader."
    )
    async def identity_events(
        self,
        info: Info[Context, None],
        since: datetime | None = None,
        kinds: list[IdentityEventKind] | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> IdentityEventConnection:
        context = info.context
        context.require("read")
        limit = context.page_size(first)
        if since is not None and since.tzinfo is None:
            raise ApiError("BAD_USER_INPUT", "since needs a time zone, e.g. 2026-11-01T00:00:00Z")
        rows = await reads.event_feed(
            context.reads,
            since,
            [k.value for k in kinds] if kinds else None,
            event_cursor(after),
            limit + 1,
        )
        return IdentityEventConnection.of(rows, limit)

    @strawberry.field(
        description="Shared identifiers, quarantined components and possible shared devices "
        "awaiting a steward. "
        "Role: steward."
    )
    async def review_queue(
        self, info: Info[Context, None], first: int = 50, after: str | None = None
    ) -> ReviewQueue:
        context = info.context
        context.require("steward")
        limit = context.page_size(first)
        rows, total = await reads.shared_page(context.reads, key_cursor(after), limit + 1)
        items = [
            SharedIdentifier(identifier=Identifier.from_row(row), links=links)
            for row, links in rows[:limit]
        ]
        edges = [
            SharedIdentifierEdge(cursor=encode_cursor(s.identifier.key), node=s) for s in items
        ]
        held = await reads.quarantines(context.reads, context.settings.api_max_page)
        devices = await activity.device_reviews(context.reads, context.settings.api_max_page)
        return ReviewQueue(
            shared=SharedIdentifierConnection(
                edges=edges,
                page_info=page_info(len(rows), limit, edges),
                total_count=total,
            ),
            quarantines=[
                converted(Quarantine, q, id=strawberry.ID(q.id), detected_at=when(q.detected_at))
                for q in held
            ],
            shared_devices=[
                SharedDevice(
                    **{**d, "id": strawberry.ID(d["id"]), "detected_at": when(d["detected_at"])}
                )
                for d in devices
            ],
        )

    @strawberry.field(
        description="Identifiers per type, identities, links, identity sizes, the last load "
        "and resolve. Role: reader."
    )
    async def stats(self, info: Info[Context, None]) -> Stats:
        context = info.context
        context.require("read")
        found = await reads.stats(context.reads, sorted(context.policy.types))
        sizes = [SizeCount(size=s, identities=n) for s, n in found.sizes]
        loads = await activity.recent_loads(context.reads, 1)
        runs = await activity.recent_resolves(context.reads, 1)
        return Stats(
            identifiers=[TypeCount(type=t, count=n) for t, n in found.types.items()],
            identifiers_total=sum(found.types.values()),
            identities=sum(s.identities for s in sizes),
            links=found.links,
            sizes=sizes,
            largest_identity=max((s.size for s in sizes), default=0),
            last_load=LoadInfo.of(loads[0]) if loads else None,
            last_resolve=ResolveInfo.of(runs[0]) if runs else None,
        )


async def _act(
    info: Info[Context, None],
    action: Callable[..., steward.StewardResult],
    keys: list[IdentifierInput],
    reason: str,
) -> StewardResult:
    services = info.context.acting("steward")
    given = [typed(k) for k in keys]
    done = await run_in_threadpool(lambda: action(services, *given, reason=reason_text(reason)))
    return StewardResult.of(done)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Cut the link between two identifiers; they split unless something else "
        "holds them together. Role: steward."
    )
    async def cut_link(
        self, info: Info[Context, None], a: IdentifierInput, b: IdentifierInput, reason: str
    ) -> StewardResult:
        return await _act(info, steward.cut_link, [a, b], reason)

    @strawberry.mutation(description="Undo a cut. Role: steward.")
    async def restore_link(
        self, info: Info[Context, None], a: IdentifierInput, b: IdentifierInput, reason: str
    ) -> StewardResult:
        return await _act(info, steward.restore_link, [a, b], reason)

    @strawberry.mutation(
        description="Assert two identifiers are the same customer: a forced link that merges "
        "whatever the party, age or sharing of its ends (not when an end is blocked). "
        "Role: steward."
    )
    async def force_merge(
        self, info: Info[Context, None], a: IdentifierInput, b: IdentifierInput, reason: str
    ) -> StewardResult:
        return await _act(info, steward.force_merge, [a, b], reason)

    @strawberry.mutation(
        description="Block an identifier: it links nothing and stands alone. Role: steward."
    )
    async def block_identifier(
        self, info: Info[Context, None], type: str, value: str, reason: str
    ) -> StewardResult:
        return await _act(
            info, steward.block_identifier, [IdentifierInput(type=type, value=value)], reason
        )

    @strawberry.mutation(description="Lift a block. Role: steward.")
    async def unblock_identifier(
        self, info: Info[Context, None], type: str, value: str, reason: str
    ) -> StewardResult:
        return await _act(
            info, steward.unblock_identifier, [IdentifierInput(type=type, value=value)], reason
        )


# The root types: each domain module (segments, audiences, privacy) defines its own root
# fields in a Query and a Mutation class of its own, listed here and merged into one.
QUERIES: tuple[type, ...] = (
    Query,
    SegmentQuery,
    AudienceQuery,
    PrivacyQuery,
    StewardQuery,
    ConsoleQuery,
    WebhookQuery,
    MatchQuery,
)
MUTATIONS: tuple[type, ...] = (
    Mutation,
    SegmentMutation,
    AudienceMutation,
    PrivacyMutation,
    StewardMutation,
    WebhookMutation,
    MatchMutation,
)
RootQuery = merge_types("Query", QUERIES)
RootMutation = merge_types("Mutation", MUTATIONS)


def build_schema(settings: Settings) -> strawberry.Schema:
    """The schema with its limits (depth, cost, keys) and error coding. Extensions are built
    fresh for each request; the parse and validation caches live at module level in
    strawberry, shared by all requests. The depth rule is made once: validation results are
    cached by document *and rules*, and a rule made per request would miss every time."""
    depth_rule = create_validator(settings.api_max_depth, None, None)
    return _Schema(
        query=RootQuery,
        mutation=RootMutation,
        subscription=Subscription,
        extensions=[
            CodedErrors,
            lambda: ParserCache(maxsize=1000),
            lambda: ValidationCache(maxsize=1000),
            lambda: AddValidationRules([depth_rule]),
            lambda: Gate(max_cost=settings.api_max_cost, max_page=settings.api_max_page),
            WakeAfterMutations,
        ],
    )


class _Schema(strawberry.Schema):
    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        """Nothing: :class:`CodedErrors` logs internal errors, with the request id, and
        expected ones are the caller's business, not the server log's."""


# The schema as strawberry prints it (`strawberry export-schema identity.api.schema:schema`);
# the server adds its limits through build_schema, which changes no type.
schema = strawberry.Schema(query=RootQuery, mutation=RootMutation, subscription=Subscription)
