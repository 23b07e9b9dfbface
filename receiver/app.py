"""The receiver's aiohttp application: its route table and nothing of the bot.

The composition root passes in what the routes need (the webhook receiver, a health
source and a metrics source) and adds its own cleanup contexts; the receiver never
imports the bot.

`GET /webhook/health` gives the full snapshot (every room's subscriptions, failures,
signature-failure remote addresses) only to loopback clients or with
`Authorization: Bearer $NOTIFIER_API_TOKEN`; anyone else gets `status`,
`matrix.connected` and `queue.pending`. "Loopback" is the TCP peer (`request.remote`),
never `X-Forwarded-For`: a header any client can send proves nothing. A reverse proxy on
the same host makes every proxied request loopback, so a loopback request that carries a
forwarding header (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`; Caddy and Traefik add
them by default, nginx when configured to) counts as from outside: the header's presence
can only take the full view away, never grant it. The proxy should still not forward the
health path (nginx adds no such header by default).
"""

from __future__ import annotations

import hmac
import ipaddress
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
    api_token: str | None = None,
) -> web.Application:
    """Build the receiver's routes; callers add lifecycle (cleanup contexts) on top.

    Without a metrics source there is no `/metrics` route; without an API token only
    loopback clients see the full health snapshot.
    """
    app = web.Application(client_max_size=max_body_bytes + _READ_SLACK)
    app[REFUSALS] = webhook.refusals  # aiohttp's own refusals (bad HTTP) are counted with ours

    async def summarize_refusals(_: web.Application) -> None:
        webhook.close_logs()

    app.on_cleanup.append(summarize_refusals)

    app.router.add_post(WEBHOOK_PATH, webhook.handle)
    app.router.add_get(HEALTH_PATH, health_view(health, api_token))
    if metrics is not None:
        app.router.add_get(METRICS_PATH, _metrics_view(metrics))
    return app


def health_view(
    health: HealthSource, api_token: str | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def view(request: web.Request) -> web.Response:
        snapshot = await health()
        local = is_loopback(request.remote) and not proxied(request)
        if local or has_token(request, api_token):
            return web.json_response(snapshot)
        return web.json_response(public_health(snapshot))

    return view


def public_health(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What anyone may know: up or not, linked or not, and how much is waiting."""
    return {
        "status": snapshot["status"],
        "matrix": {"connected": snapshot["matrix"]["connected"]},
        "queue": {"pending": snapshot["queue"]["pending"]},
    }


def is_loopback(remote: str | None) -> bool:
    """127.0.0.0/8 or ::1 (also as an IPv4-mapped address); a Unix socket has no address."""
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def proxied(request: web.Request) -> bool:
    """The request came through a reverse proxy, so its loopback peer says nothing."""
    return any(name in request.headers for name in FORWARDING_HEADERS)


def has_token(request: web.Request, api_token: str | None) -> bool:
    """`Authorization: Bearer TOKEN`, compared in constant time."""
    if not api_token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), api_token.encode())


def _metrics_view(
    scrape: Scrape,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def metrics_view(request: web.Request) -> web.Response:
        # The scraper's Accept header picks the format: Prometheus text, or OpenMetrics.
        body, content_type = encode(await scrape(), request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    return metrics_view
