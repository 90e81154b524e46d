"""The delivery worker: outbox entries to webhooks, at least once, in order per identity.

Each step: number what committed (:func:`identity.store.outbox.sequence`) and tell the
subscriptions; then for each enabled webhook whose lease this worker holds (one worker per
webhook across servers): queue deliveries for the new entries it subscribes to, look at the
first :data:`WINDOW` queued deliveries in outbox order and send those that are due and share
no identity (no segment) with an earlier queued one, up to ``webhook_concurrency`` at a time;
record each outcome. A delivery that fails waits ``base * 2^(attempt-1)`` seconds, at most
``webhook_retry_max``, with equal jitter (half fixed, half random: receivers that come back
are not hit by every retry at once), and holds back the later deliveries of its identities;
after ``webhook_retry_hours`` it is marked failed (and can be redelivered) and stops holding
them back. 2xx is success; anything else, a timeout or a refused connection is a failure;
redirects are not followed.

The worker runs in ``idgraph serve`` (an asyncio task) or alone (``idgraph webhook deliver``);
it only reads and writes the graph and calls receivers, so a slow or dead receiver never
slows a load or a resolve. Graph calls run in threads (the driver is synchronous).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from identity import __version__
from identity.context import ServiceContext
from identity.errors import IdgraphError
from identity.store import outbox
from identity.store import webhooks as store
from identity.webhooks import payload, signing
from identity.webhooks.addresses import AddressGuard, RefusedAddress
from identity.webhooks.metrics import WebhookMetrics

log = logging.getLogger("idgraph.webhooks")

WINDOW = 200
_FAN_OUT = 1000
_STATS_SECONDS = 10.0
_PRUNE_SECONDS = 3600.0


@dataclass
class _Attempt:
    delivery: dict[str, Any]
    outcome: str = "retry"  # delivered | retry | failed
    code: int | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class StepReport:
    sequenced: int = 0
    queued: int = 0
    attempts: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.sequenced or self.queued or self.attempts)


def sendable(queue: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """The deliveries that may go now: due, and sharing no key (identity or segment) with an
    earlier queued delivery of the window (sent, waiting or held back itself)."""
    held: set[str] = set()
    chosen = []
    for delivery in queue:
        keys = set(delivery["keys"] or [delivery["id"]])
        if not keys & held and delivery["next_at"] <= now_ms:
            chosen.append(delivery)
        held |= keys
    return chosen


def backoff(attempts: int, base: float, most: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped,
    equal jitter."""
    delay: float = min(most, base * 2.0 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


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
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._held: set[str] = set()
        self._stats_at = 0.0
        self._pruned_at = time.monotonic()
        self._client: httpx.AsyncClient | None = None

    async def _graph(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, self._services.graph, *args)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Step until stopped; a step that fails (Neo4j away) is logged and tried again."""
        timeout = httpx.Timeout(self._settings.webhook_timeout)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        headers = {"User-Agent": f"idgraph-webhooks/{__version__}"}
        async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
            self._client = client
            try:
                while not self._stopping.is_set():
                    self._wake.clear()  # a wake-up during the step is kept for after it
                    try:
                        report = await self.step()
                    except IdgraphError as e:
                        log.warning("webhook delivery step failed, retrying: %s", e)
                        report = StepReport()
                        await asyncio.sleep(1.0)
                    except Exception:  # a bug must not stop deliveries for good
                        log.exception("webhook delivery step failed, retrying")
                        report = StepReport()
                        await asyncio.sleep(1.0)
                    if not report.busy:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self._settings.outbox_poll)
            finally:
                await asyncio.gather(*(self._release(w) for w in sorted(self._held)))
                self._client = None

    async def _release(self, webhook: str) -> None:
        try:
            await self._graph(store.release, webhook, self._owner)
        except IdgraphError as e:
            log.warning("could not release webhook %s: %s", webhook, e)

    async def step(self) -> StepReport:
        """One look at the outbox and every webhook's queue."""
        report = StepReport()
        report.sequenced = await self._graph(outbox.sequence)
        if self._on_sequenced is not None:
            await self._on_sequenced(await self._graph(outbox.latest))
        if not self._deliver:
            return report
        webhooks = [w for w in await self._graph(store.list_all) if w["enabled"]]
        done = await asyncio.gather(*(self._serve(w["id"], report) for w in webhooks))
        report.queued = sum(done)
        if time.monotonic() - self._stats_at > _STATS_SECONDS or report.busy:
            await self._observe()
        if time.monotonic() - self._pruned_at > _PRUNE_SECONDS:
            await self._prune()
        return report

    async def _serve(self, id: str, report: StepReport) -> int:
        now = datetime.now(UTC)
        # a lease outlives the slowest step (a receiver's timeout), not much more: a worker
        # that died is replaced soon
        lease = timedelta(seconds=3 * self._settings.webhook_timeout + 5)
        webhook = await self._graph(store.claim, id, self._owner, now, now + lease)
        if webhook is None:
            self._held.discard(id)
            return 0
        self._held.add(id)
        queued: int = await self._graph(store.fan_out, id, self._owner, now, _FAN_OUT)
        queue = await self._graph(store.queue, id, WINDOW)
        chosen = sendable(queue, int(time.time() * 1000))
        if not chosen:
            return queued
        rows = await self._graph(outbox.read_numbered, [d["seq"] for d in chosen])
        identifiers = None
        if webhook["include_identifiers"]:
            ids = sorted(
                {i for d in chosen if d["seq"] in rows for i, _ in rows[d["seq"]].identities}
            )
            identifiers = await self._graph(
                outbox.identifiers_of, ids, payload.IDENTIFIERS_PER_IDENTITY
            )
        limit = asyncio.Semaphore(self._settings.webhook_concurrency)

        async def attempt(delivery: dict[str, Any]) -> _Attempt:
            async with limit:
                return await self._send(webhook, delivery, rows.get(delivery["seq"]), identifiers)

        attempts = await asyncio.gather(*(attempt(d) for d in chosen))
        await self._graph(store.record, [self._outcome(a) for a in attempts])
        for a in attempts:
            report.attempts[a.outcome] = report.attempts.get(a.outcome, 0) + 1
            if self._metrics is not None:
                self._metrics.attempted(a.outcome, a.delivery.get("recorded"))
        return queued

    async def _send(
        self,
        webhook: dict[str, Any],
        delivery: dict[str, Any],
        row: outbox.OutboxRow | None,
        identifiers: dict[str, list[str]] | None,
    ) -> _Attempt:
        result = _Attempt(delivery)
        if row is None:  # its entry was pruned: nothing left to say
            result.outcome, result.error = "failed", "the outbox entry is gone (pruned)"
            return result
        body = payload.encode(payload.document(row, identifiers))
        headers = signing.headers(webhook["secret"], delivery["id"], row.kind, body, time.time())
        started = time.perf_counter()
        assert self._client is not None
        try:
            await self._guard.check(webhook["url"])
            response = await self._client.post(webhook["url"], content=body, headers=headers)
        except RefusedAddress as e:
            result.outcome, result.error = "failed", str(e)
            return result
        except httpx.HTTPError as e:
            result.error = f"{type(e).__name__}: {e}"[:500] or type(e).__name__
        else:
            result.code = response.status_code
            if 200 <= response.status_code < 300:
                result.outcome = "delivered"
            else:
                result.error = f"HTTP {response.status_code}: {response.text[:200]}"
        result.seconds = time.perf_counter() - started
        return result

    def _outcome(self, a: _Attempt) -> dict[str, Any]:
        now = datetime.now(UTC)
        outcome = a.outcome
        next_at = None
        if outcome == "retry":
            first = a.delivery["first_at"]
            began = now if first is None else datetime.fromtimestamp(first / 1000, UTC)
            if now - began >= timedelta(hours=self._settings.webhook_retry_hours):
                outcome = "failed"
            else:
                wait = backoff(
                    a.delivery["attempts"] + 1,
                    self._settings.webhook_retry_base,
                    self._settings.webhook_retry_max,
                )
                next_at = now + timedelta(seconds=wait)
        if outcome != "delivered":
            log.info(
                "webhook delivery %s: %s",
                a.delivery["id"],
                a.error,
                extra={"fields": {"outcome": outcome, "attempts": a.delivery["attempts"] + 1}},
            )
        a.outcome = outcome
        return {
            "id": a.delivery["id"],
            "outcome": outcome,
            "at": now,
            "next_at": next_at,
            "code": a.code,
            "error": a.error,
        }

    async def _observe(self) -> None:
        self._stats_at = time.monotonic()
        if self._metrics is not None:
            self._metrics.observe(await self._graph(store.stats))

    async def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        before = datetime.now(UTC) - timedelta(days=self._settings.outbox_keep_days)
        floor = await self._graph(store.cursor_floor)
        await self._graph(store.prune, before)
        await self._graph(outbox.prune, before, floor)
