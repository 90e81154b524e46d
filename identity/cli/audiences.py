"""``idgraph audience export | list``: audience files for ad platforms, DMPs and ad servers.

``export`` writes the file to ``--out`` (through a ``.part`` file renamed when complete) or to
standard output; the progress bar and the summary go to standard error, so the data can be
piped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from identity.audiences.export import (
    FORMATS,
    ExportReport,
    export_audience,
    export_request,
    export_to_file,
)
from identity.audiences.hashing import DESTINATIONS
from identity.cli.common import cli_settings, err, graph_session, out, progress_bar, services
from identity.policy import load_policy
from identity.store import audiences as store

commands = typer.Typer(
    help="Audience exports: a segment's identifiers, filtered by consent, hashed for ad "
    "platforms, in full or as deltas.",
    no_args_is_help=True,
)


@commands.command()
def export(
    segment_id: str = typer.Argument(..., help="The segment's id or name (refresh it first)."),
    types: str = typer.Option(
        ..., "--types", help="Identifier types, comma-separated (e.g. email,phone or maid)."
    ),
    format: str = typer.Option("csv", "--format", help=f"One of {', '.join(FORMATS)}."),
    hashed: bool = typer.Option(
        False, "--hashed", help="SHA-256 of emails and phones, normalized for --destination."
    ),
    destination: str | None = typer.Option(
        None, "--destination", help=f"Hashing rules of {' or '.join(DESTINATIONS)}."
    ),
    delta: bool = typer.Option(
        False, "--delta", help="Only what changed since the audience's last export (op column)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="Write here instead of standard output.", dir_okay=False
    ),
    page_size: int = typer.Option(5000, min=1, max=100_000, help="Member identities per read."),
) -> None:
    """Export a segment's identifiers for the consent their type needs."""
    settings = cli_settings()
    request = export_request(
        load_policy(settings.policy),
        segment_id,
        types.split(","),
        format=format,
        hashed=hashed,
        destination=destination,
        delta=delta,
    )
    bar = progress_bar(
        TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    with services() as ctx, bar:
        task = bar.add_task("export", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if out_file is None:
            report = export_audience(
                ctx, request, sys.stdout, page_size=page_size, progress=progress
            )
        else:
            report = export_to_file(ctx, request, out_file, page_size=page_size, progress=progress)
    _summary(report, out_file)


def _summary(report: ExportReport, path: Path | None) -> None:
    console = out if path is not None else err
    where = f" to {path}" if path is not None else ""
    console.print(
        f"export {report.id} of audience {report.audience}{where}: {report.rows} rows "
        f"({report.adds} adds, {report.removes} removes) from {report.members} identities",
        soft_wrap=True,
        highlight=False,
    )
    skipped = ", ".join(f"{t} {n}" for t, n in report.skipped_consent.items()) or "none"
    console.print(
        f"left out: no consent: {skipped}; blocked {report.skipped_blocked}; "
        f"stored hashed {report.skipped_hashed}",
        soft_wrap=True,
        highlight=False,
    )


@commands.command("list")
def list_audiences(
    segment_id: str | None = typer.Option(None, "--segment", help="Only this segment's."),
) -> None:
    """The audiences exported so far, with their latest export."""
    settings = cli_settings()
    with graph_session(settings) as graph:
        found = store.audiences(graph, segment_id)
        latest = {a["id"]: store.exports(graph, a["id"], 1) for a in found}
    table = Table("audience", "segment", "types", "hashed", "exported", "last export", "rows")
    for a in found:
        last = latest[a["id"]][0] if latest[a["id"]] else None
        table.add_row(
            a["id"],
            a["segment"],
            ",".join(a["types"]),
            f"yes ({a['destination']})" if a["hashed"] else "no",
            str(a["exported"]),
            f"{last['id']} {last['status']}" if last else "-",
            str(last["rows"]) if last and last["rows"] is not None else "-",
        )
    out.print(table)
