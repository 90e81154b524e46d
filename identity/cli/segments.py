"""``idgraph segment create | list | show | update | delete | refresh | estimate | preview |
members | changes``: segments from the command line.

A definition is given as JSON text, ``@file.json`` or ``-`` (standard input); ``estimate``
and ``preview`` also take a segment (id or name) to size its stored definition now.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from identity.cli.common import cli_actor, err, out, services
from identity.context import ServiceContext
from identity.errors import InputError
from identity.segments import service as segments

commands = typer.Typer(
    help="Segments: named definitions of customers, refreshed into members.",
    no_args_is_help=True,
)

_SEGMENT = typer.Argument(..., help="A segment id (seg-...) or name.")
_DEFINITION = typer.Option(
    None, "--definition", "-d", help='JSON text, @file.json or - (stdin): {"consent": "marketing"}'
)


def _definition(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as e:
            raise InputError(f"cannot read the definition file {text[1:]!r}: {e}") from e
    try:
        return json.loads(text)
    except ValueError as e:
        raise InputError(f"the definition is not JSON: {e}") from e


def _show(segment: segments.Segment) -> None:
    refreshed = segment.refreshed_at.isoformat() if segment.refreshed_at else "never"
    out.print(f"{segment.id}  {segment.name}", highlight=False)
    if segment.description:
        out.print(f"  {segment.description}", highlight=False)
    out.print(f"  definition: {json.dumps(segment.definition)}", highlight=False, soft_wrap=True)
    out.print(
        f"  size {segment.size}, refreshed {refreshed}"
        + (
            " (definition changed since: refresh it)"
            if segment.stale and segment.refreshed_at
            else ""
        ),
        highlight=False,
    )
    out.print(
        f"  created {segment.created_at.isoformat()} by {segment.created_by}", highlight=False
    )


@commands.command()
def create(
    name: str = typer.Argument(..., help="A unique name."),
    definition: str = typer.Option(..., "--definition", "-d", help=_DEFINITION.help),
    description: str = typer.Option("", help="What the segment is for."),
) -> None:
    """Create a segment (no members until its first refresh)."""
    with services(actor=cli_actor()) as ctx:
        segment = segments.create_segment(
            ctx, name=name, definition=_definition(definition), description=description
        )
    _show(segment)


@commands.command("list")
def list_command() -> None:
    """All segments with their size and last refresh."""
    with services() as ctx:
        found = segments.list_segments(ctx)
    table = Table("id", "name", "size", "refreshed", "stale")
    for s in found:
        refreshed = s.refreshed_at.isoformat(timespec="seconds") if s.refreshed_at else "never"
        table.add_row(s.id, s.name, str(s.size), refreshed, "yes" if s.stale else "")
    out.print(table)


@commands.command()
def show(segment: str = _SEGMENT) -> None:
    """A segment, its definition and its last refreshes."""
    with services() as ctx:
        found = segments.get_segment(ctx, segment)
        history = segments.refreshes(ctx, found.id, last=5)
    _show(found)
    for r in history:
        out.print(
            f"  refresh {r.at.isoformat(timespec='seconds')}: +{r.entered} -{r.left} "
            f"= {r.size} in {r.ms} ms",
            highlight=False,
        )


@commands.command()
def update(
    segment: str = _SEGMENT,
    name: str | None = typer.Option(None, help="A new unique name."),
    description: str | None = typer.Option(None, help="A new description."),
    definition: str | None = _DEFINITION,
) -> None:
    """Change a segment; a new definition applies at the next refresh."""
    with services() as ctx:
        changed = segments.update_segment(
            ctx,
            segment,
            name=name,
            description=description,
            definition=_definition(definition) if definition is not None else None,
        )
    _show(changed)


@commands.command()
def delete(segment: str = _SEGMENT) -> None:
    """Delete a segment and its memberships."""
    with services() as ctx:
        gone = segments.delete_segment(ctx, segment)
    out.print(f"deleted {gone.id} ({gone.name}, {gone.size} members)", highlight=False)


@commands.command()
def refresh(segment: str = _SEGMENT) -> None:
    """Recompute the members now: who entered, who left."""
    with services() as ctx, err.status(f"Refreshing {segment}..."):
        done = segments.refresh_segment(ctx, segment)
    out.print(
        f"{done.segment}: {done.entered} entered, {done.left} left, size {done.size} "
        f"({done.ms} ms, refresh {done.refresh} at {done.at.isoformat()})",
        highlight=False,
        soft_wrap=True,
    )


def _given(ctx: ServiceContext, text: str) -> Any:
    """A definition as typed, or the stored definition of a segment."""
    if text in ("-",) or text.lstrip().startswith(("{", "@")):
        return _definition(text)
    return segments.get_segment(ctx, text).definition


_GIVEN = typer.Argument(..., help="A definition (JSON, @file, -) or a segment id or name.")


@commands.command()
def estimate(definition: str = _GIVEN) -> None:
    """How many active identities match now (nothing is stored)."""
    with services() as ctx:
        count = segments.estimate(ctx, _given(ctx, definition))
    out.print(count)


@commands.command()
def preview(
    definition: str = _GIVEN,
    sample: int = typer.Option(10, min=0, max=1000, help="How many members to show."),
) -> None:
    """The size and a sample of members with a few traits (nothing is stored)."""
    with services() as ctx:
        found = segments.preview(ctx, _given(ctx, definition), sample)
    out.print(f"size {found.size}", highlight=False)
    for identity, traits in found.sample:
        out.print(
            f"  {identity}  {json.dumps(traits, default=str)}", highlight=False, soft_wrap=True
        )


@commands.command()
def members(
    segment: str = _SEGMENT,
    limit: int = typer.Option(100, min=1, max=100000),
    after: str | None = typer.Option(None, help="The last identity id of the previous page."),
) -> None:
    """Member identity ids as of the last refresh, by id."""
    with services() as ctx:
        for row, since in segments.members(ctx, segment, after, limit):
            out.print(f"{row[0]}  since {since.isoformat()}", highlight=False)


@commands.command()
def changes(
    segment: str = _SEGMENT,
    since: str = typer.Option(..., help="ISO time with a zone, e.g. 2026-11-01T00:00:00Z."),
    limit: int = typer.Option(1000, min=1, max=100000),
) -> None:
    """Who entered and who left after --since, in order: the net sync list."""
    try:
        after = datetime.fromisoformat(since)
    except ValueError as e:
        raise InputError(f"--since {since!r} is not an ISO time: {e}") from e
    with services() as ctx:
        for c in segments.changes(ctx, segment, after, limit=limit):
            sign = "+" if c.change == "entered" else "-"
            out.print(f"{sign} {c.identity}  {c.at.isoformat()}", highlight=False)
