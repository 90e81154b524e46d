# strawberry's field and mutation decorators are typed as returning Any when given options
# mypy: disable-error-code="untyped-decorator"
"""Record matching in GraphQL: match scores (explain's waterfall) and the review band, where a
steward accepts (a forced matched link) or rejects (a cut one) a pair. Role: steward."""

from __future__ import annotations

from datetime import datetime

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from identity.api.context import Context
from identity.api.errors import ApiError
from identity.api.reports import StewardResult
from identity.api.steward import reason_text
from identity.matching import review
from identity.model import MatchScore as Score
from identity.model import MatchStep as Step
from identity.store.matching import ReviewRow
from identity.store.reads import instant


@strawberry.type(description="One comparison of a scored pair: the level reached, its weight.")
class MatchStep:
    comparison: str = strawberry.field(description="The column compared and its kind.")
    level: str = strawberry.field(description="The level it reached (exact, Jaro-Winkler...).")
    weight: float = strawberry.field(
        description="Its match weight: log2 of the level's m/u, term frequency included."
    )


@strawberry.type(
    description="Why record matching scored a pair: the prior's weight, then each comparison's "
    "(the waterfall); their sum is the match weight, 2^w / (1 + 2^w) the probability."
)
class MatchScore:
    probability: float
    match_weight: float
    prior_weight: float = strawberry.field(description="log2 odds of two random records matching.")
    steps: list[MatchStep]
    source: str
    model: int = strawberry.field(description="The version of the source's model that scored it.")

    @staticmethod
    def of(score: Score | None) -> MatchScore | None:
        if score is None:
            return None
        return MatchScore(
            probability=score.probability,
            match_weight=round(score.match_weight, 4),
            prior_weight=score.prior_weight,
            steps=[
                MatchStep(comparison=s.comparison, level=s.level, weight=s.weight)
                for s in score.steps
            ],
            source=score.source,
            model=score.model,
        )


@strawberry.type(description="A pair record matching scored in the review band.")
class MatchReview:
    id: strawberry.ID
    a: str
    b: str
    score: MatchScore
    status: str = strawberry.field(description="open, accepted or rejected.")
    created_at: datetime

    @staticmethod
    def of(row: ReviewRow) -> MatchReview:
        s = row.score
        score = Score(
            s.probability,
            s.prior,
            tuple(
                Step(c, level, w)
                for c, level, w in zip(s.comparisons, s.levels, s.weights, strict=False)
            ),
            row.source,
            row.model,
        )
        shown = MatchScore.of(score)
        assert shown is not None
        return MatchReview(
            id=strawberry.ID(row.id),
            a=row.a,
            b=row.b,
            score=shown,
            status=row.status,
            created_at=instant(row.created_at),
        )


@strawberry.type
class MatchQuery:
    @strawberry.field(
        description="Open match reviews, most probable first (page with `after`, a review id). "
        "Role: steward."
    )
    async def match_reviews(
        self,
        info: Info[Context, None],
        source: str | None = None,
        first: int = 50,
        after: strawberry.ID | None = None,
    ) -> list[MatchReview]:
        services = info.context.acting("steward")
        limit = info.context.page_size(first)
        rows = await run_in_threadpool(
            lambda: review.open_reviews(
                services, source=source, first=limit, after=str(after) if after else None
            )
        )
        return [MatchReview.of(r) for r in rows]


@strawberry.type
class MatchMutation:
    @strawberry.mutation(
        description="Accept a match review: the pair's matched link is forced, the two "
        "records one customer (their ids count once under the limits). Role: steward."
    )
    async def accept_match(
        self, info: Info[Context, None], id: strawberry.ID, reason: str
    ) -> StewardResult:
        return await _decide(info, str(id), True, reason)

    @strawberry.mutation(
        description="Reject a match review: the pair's matched link is cut, and stays cut "
        "whatever a later run scores. Role: steward."
    )
    async def reject_match(
        self, info: Info[Context, None], id: strawberry.ID, reason: str
    ) -> StewardResult:
        return await _decide(info, str(id), False, reason)


async def _decide(info: Info[Context, None], id_: str, accept: bool, reason: str) -> StewardResult:
    services = info.context.acting("steward")
    why = reason_text(reason)
    if len(id_) > 64:
        raise ApiError("BAD_USER_INPUT", "a match review id is at most 64 characters")
    done = await run_in_threadpool(lambda: review.decide(services, id_, accept=accept, reason=why))
    return StewardResult.of(done)
