"""``idgraph match train | run | models | reviews | accept | reject``: record matching.

``train`` and ``run`` read a CSV table through its mapping's ``[match]`` section (the table
loaded first with ``idgraph load csv``, so that its record identifiers are in the graph).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from identity.cli.common import cli_actor, cli_settings, out, services
from identity.policy import load_policy
from loaders.table import check_header, load_mapping

if TYPE_CHECKING:
    from identity.model import MatchScore, Rejection
    from loaders.table import TableMapping

commands = typer.Typer(
    help="Record matching: train a model over a table's records, score its pairs into "
    "matched links and a review band, and decide the reviews.",
    no_args_is_help=True,
)

_FILE = typer.Argument(..., help="The CSV table (plain or gzip), loaded before with `load csv`.")
_MAPPING = typer.Option(
    ..., "--mapping", "-m", help="Its mapping TOML file, with a [match] section."
)
_REASON = typer.Option(..., "--reason", help="Why (kept in the audit trail; 500 characters).")


def _mapping(file: Path, mapping: Path) -> TableMapping:
    spec = load_mapping(mapping, load_policy(cli_settings().policy).types)
    check_header(file, spec)
    return spec


def _rejected(rows: int, count: int, rejected: list[Rejection]) -> None:
    out.print(f"{rows:,} rows read, {count:,} records compared, {len(rejected):,} rejected")
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r.code] = reasons.get(r.code, 0) + 1
    for code, n in sorted(reasons.items()):
        example = next(r for r in rejected if r.code == code)
        out.print(
            f"  {code}: {n:,} (e.g. line {example.record}: {example.message})",
            soft_wrap=True,
            highlight=False,
        )


@commands.command()
def train(
    file: Path = _FILE,
    mapping: Path = _MAPPING,
    labels: bool | None = typer.Option(
        None,
        "--labels/--no-labels",
        help="Estimate m from the [match] label column (default: when it names one), "
        "else by expectation maximisation.",
    ),
) -> None:
    """Estimate a match model for the table's source and store it as a new version."""
    from identity.matching import service

    spec = _mapping(file, mapping)
    with services(schema=True) as ctx:
        report = service.train(ctx, file, spec, labels=labels)
    _rejected(report.rows, report.records, report.rejected)
    out.print(
        f"model {report.source} v{report.version} (fingerprint {report.fingerprint}) trained "
        f"by {report.how} in {report.seconds:.1f}s",
        soft_wrap=True,
        highlight=False,
    )
    for note in report.notes:
        out.print(f"  note: {note}", soft_wrap=True, highlight=False)


@commands.command()
def run(
    file: Path = _FILE,
    mapping: Path = _MAPPING,
    dry_run: bool = typer.Option(False, "--dry-run", help="Score and report; write nothing."),
    resolve: bool = typer.Option(True, "--resolve/--no-resolve", help="Resolve after writing."),
) -> None:
    """Score the table's pairs with its source's latest model: matched links at the policy's
    merge threshold and above, reviews in the band below it."""
    from identity.matching import service

    spec = _mapping(file, mapping)
    with services(schema=True) as ctx:
        report = service.run(ctx, file, spec, dry_run=dry_run, resolve=resolve)
        thresholds = ctx.policy.matching
    _rejected(report.rows, report.records, report.rejected)
    verb = "would write" if report.dry_run else "wrote"
    out.print(
        f"model {report.source} v{report.version}: {report.scored:,} pairs scored >= "
        f"{thresholds.review} in {report.seconds:.1f}s; {verb} {report.links:,} matched links "
        f"(>= {thresholds.merge}; {report.new:,} new), {report.reviews:,} reviews, retracted "
        f"{report.retracted:,}; {report.decided:,} already decided by a steward, "
        f"{report.not_loaded:,} with a record not loaded",
        soft_wrap=True,
        highlight=False,
    )
    if report.sample:
        table = Table("probability", "a", "b", box=None, header_style="bold")
        for s in report.sample:
            table.add_row(f"{s.probability:.6f}", s.a, s.b)
        out.print(table)
    if report.resolve:
        out.print(f"applied by {report.resolve.mode} resolve {report.resolve.run}")
        for change in report.resolve.changes:
            out.print(f"  {change}", soft_wrap=True, highlight=False)


@commands.command()
def models() -> None:
    """The stored models, newest first per source."""
    from identity.store.matching import models as stored

    with services() as ctx:
        rows = stored(ctx.graph)
    table = Table("source", "version", "fingerprint", "records", "trained by", box=None)
    for m in rows:
        table.add_row(m.source, str(m.version), m.fingerprint, f"{m.records:,}", m.how)
    out.print(table)


@commands.command()
def reviews(
    source: str | None = typer.Option(None, help="Only this source's reviews."),
    first: int = typer.Option(50, min=1, max=500, help="How many."),
    waterfall: bool = typer.Option(False, "--waterfall", help="Each pair's match weights."),
    after: str | None = typer.Option(None, help="The next page: after this review id."),
) -> None:
    """Open match reviews, most probable first."""
    from identity.matching.review import open_reviews
    from identity.model import MatchScore, MatchStep

    with services() as ctx:
        rows = open_reviews(ctx, source=source, first=first, after=after)
    if not rows:
        out.print("no open match review")
    for row in rows:
        out.print(
            f"{row.id}  {row.score.probability:.6f}  {row.a} - {row.b}  ({row.source} "
            f"v{row.model})",
            highlight=False,
        )
        if waterfall:
            s = row.score
            steps = tuple(
                MatchStep(c, level, w)
                for c, level, w in zip(s.comparisons, s.levels, s.weights, strict=False)
            )
            print_waterfall(MatchScore(s.probability, s.prior, steps, row.source, row.model))


def print_waterfall(score: MatchScore, indent: str = "     ") -> None:
    """The match weights of a scored pair, comparison by comparison."""
    out.print(f"{indent}{'prior (two random records)':<44} {score.prior_weight:+8.2f}")
    for step in score.steps:
        label = f"{step.comparison}: {step.level}"
        out.print(f"{indent}{label:<44.44} {step.weight:+8.2f}", highlight=False)
    out.print(
        f"{indent}{'match weight':<44} {score.match_weight:+8.2f}  "
        f"probability {score.probability:.6f}",
        highlight=False,
    )


def _decide(review: str, accept: bool, reason: str) -> None:
    from identity.matching.review import decide

    with services(actor=cli_actor()) as ctx:
        result = decide(ctx, review, accept=accept, reason=reason)
    out.print(
        f"{result.action} {' - '.join(result.keys)} by {result.actor}: event {result.event_id}",
        highlight=False,
    )
    out.print(f"identities before: {', '.join(result.before) or 'none'}", highlight=False)
    out.print(f"identities after:  {', '.join(result.identities) or 'none'}", highlight=False)


@commands.command()
def accept(
    review: str = typer.Argument(..., help="The review's id."), reason: str = _REASON
) -> None:
    """Accept a review: the two records are one customer (a forced matched link)."""
    _decide(review, True, reason)


@commands.command()
def reject(
    review: str = typer.Argument(..., help="The review's id."), reason: str = _REASON
) -> None:
    """Reject a review: the pair's matched link is cut, whatever later runs score."""
    _decide(review, False, reason)
