"""``idgraph resolve | explain | export | evaluate | review``: identities from the command line."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from identity.cli.common import cli_settings, err, graph_session, out, progress_bar, services
from identity.cli.matching import print_waterfall
from identity.errors import InputError
from identity.store.identities import read_review, stream_identities
from loaders.records import parse_timestamp

if TYPE_CHECKING:  # the engine (numpy, scipy, networkx) loads with the commands that use it
    from identity.resolve.evaluate import Scores
    from identity.resolve.service import Engine, ResolveReport

commands = typer.Typer()
export_app = typer.Typer(help="Export identities.", no_args_is_help=True)
commands.add_typer(export_app, name="export")


def parse_as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as e:
        raise InputError(f"--as-of {value!r}: expected an ISO date or time, {e}") from e


@commands.command()
def resolve(
    full: bool = typer.Option(False, "--full", help="Resolve every identifier, not only changes."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would merge and split; write nothing."
    ),
    as_of: str | None = typer.Option(
        None, help="Expire links as of this time (ISO 8601) instead of now."
    ),
    wait: float = typer.Option(
        0.0, min=0.0, help="Seconds to wait for a resolve already running (0: refuse at once)."
    ),
    engine: str = typer.Option(
        "local",
        help="local: in this process (the default); spark: on Spark (docs/spark.md).",
    ),
    spark_master: str | None = typer.Option(
        None,
        "--spark-master",
        help="Spark master for --engine spark (default IDGRAPH_SPARK_MASTER, local[*]).",
    ),
) -> None:
    """Form identities from the links loaded so far (incremental unless --full)."""
    from identity.resolve.service import resolve_identities

    chosen = _engine(engine, spark_master)

    with (
        services(schema=True) as ctx,
        progress_bar(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        ) as bar,
    ):
        task = bar.add_task("resolve", total=None)
        report = resolve_identities(
            ctx,
            full=full,
            dry_run=dry_run,
            as_of=parse_as_of(as_of),
            wait=wait,
            progress=lambda step, done, total: bar.update(
                task, description=step, completed=done, total=total
            ),
            engine=chosen,
        )
    print_resolve(report)


def _engine(name: str, spark_master: str | None) -> Engine:
    from identity.resolve.service import LocalEngine

    if name == "local":
        if spark_master:
            raise InputError("--spark-master goes with --engine spark")
        return LocalEngine()
    if name != "spark":
        raise InputError(f"--engine {name!r}: expected local or spark")
    try:
        from identity.engines.spark.engine import SparkEngine
    except ImportError as e:
        raise InputError(
            f"--engine spark needs the spark extra (pip install 'idgraph[spark]'): {e}"
        ) from e
    settings = cli_settings()
    if spark_master:
        settings = settings.model_copy(update={"spark_master": spark_master})
    return SparkEngine(settings)


def print_resolve(report: ResolveReport) -> None:
    what = "dry run, nothing written" if report.dry_run else f"run {report.run}"
    out.print(f"{report.mode} resolve ({report.why}); {what}; engine {report.engine}")
    if report.batches:
        out.print(f"batches: {len(report.batches)} loaded since the last resolve")
    p = report.plan
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("identifiers resolved", f"{report.identifiers:,}")
    table.add_row("links read", f"{report.links:,}")
    table.add_row("identities formed", f"{report.identities:,}")
    table.add_row("  unchanged", f"{p.get('unchanged', 0):,}")
    table.add_row("  created", f"{p.get('created', 0):,}")
    table.add_row("  merged", f"{p.get('merged', 0):,}")
    table.add_row("  split", f"{p.get('split', 0):,}")
    table.add_row("memberships moved", f"{p.get('moved', 0):,}")
    table.add_row("shared identifiers", f"{report.shared:,}")
    table.add_row("quarantined components", f"{len(report.quarantined):,}")
    table.add_row("shared devices split", f"{report.devices_split:,}")
    table.add_row("one device, kept together", f"{report.devices_kept:,}")
    table.add_row("profiles changed", f"{report.profiles:,}")
    out.print(table)
    for q in report.quarantined:
        out.print(f"quarantined {q.id}: {q.size:,} identifiers, e.g. {', '.join(q.sample[:3])}")
    if report.dry_run:
        shown = report.changes[:50]
        for line in shown:
            out.print(f"  would {line}", soft_wrap=True, highlight=False)
        if len(report.changes) > len(shown):
            out.print(f"  ... and {len(report.changes) - len(shown):,} more changes")
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items())
    out.print(f"time: {timing}")
    for line in report.engine_notes:
        out.print(line, soft_wrap=True, highlight=False)


@commands.command("explain")
def explain_command(
    a: str = typer.Argument(..., help="An identifier, TYPE:VALUE (e.g. email:ann@example.com)."),
    b: str = typer.Argument(..., help="Another identifier, TYPE:VALUE."),
    as_of: str | None = typer.Option(None, help="Judge link expiry as of this time."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Why two identifiers are in the same identity, or what keeps them apart."""
    from identity.resolve.explain import explain

    with services() as ctx:
        result = explain(ctx, a, b, as_of=parse_as_of(as_of))
    if as_json:
        out.print_json(json.dumps(result, default=_json_default))
        return
    out.print(f"{result.a} ({result.identity_a}) and {result.b} ({result.identity_b})")
    out.print(result.summary, soft_wrap=True, highlight=False)
    for n, hop in enumerate(result.path, start=1):
        seen = f"{hop.first_seen:%Y-%m-%d} .. {hop.last_seen:%Y-%m-%d}" if hop.first_seen else ""
        out.print(
            f"  {n}. {hop.a} - {hop.b}: {hop.verdict}; seen {hop.count}x {seen}; "
            f"sources {', '.join(hop.sources)} ({hop.party} party)",
            soft_wrap=True,
            highlight=False,
        )
        if hop.why != "merged":  # what kept it out, or the steward who forced it
            out.print(f"     {hop.why}", soft_wrap=True, highlight=False)
        if hop.match:  # record matching scored the pair: its waterfall
            print_waterfall(hop.match)
        for evidence in hop.evidence:
            out.print(f"     evidence {evidence}", highlight=False)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return value.__dict__
    raise TypeError(f"cannot encode {type(value).__name__}")


@export_app.command("identities")
def export_identities(
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="NDJSON file to write (default: standard output)."
    ),
) -> None:
    """Write one JSON line per identity: {"identity": ID, "identifiers": [{type, value}]}."""
    settings = cli_settings()
    count = 0
    with graph_session(settings) as graph:
        target = out_file.open("w", encoding="utf-8") if out_file else sys.stdout
        try:
            for identity, members in stream_identities(graph):
                line = {
                    "identity": identity,
                    "identifiers": [{"type": t, "value": v} for t, v in members],
                }
                target.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if out_file:
                target.close()
    if out_file:
        out.print(f"{count:,} identities written to {out_file}")


@commands.command("evaluate")
def evaluate_command(
    truth: Path = typer.Option(..., "--truth", help="truth.csv from `idgraph synth`."),
) -> None:
    """Score the identities against ground truth: pairwise precision, recall, F1."""
    from identity.resolve.evaluate import evaluate

    with services() as ctx:
        result = evaluate(ctx, truth)
    out.print(f"{result.people:,} people, {result.identifiers:,} identifiers scored")
    table = Table(box=None, pad_edge=False)
    for column in ("", "precision", "recall", "F1", "identities", "over-merged", "largest"):
        table.add_column(column, justify="right" if column else "left")

    def row(name: str, s: Scores) -> None:
        table.add_row(
            name,
            f"{s.precision:.4f}",
            f"{s.recall:.4f}",
            f"{s.f1:.4f}",
            f"{s.identities:,}",
            f"{s.over_merged:,}",
            f"{s.largest:,}",
        )

    row("identities (policy)", result.identities)
    if result.without_matching is not None:
        row("  without record matching", result.without_matching)
    row("no guards (plain components)", result.no_guards)
    row("ceiling (same-person links)", result.ceiling)
    out.print(table)
    if result.cases:
        cases = Table(box=None, pad_edge=False, title="hard cases (cases.csv)")
        for column in ("case", "people", "over-merged", "emails together", "in review"):
            cases.add_column(column, justify="right" if column != "case" else "left")
        for c in result.cases:
            cases.add_row(
                c.case,
                f"{c.people:,}",
                f"{c.over_merged:,}",
                "-" if c.emails_together is None else f"{c.emails_together:,}",
                f"{c.in_review:,}",
            )
        out.print(cases)


@commands.command()
def review(limit: int = typer.Option(50, min=1, help="Rows to show per list.")) -> None:
    """List shared identifiers, quarantined components and possible shared devices, for
    steward review."""
    settings = cli_settings()
    with graph_session(settings) as graph:
        shared, quarantines, devices = read_review(graph, limit)
    out.print(f"shared identifiers: {len(shared):,} shown")
    for row in shared:
        out.print(f"  {row['key']} ({row['kind']}): {row['reason']}", soft_wrap=True)
    out.print(f"quarantined components: {len(quarantines):,} open")
    for row in quarantines:
        out.print(f"  {row['id']}: {row['size']:,} identifiers, e.g. {', '.join(row['sample'])}")
    out.print(f"possible shared devices: {len(devices):,} open")
    for row in devices:
        call = "split" if row["split"] else "kept together"
        out.print(f"  {row['id']} ({call}): {row['reason']}", soft_wrap=True)
        out.print(f"    side kept with the device: {', '.join(row['kept'])}", soft_wrap=True)
        out.print(f"    other side: {', '.join(row['other'])}", soft_wrap=True)
    if not shared and not quarantines and not devices:
        err.print("nothing to review")
