"""``idgraph backfill``: files into a new database with neo4j-admin import, as loads leave them."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from identity.backfill.service import BackfillReport, backfill, local_server
from identity.cli.common import cli_settings, out, services
from identity.cli.load import _fail_when_nothing_loaded, file_progress, print_load
from identity.errors import InputError

commands = typer.Typer()


def _csv_option(text: str) -> tuple[Path, Path]:
    file, sep, mapping = text.rpartition(":")
    if not sep or not file or not mapping:
        raise InputError(f"--csv takes FILE:MAPPING (a CSV file and its mapping), got {text!r}")
    return Path(file), Path(mapping)


def print_backfill(report: BackfillReport) -> None:
    for file in report.files:
        print_load(file)
    c = report.totals
    out.print(
        f"[bold]backfill[/]: {len(report.files)} file(s), {c.read:,} records read, "
        f"{c.accepted:,} accepted, {c.rejected:,} rejected, "
        f"{sum(c.value_reasons.values()):,} values rejected"
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for phase, seconds in report.phases.items():
        table.add_row(phase, f"{seconds:.1f}")
    table.add_row("total", f"{report.seconds:.1f}")
    out.print(table)
    written = ", ".join(f"{name.replace('_', ' ')} {n:,}" for name, n in report.rows.items())
    out.print(f"written: {written}")
    out.print(f"throughput: {report.records_per_second:,.0f} records/s")


@commands.command("backfill")
def backfill_command(
    segment: list[Path] = typer.Option(
        [], "--segment", help="Segment events file (globs allowed); repeat for more."
    ),
    csv: list[str] = typer.Option(
        [], "--csv", help="FILE:MAPPING, a CSV table and its mapping (globs allowed in FILE)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Replace a database that holds data (its tombstones are kept)."
    ),
    source: str = typer.Option("segment", help="Source name the Segment events count under."),
    party: str = typer.Option("first", help="Party of the Segment events: first|second|third."),
) -> None:
    """Build a new database from files with neo4j-admin import: the graph `idgraph load`
    leaves, at bulk speed. Segment files are taken first in their order, then CSV files in
    theirs (the order their loads would have run in). The local server is stopped for the
    import and started again."""
    tables = [_csv_option(text) for text in csv]
    server = local_server(cli_settings())
    with services() as ctx:
        report = backfill(
            ctx, segment, tables, replace=replace, source=source, party=party, server=server,
            file_progress=file_progress,
        )  # fmt: skip
    print_backfill(report)
    _fail_when_nothing_loaded([r for r in report.files if r.counts.read and not r.counts.accepted])
