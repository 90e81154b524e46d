"""Signing deliveries, and checking a signature (what a receiver does; a receiver written in
Python may import :func:`verify`).

A delivery carries ``X-Idgraph-Timestamp: <unix seconds>`` and ``X-Idgraph-Signature:
sha256=<hex>``, the HMAC-SHA256, keyed with the webhook's secret, of the timestamp, a dot and
the raw body: the signature covers the time, so a captured delivery replayed later fails a
receiver's check of the timestamp's age (five minutes by default), and the body cannot be
changed. The scheme is Stripe's and Svix's, with the header GitHub's users know.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE = "X-Idgraph-Signature"
TIMESTAMP = "X-Idgraph-Timestamp"
DELIVERY = "X-Idgraph-Delivery"
KIND = "X-Idgraph-Event"
TOLERANCE = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed with the secret>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def headers(secret: str, delivery: str, kind: str, body: bytes, now: float) -> dict[str, str]:
    """The headers of one attempt (signed at the time of sending)."""
    timestamp = int(now)
    return {
        "Content-Type": "application/json",
        SIGNATURE: sign(secret, timestamp, body),
        TIMESTAMP: str(timestamp),
        DELIVERY: delivery,
        KIND: kind,
    }


def verify(
    secret: str,
    given: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``given`` (the request's headers, any case) sign ``body`` with ``secret`` at a
    time within ``tolerance`` seconds of now. Compares in constant time."""
    lowered = {k.lower(): v for k, v in given.items()}
    signature = lowered.get(SIGNATURE.lower(), "")
    stamp = lowered.get(TIMESTAMP.lower(), "")
    if not stamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(stamp), body), signature)
