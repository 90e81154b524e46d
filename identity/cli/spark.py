"""``idgraph export links | spark job | import memberships``: resolving on a Spark cluster that
idgraph does not drive, through Parquet files (docs/spark.md)."""

from __future__ import annotations

import time

import typer

from identity.cli.common import cli_settings, out, services
from identity.cli.resolve import export_app, parse_as_of, print_resolve
from identity.errors import InputError

import_app = typer.Typer(help="Import what was computed elsewhere.", no_args_is_help=True)
spark_app = typer.Typer(help="Run the Spark job on files.", no_args_is_help=True)


@export_app.command("links")
def export_links_command(
    out_dir: str = typer.Option(
        ..., "--out", "-o", help="Directory to write (local, hdfs://, s3://): the job's input."
    ),
    format_: str = typer.Option("parquet", "--format", help="parquet (the only format)."),
    as_of: str | None = typer.Option(
        None, help="Expire links as of this time (ISO 8601); default now."
    ),
) -> None:
    """Write every identifier and link as the Spark job's input, block by block."""
    if format_ != "parquet":
        raise InputError(f"--format {format_!r}: links export as parquet only")
    from identity.engines.spark.transfer import export_links

    when = parse_as_of(as_of)
    as_of_ms = int((when.timestamp() if when else time.time()) * 1000)
    with services() as ctx:
        done = export_links(ctx.graph, ctx.policy, ctx.normalizer, out_dir, as_of_ms)
    out.print(
        f"{done.identifiers:,} identifiers and {done.links:,} links written to {done.directory} "
        f"({len(done.types)} types); run the job on it, then `idgraph import memberships`"
    )


@spark_app.command("job")
def spark_job_command(
    inputs: str = typer.Argument(..., help="A directory written by `idgraph export links`."),
    outputs: str = typer.Argument(..., help="The directory to write the results to."),
    spark_master: str | None = typer.Option(
        None, "--spark-master", help="Spark master (default IDGRAPH_SPARK_MASTER, local[*])."
    ),
) -> None:
    """Resolve the exported graph on Spark, from this process (the driver)."""
    from identity.engines.spark import job
    from identity.engines.spark.engine import session

    settings = cli_settings()
    master = spark_master or settings.spark_master
    summary = job.run(session(master, settings.spark_driver_memory), inputs, outputs)
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in summary["seconds"].items())
    out.print(f"results written to {outputs}: {summary['counts']}; {stages}")


@import_app.command("memberships")
def import_memberships_command(
    results: str = typer.Argument(..., help="The output directory of the Spark job."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would change."),
) -> None:
    """Write the identities a Spark job formed, as a full resolve writes them (lineage,
    events, profiles). Refused if the graph or the policy changed since the export."""
    from datetime import datetime

    from identity.engines.spark.transfer import ImportedResults
    from identity.resolve.service import resolve_identities

    engine = ImportedResults(results)
    with services(schema=True) as ctx:
        report = resolve_identities(
            ctx,
            full=True,
            dry_run=dry_run,
            as_of=datetime.fromtimestamp(engine.as_of_ms / 1000).astimezone(),
            engine=engine,
        )
    print_resolve(report)
