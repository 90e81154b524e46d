# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""The split-off in GraphQL: a preview (query) and its application (mutation). Role: steward.

The steward names the identifiers of an identity that belong to someone else; the server
finds the fewest links whose cut separates them (:mod:`identity.steward.split`), shows the
identities that would result, and cuts them with one reason when asked.
"""

from __future__ import annotations

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.types import IdentifierInput, Profile
from identity.steward import split
from identity.steward.audit import MAX_REASON


def typed(given: IdentifierInput) -> str:
    """``TYPE:VALUE`` as typed, for the services, which normalize it themselves (normalizing
    here too would normalize twice: wrong for hashed values)."""
    return f"{given.type}:{given.value}"


def reason_text(reason: str) -> str:
    """A steward's reason, checked before anything is done."""
    text = reason.strip()
    if not text:
        raise ApiError("BAD_USER_INPUT", "a reason is required: say why, for the audit trail")
    if len(text) > MAX_REASON:
        raise ApiError("BAD_USER_INPUT", f"reason over {MAX_REASON} characters")
    return text


@strawberry.type(description="A link a split-off cuts, between two identifier keys.")
class SplitLink:
    a: str
    b: str


@strawberry.type(
    description="What a split-off does: the links it cuts and the groups the identity's "
    "identifiers fall into once they are cut (the chosen ones first)."
)
class SplitPlan:
    identity_id: strawberry.ID
    selected: list[str]
    cuts: list[SplitLink]
    groups: list[list[str]]

    @staticmethod
    def of(plan: split.SplitPlan) -> SplitPlan:
        return SplitPlan(
            identity_id=strawberry.ID(plan.identity),
            selected=plan.selected,
            cuts=[SplitLink(a=a, b=b) for a, b in plan.cuts],
            groups=plan.groups,
        )


@strawberry.type(description="What a split-off did.")
class SplitOffResult:
    plan: SplitPlan
    reason: str
    actor: str
    event_id: strawberry.ID
    identity_ids: list[strawberry.ID]

    @strawberry.field(description="The identities holding the identity's identifiers now.")
    async def identities(self, info: Info[Context, None]) -> list[Profile]:
        rows = await info.context.loaders.identity_by_id.load_many(
            [str(i) for i in self.identity_ids]
        )
        return [Profile.from_row(r) for r in rows if r is not None]


@strawberry.type
class StewardQuery:
    @strawberry.field(
        description="Preview a split-off: the fewest links whose cut separates these "
        "identifiers (of one identity) from its others, and the identities that would "
        "result. Nothing is written. Role: steward."
    )
    async def split_off_preview(
        self, info: Info[Context, None], identifiers: list[IdentifierInput]
    ) -> SplitPlan:
        services = info.context.acting("steward")
        given = [typed(k) for k in identifiers]
        plan = await run_in_threadpool(split.plan_split_off, services, given)
        return SplitPlan.of(plan)


@strawberry.type
class StewardMutation:
    @strawberry.mutation(
        description="Split these identifiers (of one identity) off: cut the fewest links that "
        "separate them from its others, with one reason and one audit event, and apply it "
        "at once. Role: steward."
    )
    async def split_off(
        self, info: Info[Context, None], identifiers: list[IdentifierInput], reason: str
    ) -> SplitOffResult:
        services = info.context.acting("steward")
        given, why = [typed(k) for k in identifiers], reason_text(reason)
        done = await run_in_threadpool(lambda: split.split_off(services, given, reason=why))
        return SplitOffResult(
            plan=SplitPlan.of(done.plan),
            reason=done.reason,
            actor=done.actor,
            event_id=strawberry.ID(done.event_id),
            identity_ids=[strawberry.ID(i) for i in done.identities],
        )
