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
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from identity.api.auth import ApiKeys, Principal, bearer_token
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
        principal = request.scope["state"].get("caller")
        if isinstance(request, WebSocket):  # the gate sees HTTP only
            principal = _principal(state.api_keys, request.headers.get("authorization"))
        return Context(
            request=request,  # type: ignore[arg-type]
            principal=principal,
            services=state.services,
            reads=state.reads,
            loaders=Loaders.fresh(state.reads),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A key in ``connection_init``'s payload (``{"Authorization": "Bearer KEY"}``) names
        the caller when the upgrade request had none; a wrong key closes the connection."""
        upgrade = context.request.headers.get("authorization")
        if upgrade is not None and context.principal is None:
            raise ConnectionRejectionError({"message": "invalid API key"})
        params = context.connection_params or {}
        given = params.get("Authorization", params.get("authorization"))
        if given is None:
            return UNSET  # type: ignore[no-any-return]
        principal = _principal(context.request.state.api_keys, str(given))
        if principal is None:
            raise ConnectionRejectionError({"message": "invalid API key"})
        context.principal = principal
        return UNSET  # type: ignore[no-any-return]


def _principal(keys: ApiKeys, header: str | None) -> Principal | None:
    token = bearer_token(header)
    return keys.find(token) if token else None
