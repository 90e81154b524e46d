"""Prometheus metrics of webhook delivery (registered on the API's registry)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries = Gauge(
            "idgraph_webhook_deliveries",
            "Webhook deliveries by status (pending, delivered, failed).",
            ["status"],
            registry=registry,
        )
        self.retry_queue = Gauge(
            "idgraph_webhook_retry_queue",
            "Pending deliveries that failed at least once and wait for a retry.",
            registry=registry,
        )
        self.oldest = Gauge(
            "idgraph_webhook_oldest_undelivered_seconds",
            "Age of the oldest change not yet delivered to every webhook (0: none).",
            registry=registry,
        )
        self.unsequenced = Gauge(
            "idgraph_outbox_unsequenced",
            "Outbox entries committed but not numbered yet.",
            registry=registry,
        )
        self.attempts = Counter(
            "idgraph_webhook_attempts",
            "Delivery attempts by outcome (delivered, retry, failed).",
            ["outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "idgraph_webhook_delivery_seconds",
            "From a change's commit to its delivery's success.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def attempted(self, outcome: str, recorded_ms: int | None) -> None:
        self.attempts.labels(outcome).inc()
        if outcome == "delivered" and recorded_ms is not None:
            self.latency.observe(max(0.0, time.time() - recorded_ms / 1000))

    def observe(self, stats: dict[str, Any]) -> None:
        for status in ("pending", "delivered", "failed"):
            self.deliveries.labels(status).set(int(stats[status] or 0))
        self.retry_queue.set(int(stats["retrying"] or 0))
        self.unsequenced.set(int(stats["unsequenced"] or 0))
        oldest = [t for t in (stats["oldest"], stats["oldest_unsequenced"]) if t is not None]
        self.oldest.set(max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0)
