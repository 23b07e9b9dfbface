"""A receiver on a real aiohttp server on 127.0.0.1, run as the daemon runs it, for raw sockets.

The server gets the daemon's own runner options (`receiver.server.runner_options`) with
timeouts shortened so a test of "the server closes a stalled connection" takes well under
a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from core.metrics import Metrics
from core.store import Store
from receiver.app import create_app
from receiver.server import ServerLimits, runner_options
from receiver.webhook import WebhookConfig, WebhookReceiver

SECRET = "hostile-secret"
FAST = ServerLimits(head_timeout_s=0.3, lingering_s=0.2)
# Long enough never to fire by accident, short enough that a hang fails the test quickly.
GUARD_S = 10.0


@dataclass
class Served:
    port: int
    receiver: WebhookReceiver
    store: Store

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def exchange(self, raw: bytes) -> bytes:
        """Send raw bytes, read until the server closes the connection."""
        reader, writer = await self.connect()
        writer.write(raw)
        await writer.drain()
        try:
            return await read_until_closed(reader)
        finally:
            writer.close()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends before closing; the guard only turns a hang into a failure."""
    async with asyncio.timeout(GUARD_S):
        return await reader.read()


def webhook_config(**overrides: Any) -> WebhookConfig:
    fields: dict[str, Any] = {"secret": SECRET, "max_body_bytes": 64 * 1024}
    return WebhookConfig(**(fields | overrides))


@asynccontextmanager
async def serving(
    store: Store, config: WebhookConfig | None = None, limits: ServerLimits = FAST
) -> AsyncIterator[Served]:
    metrics = Metrics(CollectorRegistry())
    receiver = WebhookReceiver(store, config or webhook_config(), lambda: None, metrics)

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    async def scrape() -> CollectorRegistry:
        return metrics.registry

    app = create_app(receiver, health, receiver_limit(config), scrape)
    runner = web.AppRunner(app, handle_signals=False, **runner_options(app, limits))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield Served(runner.addresses[0][1], receiver, store)
    finally:
        await runner.cleanup()


def receiver_limit(config: WebhookConfig | None) -> int:
    return (config or webhook_config()).max_body_bytes


def post_head(length: int, extra: str = "") -> bytes:
    """The head of a JSON webhook POST declaring `length` body bytes."""
    return (
        "POST /webhook/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Gitea-Event: push\r\nContent-Length: {length}\r\n{extra}\r\n"
    ).encode()
