"""The receiver's aiohttp application: its route table and nothing of the bot.

The composition root passes in what the routes need (the webhook receiver, a health
source and a metrics source) and adds its own cleanup contexts; the receiver never
imports the bot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.metrics import Scrape
from receiver.metrics_format import encode
from receiver.server import REFUSALS
from receiver.webhook import WebhookReceiver

HealthSource = Callable[[], Awaitable[dict[str, Any]]]

WEBHOOK_PATH = "/webhook/gitea"
HEALTH_PATH = "/webhook/health"
METRICS_PATH = "/metrics"
# Headroom over the body limit so an oversized body reaches the handler's own 413 reason.
_READ_SLACK = 1024


def create_app(
    webhook: WebhookReceiver,
    health: HealthSource,
    max_body_bytes: int,
    metrics: Scrape | None = None,
) -> web.Application:
    """Build the receiver's routes; callers add lifecycle (cleanup contexts) on top.

    Without a metrics source there is no `/metrics` route.
    """
    app = web.Application(client_max_size=max_body_bytes + _READ_SLACK)
    app[REFUSALS] = webhook.refusals  # aiohttp's own refusals (bad HTTP) are counted with ours

    async def summarize_refusals(_: web.Application) -> None:
        webhook.close_logs()

    app.on_cleanup.append(summarize_refusals)

    async def health_view(_: web.Request) -> web.Response:
        return web.json_response(await health())

    app.router.add_post(WEBHOOK_PATH, webhook.handle)
    app.router.add_get(HEALTH_PATH, health_view)
    if metrics is not None:
        app.router.add_get(METRICS_PATH, _metrics_view(metrics))
    return app


def _metrics_view(
    scrape: Scrape,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics_view(request: web.Request) -> web.Response:
        # The scraper's Accept header picks the format: Prometheus text, or OpenMetrics.
        body, content_type = encode(await scrape(), request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics_view
