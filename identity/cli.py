"""The ``idgraph`` command: a thin layer of typer commands over the services."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text

from identity import __version__
from identity.config import Settings, load_settings
from identity.errors import IdgraphError
from identity.store.driver import Graph, open_driver, resolve_uri
from identity.store.local_server import LocalServer, ServerConfig, ServerStatus
from identity.store.schema import LATEST, init_schema, schema_version

app = typer.Typer(help="Graph-based customer identity resolution on Neo4j.", no_args_is_help=True)
neo4j_app = typer.Typer(help="Run a private Neo4j 5.26 community server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    return load_settings()


@contextmanager
def _graph(settings: Settings) -> Iterator[Graph]:
    driver = open_driver(settings)
    try:
        yield Graph(driver, settings.neo4j_database)
    finally:
        driver.close()


def _print_status(status: ServerStatus) -> None:
    state = "[green]running[/]" if status.running else "[yellow]stopped[/]"
    out.print(f"Neo4j {status.version} community: {state}")
    if status.pid:
        out.print(f"  pid:  {status.pid}")
    out.print(f"  uri:  {status.uri}")
    if status.http_uri:
        out.print(f"  http: {status.http_uri}")
    out.print(f"  data: {status.data_dir}")
    out.print(f"  log:  {status.log_file}")


@app.command()
def version() -> None:
    """Print idgraph's version."""
    out.print(f"idgraph {__version__}")


@neo4j_app.command("fetch")
def neo4j_fetch() -> None:
    """Download the Neo4j server jars from Maven Central into the cache (first time only)."""
    server = LocalServer(ServerConfig.from_settings(_settings()))
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
    server = LocalServer(ServerConfig.from_settings(_settings()))
    if server.status().running:
        out.print("Already running.")
        _print_status(server.status())
        return
    started = time.monotonic()
    if not server.is_fetched():
        with err.status(f"Fetching Neo4j {server.config.version} from Maven Central (once)..."):
            server.fetch()
    with err.status(f"Starting Neo4j on {server.uri}..."):
        status = server.start()
    out.print(f"Started in {time.monotonic() - started:.1f}s.")
    _print_status(status)


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Shut the local server down cleanly."""
    server = LocalServer(ServerConfig.from_settings(_settings()))
    with err.status("Stopping Neo4j..."):
        stopped = server.stop()
    out.print("Stopped." if stopped else "Not running.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local server runs, its version, URI and data directory."""
    status = LocalServer(ServerConfig.from_settings(_settings())).status()
    _print_status(status)
    if not status.running:
        raise typer.Exit(3)


@db_app.command("init")
def db_init() -> None:
    """Create the constraints and indexes (idempotent, versioned migrations)."""
    settings = _settings()
    with _graph(settings) as graph:
        applied = init_schema(graph)
    for migration in applied:
        out.print(f"applied migration {migration.version}: {migration.description}")
    out.print(f"schema at version {LATEST} on {resolve_uri(settings)}")


@db_app.command("status")
def db_status() -> None:
    """Print the schema version of the database."""
    settings = _settings()
    with _graph(settings) as graph:
        current = schema_version(graph)
    note = "up to date" if current == LATEST else f"run `idgraph db init` (latest: {LATEST})"
    out.print(f"schema version {current}: {note}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from identity.api.app import create_app

    settings = _settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def main() -> None:
    """Console entry point: expected errors become one line on stderr and exit code 1."""
    try:
        app()
    except IdgraphError as e:
        err.print(Text("error: ", style="bold red") + Text(str(e)), soft_wrap=True)
        sys.exit(1)
