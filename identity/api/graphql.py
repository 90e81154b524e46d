"""The GraphQL endpoint: strawberry's ASGI app, with idgraph's per-request context.

GraphiQL answers a browser's GET on ``/graphql``; queries come by POST (GET queries are off:
they would put identifiers in URLs and server logs).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from identity.api.context import Context, Loaders
from identity.api.schema import build_schema
from identity.config import Settings


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(settings), graphql_ide="graphiql", allow_queries_via_get=False
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        state = request.state
        return Context(
            request=request,  # type: ignore[arg-type]
            principal=request.scope["state"].get("caller"),
            services=state.services,
            reads=state.reads,
            loaders=Loaders.fresh(state.reads),
        )
