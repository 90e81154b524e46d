"""The console's files (``identity/api/static/console/``) at ``/console/``, with the headers
that keep it safe: a Content-Security-Policy allowing this origin only (no inline script or
style, no other host, no framing), no caching (the page holds a key while it is open), no
MIME sniffing and no referrer. The console signs in with an API key like any client: it has
no way in of its own."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from identity.api.graphql import STATIC_DIR

CONSOLE_DIR = STATIC_DIR / "console"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ConsoleFiles(StaticFiles):
    def __init__(self) -> None:
        super().__init__(directory=CONSOLE_DIR, html=True)

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as e:  # a missing file: the same headers on the answer
            response = PlainTextResponse(e.detail, e.status_code)
        response.headers.update(HEADERS)
        return response
