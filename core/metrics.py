"""Prometheus metrics: what the receiver and the sender count, and gauges read at scrape time.

Every metric lives on a CollectorRegistry that the composition root creates and passes
down, never on prometheus-client's global default registry: a test (or a process) can
build several daemons, each with its own counters.

Queue gauges are read from the store when Prometheus scrapes, not kept up to date by the
code that changes the queue: the store is the truth, and a gauge updated on every change
would be one more thing to get wrong after a crash.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from core import diagnostics
from core.records import QueueStats
from core.store import Store

PREFIX = "forge_notifier"
DELIVERY_RESULTS = (
    diagnostics.ACCEPTED,
    diagnostics.DUPLICATE,
    diagnostics.IGNORED,
    diagnostics.BAD_SIGNATURE,
    diagnostics.INVALID,
    diagnostics.TOO_LARGE,
    diagnostics.UNSUPPORTED_TYPE,
    diagnostics.STORE_ERROR,
    diagnostics.BUSY,
)
SENT, RETRIED, FAILED = "sent", "retried", "failed"
MESSAGE_RESULTS = (SENT, RETRIED, FAILED)
# From "a second" to "the homeserver was down for an hour"; rate-limited (coalesced)
# messages land in the minute buckets on purpose.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)


class Metrics:
    """The daemon's metrics on one registry; label values are created up front so every
    series exists (at 0) from the first scrape, which alerting rules need."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter(
            f"{PREFIX}_deliveries",
            "Webhook requests by result (accepted, duplicate, bad_signature, ...).",
            ["result"],
            registry=registry,
        )
        self.messages = Counter(
            f"{PREFIX}_messages",
            "Outbox send attempts by outcome: sent, retried (will try again), failed (for good).",
            ["result"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_accept_to_sent_seconds",
            "From the webhook's acceptance to the homeserver accepting the message.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._gauges(registry)
        for result in DELIVERY_RESULTS:
            self.deliveries.labels(result)
        for result in MESSAGE_RESULTS:
            self.messages.labels(result)
        ProcessCollector(registry=registry)

    def _gauges(self, registry: CollectorRegistry) -> None:
        self.queue_pending = Gauge(
            f"{PREFIX}_queue_pending",
            "Deliveries not yet routed plus messages not yet sent.",
            registry=registry,
        )
        self.queue_oldest_age = Gauge(
            f"{PREFIX}_queue_oldest_pending_age_seconds",
            "Age of the oldest pending delivery or message (0 when the queue is empty).",
            registry=registry,
        )
        self.queue_held = Gauge(
            f"{PREFIX}_queue_held",
            "Events held back by the rate limit for a coalesced message.",
            registry=registry,
        )
        self.homeserver_up = Gauge(
            f"{PREFIX}_homeserver_up",
            "1 when the last Matrix sync succeeded, else 0.",
            registry=registry,
        )

    def delivery(self, result: str) -> None:
        self.deliveries.labels(result).inc()

    def message(self, result: str) -> None:
        self.messages.labels(result).inc()

    def observe_queue(self, stats: QueueStats) -> None:
        self.queue_pending.set(stats.pending)
        self.queue_oldest_age.set(stats.oldest_age_s or 0.0)
        self.queue_held.set(stats.held)


Scrape = Callable[[], Awaitable[CollectorRegistry]]


def scraper(
    metrics: Metrics,
    store: Store,
    homeserver_up: Callable[[], bool],
    clock: Callable[[], float] = time.time,
) -> Scrape:
    """What `GET /metrics` calls: refresh the scrape-time gauges, return the registry."""

    async def scrape() -> CollectorRegistry:
        metrics.observe_queue(await store.queue_stats(clock()))
        metrics.homeserver_up.set(1 if homeserver_up() else 0)
        return metrics.registry

    return scrape
