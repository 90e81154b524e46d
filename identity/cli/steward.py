"""``idgraph steward cut | restore | force-merge | block | unblock``: steward actions.

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
    help="Steward actions: cut or restore a link, force a merge, block or unblock an identifier.",
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
