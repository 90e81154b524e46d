"""``idgraph steward cut | restore | force-merge | block | unblock | split-off``: steward actions.

Each command records the action under ``cli:<os user>``, applies it through an incremental
resolve and prints the identities that hold the identifiers before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from identity.cli.common import cli_actor, out, services

if TYPE_CHECKING:
    from identity.steward.actions import StewardResult

commands = typer.Typer(
    help="Steward actions: cut or restore a link, force a merge, block or unblock an "
    "identifier, split identifiers off their identity.",
    no_args_is_help=True,
)

_A = typer.Argument(..., help="An identifier, TYPE:VALUE (e.g. email:ann@example.com).")
_B = typer.Argument(..., help="Another identifier, TYPE:VALUE.")
_REASON = typer.Option(..., "--reason", help="Why (kept in the audit trail; 500 characters).")
_WAIT = typer.Option(30.0, min=0.0, help="Seconds to wait for a resolve already running.")


def _act(action: str, *keys: str, reason: str, wait: float) -> None:
    from identity.steward import actions  # the resolve it runs loads numpy, scipy, networkx

    function: Callable[..., StewardResult] = getattr(actions, action)
    with services(actor=cli_actor()) as ctx:
        result = function(ctx, *keys, reason=reason, wait=wait)
    out.print(
        f"{result.action} {' - '.join(result.keys)} by {result.actor}: event {result.event_id}, "
        f"applied by {result.report.mode} resolve {result.report.run}",
        soft_wrap=True,
        highlight=False,
    )
    out.print(f"identities before: {', '.join(result.before) or 'none'}", highlight=False)
    out.print(f"identities after:  {', '.join(result.identities) or 'none'}", highlight=False)
    for change in result.report.changes:
        out.print(f"  {change}", soft_wrap=True, highlight=False)


@commands.command()
def cut(a: str = _A, b: str = _B, reason: str = _REASON, wait: float = _WAIT) -> None:
    """Cut the link between two identifiers: they split unless something else joins them."""
    _act("cut_link", a, b, reason=reason, wait=wait)


@commands.command()
def restore(a: str = _A, b: str = _B, reason: str = _REASON, wait: float = _WAIT) -> None:
    """Remove the cut of a link: it merges again if the rules allow."""
    _act("restore_link", a, b, reason=reason, wait=wait)


@commands.command("force-merge")
def force_merge_command(
    a: str = _A, b: str = _B, reason: str = _REASON, wait: float = _WAIT
) -> None:
    """Assert two identifiers are the same customer: their link merges whatever the rules."""
    _act("force_merge", a, b, reason=reason, wait=wait)


@commands.command()
def block(key: str = _A, reason: str = _REASON, wait: float = _WAIT) -> None:
    """Block an identifier: it merges with nothing and stands alone."""
    _act("block_identifier", key, reason=reason, wait=wait)


@commands.command()
def unblock(key: str = _A, reason: str = _REASON, wait: float = _WAIT) -> None:
    """Lift a block: the identifier's links merge again if the rules allow."""
    _act("unblock_identifier", key, reason=reason, wait=wait)


@commands.command("split-off")
def split_off_command(
    keys: list[str] = typer.Argument(
        ..., help="Identifiers of one identity that belong to someone else, TYPE:VALUE."
    ),
    reason: str = typer.Option(
        "", "--reason", help="Why (kept in the audit trail); required unless --dry-run."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the cuts and what results."),
    wait: float = _WAIT,
) -> None:
    """Split identifiers off their identity: cut the fewest links that separate them from its
    other identifiers (a minimum edge cut), with one reason."""
    from identity.steward import split  # the resolve it runs loads numpy, scipy, networkx

    if not dry_run and not reason.strip():
        raise typer.BadParameter("a reason is required (or --dry-run)", param_hint="--reason")
    with services(actor=cli_actor()) as ctx:
        if dry_run:
            plan = split.plan_split_off(ctx, keys)
        else:
            result = split.split_off(ctx, keys, reason=reason, wait=wait)
            plan = result.plan
    out.print(f"identity {plan.identity}: split off {', '.join(plan.selected)}", highlight=False)
    out.print(f"links {'to cut' if dry_run else 'cut'}: {len(plan.cuts)}", highlight=False)
    for a, b in plan.cuts:
        out.print(f"  {a} - {b}", highlight=False)
    label = "identities that would result" if dry_run else "identities that result"
    out.print(f"{label}: {len(plan.groups)}", highlight=False)
    for group in plan.groups:
        out.print(f"  {', '.join(group)}", soft_wrap=True, highlight=False)
    if not dry_run:
        out.print(
            f"event {result.event_id}, applied by {result.report.mode if result.report else '-'} "
            f"resolve; identities now: {', '.join(result.identities)}",
            soft_wrap=True,
            highlight=False,
        )
