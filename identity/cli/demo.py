"""``idgraph synth`` and ``idgraph demo``: synthetic data, and the demo data set loaded."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from identity.cli.common import out, progress_bar, services
from identity.cli.load import file_progress, print_load
from identity.cli.resolve import print_resolve
from identity.errors import NotFoundError
from identity.ingest.service import load_segment_file, load_table_file
from identity.segments import service as segment_service
from loaders.synth import SynthConfig, generate
from loaders.table import load_mapping

commands = typer.Typer()


@commands.command()
def synth(
    out_dir: Path = typer.Option(Path("synth"), "--out", "-o", help="Output directory."),
    people: int = typer.Option(1000, min=1, help="Number of people."),
    seed: int = typer.Option(42, help="Random seed (same seed, same files)."),
    events_per_person: float = typer.Option(10.0, min=0.0, help="Mean events per person."),
    gzip_events: bool = typer.Option(False, "--gzip", help="Write events.ndjson.gz."),
    apps_only: bool = typer.Option(
        False,
        "--apps-only",
        help="People on mobile apps only: every event carries an anonymousId, a device id and "
        "an advertising id.",
    ),
) -> None:
    """Write synthetic Segment events, CRM and DMP tables, mappings and ground truth."""
    config = SynthConfig(
        people=people,
        seed=seed,
        events_per_person=events_per_person,
        gzip=gzip_events,
        apps_only=apps_only,
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


@commands.command()
def demo(
    people: int = typer.Option(1000, min=1, help="Number of synthetic people."),
) -> None:
    """Load a synthetic demo data set (Segment events, CRM, DMP), resolve it, and create and
    refresh two demo segments; safe to run again."""
    from identity.resolve.service import resolve_identities

    with services(schema=True) as ctx:
        folder = ctx.settings.state_dir / "demo"
        summary = generate(folder, SynthConfig(people=people))
        out.print(f"demo data: {summary.people:,} people, {summary.events:,} events in {folder}")
        with file_progress(summary.files["events"]) as progress:
            report = load_segment_file(ctx, summary.files["events"], progress=progress)
        print_load(report)
        for name in ("crm", "dmp"):
            spec = load_mapping(summary.files[f"{name}_mapping"], ctx.policy.types)
            with file_progress(summary.files[name]) as progress:
                report = load_table_file(ctx, summary.files[name], spec, progress=progress)
            print_load(report)
        print_resolve(resolve_identities(ctx))
        for name, (description, definition) in DEMO_SEGMENTS.items():
            try:
                segment = segment_service.get_segment(ctx, name)
            except NotFoundError:
                segment = segment_service.create_segment(
                    ctx.acting_as("idgraph demo"),
                    name=name,
                    description=description,
                    definition=definition,
                )
            done = segment_service.refresh_segment(ctx, segment.id)
            out.print(
                f"segment {segment.id} {name!r}: {done.size:,} members "
                f"(+{done.entered:,} -{done.left:,})"
            )
