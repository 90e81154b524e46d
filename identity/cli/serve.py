"""``idgraph serve``: the HTTP API (GraphQL, Segment ingestion, health and metrics)."""

from __future__ import annotations

import logging

import typer

from identity.cli.common import cli_settings

commands = typer.Typer()


@commands.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, max=16, help="Server processes."),
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql) and Segment ingestion (/v1/*)."""
    import uvicorn

    from identity.api.auth import ApiKeys, WriteKeys
    from identity.api.observability import configure_logging

    settings = cli_settings()
    api_keys, write_keys = ApiKeys.parse(settings.api_keys), WriteKeys.parse(settings.write_keys)
    configure_logging(settings.log_json, settings.log_level)
    log = logging.getLogger("idgraph.serve")
    if not api_keys:
        log.warning(
            "no API keys (IDGRAPH_API_KEYS): every GraphQL field will answer UNAUTHENTICATED"
        )
    if not write_keys:
        log.warning("no write keys (IDGRAPH_WRITE_KEYS): /v1/* refuses every request")
    log.info(
        "GraphQL on http://%s:%s/graphql (%d API keys, %d write keys)",
        host,
        port,
        len(api_keys),
        len(write_keys),
    )
    uvicorn.run(
        "identity.api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
    )
