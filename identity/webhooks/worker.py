"""The delivery worker: outbox entries to webhooks, at least once, in order per identity.

Three kinds of loop, so that nothing slow holds up anything else:

- **numbering**: number what committed (:func:`identity.store.outbox.sequence`), tell the
  subscriptions (``on_sequenced``) and the webhook loops; metrics and pruning now and then;
- **one loop per enabled webhook**, started and stopped as webhooks come and go: under the
  webhook's lease (one worker per webhook across servers, renewed while sending), queue
  deliveries for the new entries it subscribes to, then send those that are due and share no
  identity (no segment) with an earlier queued one, up to ``webhook_concurrency`` at a time,
  looking past held-back deliveries as far as :data:`LOOK_AHEAD` windows; record each outcome.
  A slow or dead receiver delays its own webhook only;
- the **supervisor** that keeps one webhook loop per enabled webhook.

A failed delivery waits ``base * 2^(attempt-1)`` seconds, at most ``webhook_retry_max``, with
equal jitter, and holds back the later deliveries of its identities; after
``webhook_retry_hours`` it is marked failed (redeliverable) and stops holding them back
(:mod:`identity.webhooks.sending`).

The worker runs in ``idgraph serve`` (an asyncio task, woken after each mutation) or alone
(``idgraph webhook deliver``); it only reads and writes the graph and calls receivers, so a slow
receiver never slows a load or a resolve. Graph calls run in threads (the driver is sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from identity import __version__
from identity.context import ServiceContext
from identity.errors import IdgraphError
from identity.store import outbox
from identity.store import webhooks as store
from identity.webhooks import payload, sending
from identity.webhooks.addresses import AddressGuard
from identity.webhooks.metrics import WebhookMetrics

log = logging.getLogger("idgraph.webhooks")

WINDOW = 200
LOOK_AHEAD = 10
_FAN_OUT = 1000
_STATS_SECONDS = 10.0
_PRUNE_SECONDS = 3600.0
_PAUSE_AFTER_ERROR = 1.0


def sendable(
    queue: list[dict[str, Any]], now_ms: int, held: set[str] | None = None
) -> list[dict[str, Any]]:
    """The deliveries that may go now: due, and sharing no key (identity or segment) with an
    earlier queued delivery (sent, waiting or held back itself); ``held`` carries the keys
    of earlier windows and is extended."""
    held = set() if held is None else held
    chosen = []
    for delivery in queue:
        keys = set(delivery["keys"] or [delivery["id"]])
        if not keys & held and delivery["next_at"] <= now_ms:
            chosen.append(delivery)
        held |= keys
    return chosen


class DeliveryWorker:
    """Delivers webhooks until :meth:`stop` (with ``deliver`` False, only numbers the
    outbox); ``on_sequenced(latest)`` after each look at the outbox's end (the
    subscriptions' wake-up: entries may be numbered by another process too)."""

    def __init__(
        self,
        services: ServiceContext,
        metrics: WebhookMetrics | None = None,
        on_sequenced: Callable[[int], Awaitable[None]] | None = None,
        *,
        deliver: bool = True,
    ) -> None:
        self._deliver = deliver
        self._services = services
        self._settings = services.settings
        self._metrics = metrics
        self._on_sequenced = on_sequenced
        self._guard = AddressGuard(self._settings.webhook_allow_hosts)
        self._owner = f"worker-{secrets.token_hex(6)}"
        self._lease = timedelta(seconds=3 * self._settings.webhook_timeout + 5)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # replaced when set: every waiter of the old one wakes
        self._numbered = asyncio.Event()
        self._held: set[str] = set()
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._stats_at = 0.0
        self._pruned_at = time.monotonic()

    async def _graph(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, self._services.graph, *args)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()
        self._wake = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    async def _pause(self, event: asyncio.Event, seconds: float | None = None) -> None:
        """Until ``event`` is set, the worker stops, or ``seconds`` (the poll) pass."""
        stopping = asyncio.ensure_future(self._stopping.wait())
        woken = asyncio.ensure_future(event.wait())
        try:
            await asyncio.wait(
                {stopping, woken},
                timeout=self._settings.outbox_poll if seconds is None else seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopping.cancel()
            woken.cancel()

    async def run(self) -> None:
        """Run the loops until stopped; a loop whose step fails (Neo4j away) logs it and goes
        on after a pause."""
        timeout = httpx.Timeout(self._settings.webhook_timeout)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        headers = {"User-Agent": f"idgraph-webhooks/{__version__}"}
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
            self._client = client
            numbering = asyncio.create_task(
                self._repeat("numbering", self._number, lambda: self._wake)
            )
            try:
                if self._deliver:
                    await self._repeat("supervision", self._supervise, lambda: self._wake)
                else:
                    await self._stopping.wait()
            finally:
                tasks = [numbering, *self._loops.values()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(self._release(w) for w in sorted(self._held)))
                self._client = None

    async def _repeat(
        self,
        name: str,
        step: Callable[[], Awaitable[bool]],
        event_of: Callable[[], asyncio.Event],
    ) -> None:
        """``step()`` until stopped, at once again while it says it is busy, else after the
        poll or the event (taken before the step: one set during it is not missed)."""
        while not self._stopping.is_set():
            event = event_of()
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except IdgraphError as e:
                log.warning("webhook %s failed, retrying: %s", name, e)
                busy = False
                await self._pause(asyncio.Event(), _PAUSE_AFTER_ERROR)
            except Exception:  # a bug must not stop deliveries for good
                log.exception("webhook %s failed, retrying", name)
                busy = False
                await self._pause(asyncio.Event(), _PAUSE_AFTER_ERROR)
            if not busy:
                await self._pause(event)

    async def _number(self) -> bool:
        numbered: int = await self._graph(outbox.sequence)
        if self._on_sequenced is not None:
            await self._on_sequenced(await self._graph(outbox.latest))
        if numbered:
            self._numbered.set()
            self._numbered = asyncio.Event()
        now = time.monotonic()
        if self._metrics is not None and now - self._stats_at > _STATS_SECONDS:
            self._stats_at = now
            self._metrics.observe(await self._graph(store.stats))
        if now - self._pruned_at > _PRUNE_SECONDS:
            self._pruned_at = now
            await self._prune()
        return bool(numbered)

    async def _supervise(self) -> bool:
        enabled = {w["id"] for w in await self._graph(store.list_all) if w["enabled"]}
        for id in enabled - set(self._loops):
            self._loops[id] = asyncio.create_task(self._follow(id))
        for id in set(self._loops) - enabled:
            self._loops.pop(id).cancel()
            self._held.discard(id)
        return False

    async def _follow(self, id: str) -> None:
        await self._repeat(f"webhook {id}", lambda: self._serve(id), lambda: self._numbered)

    async def _claim(self, id: str) -> dict[str, Any] | None:
        now = datetime.now(UTC)
        webhook: dict[str, Any] | None = await self._graph(
            store.claim, id, self._owner, now, now + self._lease
        )
        if webhook is None:
            self._held.discard(id)
        else:
            self._held.add(id)
        return webhook

    async def _keep_lease(self, id: str) -> None:
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            if await self._claim(id) is None:
                log.warning("webhook %s: lease lost while sending (another worker took it)", id)

    async def _choose(self, id: str) -> list[dict[str, Any]]:
        """Up to a window of sendable deliveries, looking past held-back ones."""
        held: set[str] = set()
        chosen: list[dict[str, Any]] = []
        after = -1
        now_ms = int(time.time() * 1000)
        for _ in range(LOOK_AHEAD):
            window = await self._graph(store.queue, id, WINDOW, after)
            chosen += sendable(window, now_ms, held)
            if len(window) < WINDOW or len(chosen) >= WINDOW:
                break
            after = window[-1]["seq"]
        return chosen[:WINDOW]

    async def _serve(self, id: str) -> bool:
        """One round for one webhook; whether it did anything."""
        webhook = await self._claim(id)
        if webhook is None:
            return False
        now = datetime.now(UTC)
        queued: int = await self._graph(store.fan_out, id, self._owner, now, _FAN_OUT)
        chosen = await self._choose(id)
        if not chosen:
            return queued > 0
        rows = await self._graph(outbox.read_numbered, [d["seq"] for d in chosen])
        identifiers = None
        if webhook["include_identifiers"]:
            ids = sorted({i for row in rows.values() for i, _ in row.identities})
            identifiers = await self._graph(
                outbox.identifiers_of, ids, payload.IDENTIFIERS_PER_IDENTITY
            )
        limit = asyncio.Semaphore(self._settings.webhook_concurrency)
        assert self._client is not None
        client = self._client

        async def one(delivery: dict[str, Any]) -> sending.Attempt:
            async with limit:
                return await sending.attempt(
                    client,
                    self._guard,
                    self._settings,
                    webhook,
                    delivery,
                    rows.get(delivery["seq"]),
                    identifiers,
                )

        keeping = asyncio.create_task(self._keep_lease(id))
        try:
            attempts = await asyncio.gather(*(one(d) for d in chosen))
        finally:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        await self._graph(store.record, [sending.outcome(a, self._settings) for a in attempts])
        for a in attempts:
            if a.outcome != "delivered":
                log.info(
                    "webhook delivery %s: %s",
                    a.delivery["id"],
                    a.error,
                    extra={
                        "fields": {"outcome": a.outcome, "attempts": a.delivery["attempts"] + 1}
                    },
                )
            if self._metrics is not None:
                self._metrics.attempted(a.outcome, a.delivery.get("recorded"))
        return True

    async def _release(self, webhook: str) -> None:
        try:
            await self._graph(store.release, webhook, self._owner)
        except IdgraphError as e:
            log.warning("could not release webhook %s: %s", webhook, e)

    async def _prune(self) -> None:
        before = datetime.now(UTC) - timedelta(days=self._settings.outbox_keep_days)
        floor = await self._graph(store.cursor_floor)
        await self._graph(store.prune, before)
        await self._graph(outbox.prune, before, floor)
