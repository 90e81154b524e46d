"""``idgraph webhook add | list | update | remove | deliveries | redeliver | deliver``."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import typer
from rich.table import Table

from identity.cli.common import cli_actor, err, out, services
from identity.webhooks import service as webhooks
from identity.webhooks.worker import DeliveryWorker

commands = typer.Typer(
    help="Webhooks: changes pushed to other systems, signed, at least once.",
    no_args_is_help=True,
)

_WEBHOOK = typer.Argument(..., help="A webhook id (wh-...).")
_KINDS_HELP = "A kind to receive (repeat the option): " + ", ".join(webhooks.KINDS)


def _show(w: webhooks.Webhook) -> None:
    state = "enabled" if w.enabled else "disabled"
    out.print(f"{w.id}  {w.url}  ({state})", highlight=False)
    out.print(f"  kinds: {', '.join(w.kinds)}", highlight=False)
    if w.include_identifiers:
        out.print("  includes identifier values", highlight=False)
    if w.description:
        out.print(f"  {w.description}", highlight=False)


@commands.command()
def add(
    url: str = typer.Argument(..., help="Where to POST: an http:// or https:// URL."),
    kind: list[str] = typer.Option(..., "--kind", "-k", help=_KINDS_HELP),
    secret: str | None = typer.Option(
        None, help="The signing secret (16+ characters); default one generated and shown once."
    ),
    description: str = typer.Option("", help="What the webhook is for."),
    include_identifiers: bool = typer.Option(
        False, help="Send identifier values (emails, phones...) with each identity."
    ),
) -> None:
    """Create a webhook; it receives what happens from now on."""
    with services(actor=cli_actor(), schema=True) as ctx:
        created = webhooks.create_webhook(
            ctx,
            url,
            kind,
            secret=secret,
            description=description,
            include_identifiers=include_identifiers,
        )
    _show(created.webhook)
    if secret is None:
        out.print(f"  secret: {created.secret}  (shown once: keep it)", highlight=False)


@commands.command("list")
def list_command() -> None:
    """Every webhook."""
    with services() as ctx:
        found = webhooks.list_webhooks(ctx)
    table = Table("id", "url", "kinds", "enabled", "identifiers")
    for w in found:
        table.add_row(
            w.id,
            w.url,
            ", ".join(w.kinds),
            "yes" if w.enabled else "no",
            "yes" if w.include_identifiers else "",
        )
    out.print(table)


@commands.command()
def update(
    webhook: str = _WEBHOOK,
    url: str | None = typer.Option(None, help="A new URL."),
    kind: list[str] | None = typer.Option(None, "--kind", "-k", help=_KINDS_HELP),
    secret: str | None = typer.Option(None, help="A new signing secret."),
    description: str | None = typer.Option(None, help="A new description."),
    enabled: bool | None = typer.Option(None, "--enabled/--disabled", help="Pause or resume."),
) -> None:
    """Change a webhook."""
    with services() as ctx:
        changed = webhooks.update_webhook(
            ctx,
            webhook,
            url=url,
            kinds=kind or None,
            secret=secret,
            description=description,
            enabled=enabled,
        )
    _show(changed)


@commands.command()
def remove(webhook: str = _WEBHOOK) -> None:
    """Delete a webhook and its deliveries."""
    with services() as ctx:
        gone = webhooks.delete_webhook(ctx, webhook)
    out.print(f"removed {gone.id} ({gone.url})", highlight=False)


@commands.command()
def deliveries(
    webhook: str = _WEBHOOK,
    status: str | None = typer.Option(None, help="pending, delivered or failed."),
    last: int = typer.Option(20, min=1, max=10_000, help="How many, newest first."),
) -> None:
    """A webhook's deliveries, newest first."""
    with services() as ctx:
        found = webhooks.deliveries(ctx, webhook, status=status, limit=last)
    table = Table("delivery", "kind", "event", "status", "attempts", "last", "error")
    for d in found:
        last_at = d.last_at.isoformat(timespec="seconds") if d.last_at else ""
        code = f" ({d.last_status})" if d.last_status else ""
        table.add_row(
            d.id, d.kind, d.event, d.status, str(d.attempts), last_at + code, d.last_error or ""
        )
    out.print(table)


@commands.command()
def redeliver(
    webhook: str = _WEBHOOK,
    delivery: list[str] | None = typer.Option(
        None, "--delivery", "-d", help="A delivery id (repeat); default every failed one."
    ),
) -> None:
    """Queue deliveries again: the named ones, or every failed one."""
    with services() as ctx:
        n = webhooks.redeliver(ctx, webhook, delivery or None)
    out.print(f"queued {n} deliveries again", highlight=False)


@commands.command()
def deliver() -> None:
    """Deliver webhooks until interrupted (what `idgraph serve` does unless
    IDGRAPH_WEBHOOK_WORKER=false): for a delivery process of its own."""

    async def main() -> None:
        with services(schema=True) as ctx:
            worker = DeliveryWorker(ctx)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(sig, worker.stop)
            err.print("delivering webhooks (Ctrl-C to stop)", highlight=False)
            await worker.run()

    asyncio.run(main())
