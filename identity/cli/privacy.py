"""``idgraph forget``, ``idgraph export-profile`` and ``idgraph purge``: erasure, access and
retention (see :mod:`identity.privacy`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import typer
from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from identity.cli.common import cli_actor, out, progress_bar, services
from identity.errors import InputError

commands = typer.Typer()

_KEY = typer.Argument(None, help="An identifier of the person, TYPE:VALUE (or give --id).")
_ID = typer.Option(None, "--id", help="The identity id (a merged id: its survivor).")
_WAIT = typer.Option(30.0, min=0.0, help="Seconds to wait for a resolve already running.")


@commands.command()
def forget(
    key: str | None = _KEY,
    id: str | None = _ID,
    reason: str = typer.Option(..., "--reason", help="Why (kept in the event log, scrubbed)."),
    wait: float = _WAIT,
) -> None:
    """Erase a person: identity, identifiers, links, traits, segments; tombstones stay."""
    from identity.privacy.forget import forget_profile  # its resolve loads the engine

    with services(actor=cli_actor()) as ctx:
        done = forget_profile(ctx, id=id, identifier=key, reason=reason, wait=wait)
    out.print(
        f"forgot identity {done.identity}: {done.identifiers} identifiers (tombstoned), "
        f"{done.links} links, {done.merged_ids} merged ids; {done.scrubbed} texts scrubbed; "
        f"event {done.event_id}",
        soft_wrap=True,
        highlight=False,
    )
    if done.report is None:
        out.print("a resolve was busy: the neighbours are recomputed by the next resolve")
    else:
        out.print(
            f"{done.neighbours} neighbours recomputed by {done.report.mode} resolve "
            f"{done.report.run}",
            highlight=False,
        )


@commands.command("export-profile")
def export_profile_command(
    key: str | None = _KEY,
    id: str | None = _ID,
    output: Path | None = typer.Option(
        None, "--out", help="Write the JSON here (default: stdout)."
    ),
) -> None:
    """Everything held about a person, as one JSON document (right of access)."""
    from identity.privacy.access import export_profile

    with services() as ctx:
        document = export_profile(ctx, id=id, identifier=key)
    text = json.dumps(document, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        out.print(f"wrote {output} ({len(document['identifiers'])} identifiers)")


@commands.command()
def purge(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
    as_of: str | None = typer.Option(None, help="Purge as of this ISO time (default: now)."),
    wait: float = _WAIT,
) -> None:
    """Drop third-party data past its TTL and observations past their source's retention."""
    from identity.privacy.retention import purge as purge_service

    now = None
    if as_of is not None:
        try:
            now = datetime.fromisoformat(as_of)
        except ValueError as e:
            raise InputError(f"--as-of {as_of!r}: not an ISO time ({e})") from e
    with (
        services() as ctx,
        progress_bar(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as bar,
    ):
        task = bar.add_task("purge", total=None)
        report = purge_service(
            ctx, now=now, dry_run=dry_run, wait=wait,
            progress=lambda step: bar.update(task, description=f"purge {step}"),
        )  # fmt: skip
    verb = "would purge (dry run)" if dry_run else "purged"
    out.print(f"{verb} as of {report.as_of.isoformat()} in {report.seconds:.1f}s")
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("kind")
    table.add_column("count", justify="right")
    for step, n in report.counts.items():
        table.add_row(step, f"{n:,}")
    if not dry_run:
        table.add_row("emptied identities", f"{report.emptied_identities:,}")
    out.print(table)
    if report.resolve is not None:
        out.print(f"recomputed by {report.resolve.mode} resolve {report.resolve.run}")
