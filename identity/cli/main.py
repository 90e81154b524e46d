"""The ``idgraph`` command: a thin layer of typer commands over the services."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from identity import __version__
from identity.cli.audiences import commands as audience_commands
from identity.cli.common import cli_settings, err, graph_session, out, progress_bar
from identity.cli.privacy import commands as privacy_commands
from identity.cli.resolve import commands as resolve_commands
from identity.cli.resolve import print_resolve
from identity.cli.segments import commands as segment_commands
from identity.cli.steward import commands as steward_commands
from identity.errors import IdgraphError, InputError, NotFoundError
from identity.ingest.service import LoadReport, load_segment_file, load_table_file
from identity.ingest.service import Progress as Progress_
from identity.model import PARTIES
from identity.policy import load_policy
from identity.resolve.service import resolve_identities
from identity.segments import service as segment_service
from identity.store.driver import resolve_uri
from identity.store.local_server import LocalServer, ServerConfig, ServerStatus
from identity.store.schema import LATEST, init_schema, schema_version
from loaders.synth import SynthConfig, generate
from loaders.table import check_header, load_mapping

app = typer.Typer(help="Graph-based customer identity resolution on Neo4j.", no_args_is_help=True)
neo4j_app = typer.Typer(help="Run a private Neo4j 5.26 community server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")
load_app = typer.Typer(help="Load Segment events and CSV tables.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(load_app, name="load")
app.add_typer(resolve_commands)
app.add_typer(steward_commands, name="steward")
app.add_typer(segment_commands, name="segment")
app.add_typer(privacy_commands)
app.add_typer(audience_commands, name="audience")


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
    server = LocalServer(ServerConfig.from_settings(cli_settings()))
    with err.status("Stopping Neo4j..."):
        stopped = server.stop()
    out.print("Stopped." if stopped else "Not running.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local server runs, its version, URI and data directory."""
    status = LocalServer(ServerConfig.from_settings(cli_settings())).status()
    _print_status(status)
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


@contextmanager
def _progress(path: Path) -> Iterator[Progress_]:
    with progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task(path.name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_report(report: LoadReport) -> None:
    c = report.counts
    if report.status == "already_loaded":
        out.print(f"{report.file}: already loaded as batch {report.batch_id}; nothing changed.")
    else:
        resumed = (
            f", resumed: {report.resumed_chunks} chunks were already written"
            if report.resumed_chunks
            else ""
        )
        rate = c.read / report.seconds if report.seconds else 0.0
        out.print(
            f"{report.file}: batch {report.batch_id} ({report.seconds:.1f}s, "
            f"{rate:,.0f} records/s{resumed})"
        )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("records")
    table.add_column("count", justify="right")
    table.add_row("read", f"{c.read:,}")
    table.add_row("accepted", f"{c.accepted:,}")
    table.add_row("rejected", f"{c.rejected:,}")
    for code, n in sorted(c.reasons.items()):
        table.add_row(f"  {code}", f"{n:,}")
    if c.value_reasons:
        table.add_row("rejected values (record kept)", f"{sum(c.value_reasons.values()):,}")
        for code, n in sorted(c.value_reasons.items()):
            table.add_row(f"  {code}", f"{n:,}")
    out.print(table)
    if report.rejects_file:
        out.print(f"rejects: {report.rejects_file}")


@load_app.command("segment")
def load_segment(
    files: list[Path] = typer.Argument(..., help="NDJSON, JSON array or batch payload files."),
    source: str = typer.Option("segment", help="Source name the events count under."),
    party: str = typer.Option("first", help="first | second | third"),
) -> None:
    """Load Segment-spec events (plain or gzip)."""
    if party not in PARTIES:
        raise InputError(f"--party must be one of {', '.join(PARTIES)}, got {party!r}")
    settings = cli_settings()
    policy = load_policy(settings.policy)
    with graph_session(settings) as graph:
        init_schema(graph)
        for path in files:
            with _progress(path) as progress:
                report = load_segment_file(
                    graph, path, settings, policy, source=source, party=party, progress=progress
                )
            _print_report(report)


@load_app.command("csv")
def load_csv(
    file: Path = typer.Argument(..., help="CSV file (plain or gzip)."),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="Column mapping TOML file."),
) -> None:
    """Load a CSV table (CRM export, DMP feed) through a column mapping."""
    settings = cli_settings()
    policy = load_policy(settings.policy)
    spec = load_mapping(mapping, policy.types)
    check_header(file, spec)
    with graph_session(settings) as graph:
        init_schema(graph)
        with _progress(file) as progress:
            report = load_table_file(graph, file, spec, settings, policy, progress=progress)
        _print_report(report)


@app.command()
def synth(
    out_dir: Path = typer.Option(Path("synth"), "--out", "-o", help="Output directory."),
    people: int = typer.Option(1000, min=1, help="Number of people."),
    seed: int = typer.Option(42, help="Random seed (same seed, same files)."),
    events_per_person: float = typer.Option(10.0, min=0.0, help="Mean events per person."),
    gzip_events: bool = typer.Option(False, "--gzip", help="Write events.ndjson.gz."),
) -> None:
    """Write synthetic Segment events, CRM and DMP tables, mappings and ground truth."""
    config = SynthConfig(
        people=people, seed=seed, events_per_person=events_per_person, gzip=gzip_events
    )
    with progress_bar(
        TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("events", total=int(people * events_per_person))
        summary = generate(out_dir, config, progress=lambda n: bar.advance(task, n))
    out.print(
        f"{summary.people:,} people, {summary.events:,} events, "
        f"{summary.crm_rows:,} CRM rows, {summary.dmp_rows:,} DMP rows in {out_dir}"
    )
    for name, path in sorted(summary.files.items()):
        out.print(f"  {name}: {path}")


# Segments `idgraph demo` creates (once) and refreshes, for marketers to start from.
DEMO_SEGMENTS: dict[str, tuple[str, dict[str, object]]] = {
    # the synthetic data covers September and October 2026: 90 days reach back into it
    "Recent French buyers, email OK": (
        "French customers who ordered in the last 90 days and can be emailed",
        {
            "all": [
                {"trait": "country", "eq": "FR"},
                {"event": "Order Completed", "within_days": 90},
                {"consent": "marketing"},
            ]
        },
    ),
    "Anonymous travel intenders": (
        "Visitors we know no email or customer id of, that the DMP says plan to travel",
        {
            "all": [
                {"dmp_segment": "travel_intender"},
                {"not": {"has_identifier": "email"}},
                {"not": {"has_identifier": "crm_id"}},
            ]
        },
    ),
}


@app.command()
def demo(
    people: int = typer.Option(1000, min=1, help="Number of synthetic people."),
) -> None:
    """Load a synthetic demo data set (Segment events, CRM, DMP), resolve it, and create and
    refresh two demo segments; safe to run again."""
    settings = cli_settings()
    policy = load_policy(settings.policy)
    folder = settings.state_dir / "demo"
    summary = generate(folder, SynthConfig(people=people))
    out.print(f"demo data: {summary.people:,} people, {summary.events:,} events in {folder}")
    with graph_session(settings) as graph:
        init_schema(graph)
        with _progress(summary.files["events"]) as progress:
            report = load_segment_file(
                graph, summary.files["events"], settings, policy, progress=progress
            )
        _print_report(report)
        for name in ("crm", "dmp"):
            spec = load_mapping(summary.files[f"{name}_mapping"], policy.types)
            with _progress(summary.files[name]) as progress:
                report = load_table_file(
                    graph, summary.files[name], spec, settings, policy, progress=progress
                )
            _print_report(report)
        print_resolve(resolve_identities(graph, settings, policy))
        for name, (description, definition) in DEMO_SEGMENTS.items():
            try:
                segment = segment_service.get_segment(graph, name)
            except NotFoundError:
                segment = segment_service.create_segment(
                    graph,
                    policy,
                    name=name,
                    description=description,
                    definition=definition,
                    actor="idgraph demo",
                )
            done = segment_service.refresh_segment(graph, policy, segment.id)
            out.print(
                f"segment {segment.id} {name!r}: {done.size:,} members "
                f"(+{done.entered:,} -{done.left:,})"
            )


@app.command()
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


def main() -> None:
    """Console entry point: expected errors become one line on stderr and exit code 1."""
    # The driver retries transient failures (deadlocks between concurrent chunk writers)
    # by itself; its warning about each retry is noise on a terminal.
    logging.getLogger("neo4j").setLevel(logging.ERROR)
    try:
        app()
    except IdgraphError as e:
        err.print(Text("error: ", style="bold red") + Text(str(e)), soft_wrap=True)
        sys.exit(1)
