"""The receiver's aiohttp application: its route table and nothing of the bot.

The composition root passes in what the routes need (the webhook receiver and a health
source) and adds its own cleanup contexts; the receiver never imports the bot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from receiver.webhook import WebhookReceiver

HealthSource = Callable[[], Awaitable[dict[str, Any]]]

WEBHOOK_PATH = "/webhook/gitea"
HEALTH_PATH = "/webhook/health"
# Headroom over the body limit so an oversized body reaches the handler's own 413 reason.
_READ_SLACK = 1024


def create_app(
    webhook: WebhookReceiver, health: HealthSource, max_body_bytes: int
) -> web.Application:
    """Build the receiver's routes; callers add lifecycle (cleanup contexts) on top."""
    app = web.Application(client_max_size=max_body_bytes + _READ_SLACK)

    async def health_view(_: web.Request) -> web.Response:
        return web.json_response(await health())

    app.router.add_post(WEBHOOK_PATH, webhook.handle)
    app.router.add_get(HEALTH_PATH, health_view)
    return app
