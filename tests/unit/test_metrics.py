"""GET /metrics: the counters exist from the start and move with what the daemon does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient, TestServer
from nio import AsyncClient, RoomSendError, RoomSendResponse
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bot.sample import sample_push, sign_delivery
from bot.sender import Sender
from core.metrics import Metrics, scraper
from core.records import NewDelivery, NewMessage
from core.store import Store
from core.wakeup import Wakeup
from receiver.app import create_app
from receiver.signature import sign
from receiver.webhook import WebhookConfig, WebhookReceiver
from tests.unit.fake_matrix import FakeClient
from tests.unit.routing import route_delivery

SECRET = "metrics-secret"
URL = "/webhook/gitea"
ROOM = "!room:example.org"


@dataclass
class Daemon:
    """The receiver on a real store, with metrics on a registry of its own."""

    client: TestClient
    store: Store
    metrics: Metrics
    homeserver_up: list[bool] = field(default_factory=lambda: [False])

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        response = await self.client.post(URL, data=body, headers=headers)
        return response.status

    async def scrape(self) -> dict[str, float]:
        """Every sample of the text format, keyed like `name{label="value"}`."""
        response = await self.client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        samples = {}
        for family in text_string_to_metric_families(await response.text()):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    metrics = Metrics(CollectorRegistry())
    receiver = WebhookReceiver(
        store, WebhookConfig(SECRET, 64 * 1024), on_accepted=lambda: None, metrics=metrics
    )
    up = [False]

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    app = create_app(receiver, health, 64 * 1024, scraper(metrics, store, lambda: up[0]))
    client = TestClient(TestServer(app))
    await client.start_server()
    yield Daemon(client, store, metrics, up)
    await client.close()
    await store.close()


def deliveries(samples: dict[str, float], result: str) -> float:
    return samples[f'forge_notifier_deliveries_total{{result="{result}"}}']


async def test_every_series_is_exposed_before_anything_happens(daemon: Daemon) -> None:
    samples = await daemon.scrape()
    for result in ("accepted", "duplicate", "bad_signature", "invalid", "ignored"):
        assert deliveries(samples, result) == 0
    for result in ("sent", "retried", "failed"):
        assert samples[f'forge_notifier_messages_total{{result="{result}"}}'] == 0
    assert samples["forge_notifier_queue_pending"] == 0
    assert samples["forge_notifier_queue_oldest_pending_age_seconds"] == 0
    assert samples["forge_notifier_accept_to_sent_seconds_count"] == 0
    assert samples["forge_notifier_homeserver_up"] == 0


async def test_accepted_rejected_and_duplicate_deliveries_move_their_counters(
    daemon: Daemon,
) -> None:
    signed = sign_delivery(sample_push(), SECRET, delivery_id="m-1")
    forged = sign_delivery(sample_push(message="forged"), "not-the-secret")

    assert await daemon.post(signed.body, signed.headers) == 202
    assert await daemon.post(signed.body, signed.headers) == 200
    assert await daemon.post(forged.body, forged.headers) == 401
    assert await daemon.post(b"{", {**signed.headers, "Content-Type": "text/plain"}) == 415

    samples = await daemon.scrape()
    assert deliveries(samples, "accepted") == 1
    assert deliveries(samples, "duplicate") == 1
    assert deliveries(samples, "bad_signature") == 1
    assert deliveries(samples, "unsupported_type") == 1
    assert deliveries(samples, "invalid") == 0
    # Nothing dispatches in this test: the accepted push is still pending.
    assert samples["forge_notifier_queue_pending"] == 1


async def test_invalid_ignored_and_too_large_are_counted(daemon: Daemon) -> None:
    bad_json = b"not json"
    headers = sign_delivery(sample_push(), SECRET).headers
    headers = {**headers, "X-Gitea-Signature": sign(SECRET, bad_json), "X-Hub-Signature-256": ""}
    assert await daemon.post(bad_json, headers) == 400
    starred = sign_delivery({"action": "created", "repository": {}}, SECRET, event="star")
    assert await daemon.post(starred.body, starred.headers) == 202
    huge = sign_delivery(sample_push(message="x" * 70_000), SECRET)
    assert await daemon.post(huge.body, huge.headers) == 413

    samples = await daemon.scrape()
    assert deliveries(samples, "invalid") == 1
    assert deliveries(samples, "ignored") == 1
    assert deliveries(samples, "too_large") == 1


async def test_homeserver_up_is_read_at_scrape_time(daemon: Daemon) -> None:
    assert (await daemon.scrape())["forge_notifier_homeserver_up"] == 0
    daemon.homeserver_up[0] = True
    assert (await daemon.scrape())["forge_notifier_homeserver_up"] == 1


async def test_sender_counts_sent_retried_failed_and_times_acceptance_to_sent(
    daemon: Daemon,
) -> None:
    store = daemon.store
    accepted_at = 1_000.0
    now = [accepted_at + 7.0]
    new = NewDelivery("s-1", "push", "sha", "acme/widgets", "{}", accepted_at, "pending")
    assert await store.record_delivery(new)
    (row,) = await store.pending_deliveries()
    message = NewMessage(ROOM, "acme/widgets", "hello", "<p>hello</p>")
    await route_delivery(store, row.id, [message, message], "routed", None, now=accepted_at)
    client = FakeClient(
        script={
            ROOM: [
                RoomSendError("busy", "M_UNKNOWN", retry_after_ms=None),
                RoomSendResponse("$one", ROOM),
                RoomSendError("no", "M_FORBIDDEN"),
            ]
        }
    )
    sender = Sender(
        cast(AsyncClient, client), store, Wakeup(), clock=lambda: now[0], metrics=daemon.metrics
    )
    await sender.send_due()  # first row: a 5xx-like error, retried later
    now[0] += 3600
    await sender.send_due()  # first row sent; the second waited behind it
    await sender.send_due()  # second row: forbidden, failed for good

    samples = await daemon.scrape()
    assert samples['forge_notifier_messages_total{result="retried"}'] == 1
    assert samples['forge_notifier_messages_total{result="sent"}'] == 1
    assert samples['forge_notifier_messages_total{result="failed"}'] == 1
    assert samples["forge_notifier_accept_to_sent_seconds_count"] == 1
    assert samples["forge_notifier_accept_to_sent_seconds_sum"] == 3607.0
