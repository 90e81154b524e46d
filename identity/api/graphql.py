"""The GraphQL endpoint: strawberry's ASGI app, with idgraph's per-request context.

GraphiQL answers a browser's GET on ``/graphql``; queries come by POST (GET queries are off:
they would put identifiers in URLs and server logs). Its page loads its scripts and styles from
this server (``/static/vendor/``, vendored from npm by ``make vendor`` with the integrity
hashes the page states), not from a CDN: it works on a machine without internet.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from identity.api.context import Context, Loaders
from identity.api.schema import build_schema
from identity.config import Settings

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_PATH = "/static/vendor/"  # where the vendored npm packages are served


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(settings), graphql_ide="graphiql", allow_queries_via_get=False
        )

    @property
    def graphql_ide_html(self) -> str:
        """strawberry's GraphiQL page, its unpkg.com assets served from ``/static/vendor/``."""
        return super().graphql_ide_html.replace("https://unpkg.com/", VENDOR_PATH)

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
