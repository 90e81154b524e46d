"""The ``idgraph`` command: the command groups wired into one typer app, and its entry point.

Each group lives in its own module (one per capability: :mod:`identity.cli.load`,
:mod:`identity.cli.resolve`, ...); commands are thin: they build the services of the command
(:func:`identity.cli.common.services`), call one service and print what it returns.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.text import Text

from identity import __version__
from identity.cli import (
    audiences,
    backfill,
    demo,
    load,
    matching,
    neo4j,
    privacy,
    resolve,
    segments,
    serve,
    spark,
    steward,
    webhooks,
)
from identity.cli.common import err, out, route_driver_logs
from identity.errors import IdgraphError

app = typer.Typer(help="Graph-based customer identity resolution on Neo4j.", no_args_is_help=True)
app.add_typer(neo4j.neo4j_app, name="neo4j")
app.add_typer(neo4j.db_app, name="db")
app.add_typer(load.load_app, name="load")
app.add_typer(backfill.commands)
app.add_typer(resolve.commands)
app.add_typer(steward.commands, name="steward")
app.add_typer(segments.commands, name="segment")
app.add_typer(privacy.commands)
app.add_typer(audiences.commands, name="audience")
app.add_typer(demo.commands)
app.add_typer(serve.commands)
app.add_typer(spark.import_app, name="import")
app.add_typer(spark.spark_app, name="spark")
app.add_typer(webhooks.commands, name="webhook")
app.add_typer(matching.commands, name="match")


@app.command()
def version() -> None:
    """Print idgraph's version."""
    out.print(f"idgraph {__version__}")


def main() -> None:
    """Console entry point: expected errors become one line on stderr and exit code 1."""
    route_driver_logs(os.environ.get("IDGRAPH_LOG_LEVEL", "INFO").upper() == "DEBUG")
    try:
        app()
    except IdgraphError as e:
        err.print(Text("error: ", style="bold red") + Text(str(e)), soft_wrap=True)
        sys.exit(1)
