"""One attempt at one delivery, and what to do after it.

The attempt connects to the very address the guard checked (the URL's host is replaced by it,
with the ``Host`` header and TLS's server name kept), so a name that resolves elsewhere between
the check and the connection cannot redirect it. The whole attempt (name lookup, connection,
request, answer) is bounded by ``webhook_timeout``; at most 1 KB of a failing answer is read.
2xx is success; anything else, a timeout or a refused connection is a failure; redirects are
not followed.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from identity.config import Settings
from identity.store.outbox import OutboxRow
from identity.webhooks import payload, signing
from identity.webhooks.addresses import AddressGuard, RefusedAddress, Unresolved

_ERROR_BYTES = 1024


@dataclass
class Attempt:
    delivery: dict[str, Any]
    outcome: str = "retry"  # delivered | retry | failed
    code: int | None = None
    error: str | None = None


def backoff(attempts: int, base: float, most: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: exponential, capped,
    equal jitter (half fixed, half random: receivers that come back are not hit by every
    retry at once)."""
    delay: float = min(most, base * 2.0 ** max(0, attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


async def attempt(
    client: httpx.AsyncClient,
    guard: AddressGuard,
    settings: Settings,
    webhook: dict[str, Any],
    delivery: dict[str, Any],
    row: OutboxRow | None,
    identifiers: dict[str, list[str]] | None,
) -> Attempt:
    """Send one delivery once."""
    result = Attempt(delivery)
    if row is None:  # its entry was pruned: nothing left to say
        result.outcome, result.error = "failed", "the outbox entry is gone (pruned)"
        return result
    body = payload.encode(payload.document(row, identifiers))
    headers = signing.headers(webhook["secret"], delivery["id"], row.kind, body, time.time())
    try:
        async with asyncio.timeout(settings.webhook_timeout):
            url, host, extensions = await guard.pinned(webhook["url"])
            async with client.stream(
                "POST",
                url,
                content=body,
                headers={**headers, "Host": host},
                extensions=extensions,
            ) as response:
                result.code = response.status_code
                if 200 <= response.status_code < 300:
                    result.outcome = "delivered"
                    return result
                seen = b""
                async for chunk in response.aiter_bytes():
                    seen += chunk
                    if len(seen) >= _ERROR_BYTES:
                        break
                text = seen[:_ERROR_BYTES].decode(errors="replace")
                result.error = f"HTTP {response.status_code}: {text[:200]}"
    except RefusedAddress as e:
        result.outcome, result.error = "failed", str(e)
    except Unresolved as e:
        result.error = str(e)
    except TimeoutError:
        result.error = f"no answer within {settings.webhook_timeout:g}s (IDGRAPH_WEBHOOK_TIMEOUT)"
    except httpx.HTTPError as e:
        result.error = f"{type(e).__name__}: {e}"[:500]
    return result


def outcome(a: Attempt, settings: Settings) -> dict[str, Any]:
    """The record of an attempt: delivered, retry at a time, or failed once retries ran out."""
    now = datetime.now(UTC)
    next_at = None
    if a.outcome == "retry":
        first = a.delivery["first_at"]
        began = now if first is None else datetime.fromtimestamp(first / 1000, UTC)
        if now - began >= timedelta(hours=settings.webhook_retry_hours):
            a.outcome = "failed"
        else:
            wait = backoff(
                a.delivery["attempts"] + 1, settings.webhook_retry_base, settings.webhook_retry_max
            )
            next_at = now + timedelta(seconds=wait)
    return {
        "id": a.delivery["id"],
        "outcome": a.outcome,
        "at": now,
        "next_at": next_at,
        "code": a.code,
        "error": a.error,
    }
