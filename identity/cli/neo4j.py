"""``idgraph neo4j fetch | start | stop | status`` and ``idgraph db init | status``: the
private Neo4j server and the database schema."""

from __future__ import annotations

import time

import typer

from identity.cli.common import cli_settings, err, graph_session, out
from identity.store.driver import resolve_uri
from identity.store.local_server import LocalServer, ServerConfig, ServerStatus
from identity.store.schema import LATEST, init_schema, schema_version

neo4j_app = typer.Typer(help="Run a private Neo4j 5.26 community server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def print_status(status: ServerStatus) -> None:
    state = "[green]running[/]" if status.running else "[yellow]stopped[/]"
    out.print(f"Neo4j {status.version} community: {state}")
    if status.pid:
        out.print(f"  pid:  {status.pid}")
    out.print(f"  uri:  {status.uri}")
    if status.http_uri:
        out.print(f"  http: {status.http_uri}")
    if status.heap:
        out.print(f"  memory: heap {status.heap}, page cache {status.pagecache}")
    out.print(f"  data: {status.data_dir}")
    out.print(f"  log:  {status.log_file}")


@neo4j_app.command("fetch")
def neo4j_fetch() -> None:
    """Download the Neo4j server jars from Maven Central into the cache (first time only)."""
    server = LocalServer(ServerConfig.from_settings(cli_settings()))
    if server.is_fetched():
        out.print(f"Neo4j {server.config.version} jars already cached in {server.lib_dir}")
        return
    started = time.monotonic()
    with err.status(f"Fetching Neo4j {server.config.version} from Maven Central (once)..."):
        server.fetch()
    out.print(f"Neo4j jars cached in {server.lib_dir} ({time.monotonic() - started:.1f}s)")


@neo4j_app.command("start")
def neo4j_start() -> None:
    """Start the local server in the background and wait until Bolt answers."""
    server = LocalServer(ServerConfig.from_settings(cli_settings()))
    if server.status().running:
        out.print("Already running.")
        print_status(server.status())
        return
    started = time.monotonic()
    if not server.is_fetched():
        with err.status(f"Fetching Neo4j {server.config.version} from Maven Central (once)..."):
            server.fetch()
    with err.status(f"Starting Neo4j on {server.uri}..."):
        status = server.start()
    out.print(f"Started in {time.monotonic() - started:.1f}s.")
    print_status(status)


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Shut the local server down cleanly."""
    server = LocalServer(ServerConfig.from_settings(cli_settings()))
    with err.status("Stopping Neo4j..."):
        stopped = server.stop()
    out.print("Stopped." if stopped else "Not running.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local server runs, its version, URI and data directory."""
    status = LocalServer(ServerConfig.from_settings(cli_settings())).status()
    print_status(status)
    if not status.running:
        raise typer.Exit(3)


@db_app.command("init")
def db_init() -> None:
    """Create the constraints and indexes (idempotent, versioned migrations)."""
    settings = cli_settings()
    with graph_session(settings) as graph:
        applied = init_schema(graph)
    for migration in applied:
        out.print(f"applied migration {migration.version}: {migration.description}")
    out.print(f"schema at version {LATEST} on {resolve_uri(settings)}")


@db_app.command("status")
def db_status() -> None:
    """Print the schema version of the database."""
    settings = cli_settings()
    with graph_session(settings) as graph:
        current = schema_version(graph)
    note = "up to date" if current == LATEST else f"run `idgraph db init` (latest: {LATEST})"
    out.print(f"schema version {current}: {note}")
