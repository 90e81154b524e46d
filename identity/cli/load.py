"""``idgraph load segment | csv``: Segment-spec events and CSV tables into the graph."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from identity.cli.common import cli_settings, out, progress_bar, services
from identity.errors import InputError
from identity.ingest.service import LoadReport, Progress, load_segment_file, load_table_file
from identity.model import PARTIES
from identity.policy import load_policy
from loaders.table import check_header, load_mapping

load_app = typer.Typer(help="Load Segment events and CSV tables.", no_args_is_help=True)


@contextmanager
def file_progress(path: Path) -> Iterator[Progress]:
    with progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task(path.name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_load(report: LoadReport) -> None:
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
    nothing: list[LoadReport] = []
    with services(schema=True) as ctx:
        for path in files:
            with file_progress(path) as progress:
                report = load_segment_file(ctx, path, source=source, party=party, progress=progress)
            print_load(report)
            if report.counts.read and not report.counts.accepted:
                nothing.append(report)
    _fail_when_nothing_loaded(nothing)


@load_app.command("csv")
def load_csv(
    file: Path = typer.Argument(..., help="CSV file (plain or gzip)."),
    mapping: Path = typer.Option(..., "--mapping", "-m", help="Column mapping TOML file."),
) -> None:
    """Load a CSV table (CRM export, DMP feed) through a column mapping."""
    # the mapping and the header are checked before anything connects or writes
    spec = load_mapping(mapping, load_policy(cli_settings().policy).types)
    check_header(file, spec)
    with services(schema=True) as ctx:
        with file_progress(file) as progress:
            report = load_table_file(ctx, file, spec, progress=progress)
        print_load(report)
    if report.counts.read and not report.counts.accepted:
        _fail_when_nothing_loaded([report])


def _fail_when_nothing_loaded(reports: list[LoadReport]) -> None:
    """A non-empty input of which nothing was accepted is an error (exit 1): most likely the
    wrong file or the wrong mapping, not data to keep."""
    if reports:
        names = ", ".join(f"{r.file} ({r.counts.read:,} read)" for r in reports)
        raise InputError(
            f"nothing accepted from {names}: every record was rejected; see the reasons "
            "above and the rejects file"
        )
