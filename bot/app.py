"""The composition root: the one place that knows every part and wires them together.

Lifecycle runs through aiohttp cleanup contexts, in start order store → Matrix client →
dispatcher and sender → sync. aiohttp stops accepting and finishes in-flight requests
first, then unwinds the contexts in reverse: sync stops, the sender finishes the message
it holds (bounded), the client closes, and the store closes last.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from nio import (
    AsyncClient,
    AsyncClientConfig,
    InviteMemberEvent,
    RoomGetStateResponse,
    RoomMessageText,
    RoomUpgradeEvent,
)

from bot.commands import CommandContext, CommandRouter
from bot.dispatcher import Dispatcher
from bot.health import Health
from bot.invites import InvitePolicy
from bot.login import HomeserverUnavailable, log_in
from bot.message import text_to_html
from bot.permissions import PermissionChecker
from bot.room_upgrades import RoomUpgrades
from bot.sender import Sender
from bot.supervision import Supervisor, cancel
from bot.sync_loop import SyncLoop
from core.settings import ConfigError, Settings
from core.store import Store
from core.wakeup import Wakeup
from receiver.app import create_app
from receiver.webhook import WebhookConfig, WebhookReceiver

log = logging.getLogger(__name__)

SENDER_DRAIN_S = 5.0
LOGIN_RETRY_CAP_S = 60.0
FIRST_LOGIN_S = 10.0
LOGIN_TIMEOUT_S = 60.0


def build_app(settings: Settings, on_fatal: Callable[[Exception], None]) -> web.Application:
    """Wire every part of the daemon; nothing is opened or contacted until startup.

    `on_fatal` is called when the daemon cannot go on (credentials refused after startup).
    """
    problems = settings.problems_for_run()
    if problems:
        raise ConfigError("\n".join(problems))
    assert settings.homeserver and settings.user_id
    store = Store(settings.database_path)
    inbox, outbox = Wakeup(), Wakeup()
    client = AsyncClient(settings.homeserver, settings.user_id, config=_client_config())

    async def resume_sending() -> None:
        await store.retry_now(time.time())
        outbox.set()

    sync = SyncLoop(client, on_reconnect=resume_sending)
    health = Health(store, sync)
    secret = settings.secret
    ignored = frozenset(login.lower() for login in settings.ignore_pushers)
    receiver = WebhookReceiver(
        store, WebhookConfig(secret, settings.max_body_bytes, ignored), on_accepted=inbox.set
    )
    app = create_app(receiver, health.snapshot, settings.max_body_bytes)
    sender = Sender(client, store, outbox)
    dispatcher = Dispatcher(
        store, inbox, outbox, settings.rate_limit_seconds, settings.retention_days * 86400
    )
    _register_callbacks(client, settings, store, sync, sender, health, outbox)
    logged_in = asyncio.Event()
    tasks = Supervisor(on_fatal)
    app.cleanup_ctx.extend(
        [
            functools.partial(_store_ctx, store),
            functools.partial(_matrix_ctx, client, settings, logged_in, tasks),
            functools.partial(_delivery_ctx, dispatcher, sender, outbox, logged_in, tasks),
            functools.partial(_sync_ctx, sync, logged_in, tasks),
        ]
    )
    return app


def _client_config() -> AsyncClientConfig:
    # nio's own retry loops are off: the sender owns retries and backoff.
    return AsyncClientConfig(
        max_limit_exceeded=0, max_timeouts=0, store_sync_tokens=False, encryption_enabled=False
    )


def _register_callbacks(
    client: AsyncClient,
    settings: Settings,
    store: Store,
    sync: SyncLoop,
    sender: Sender,
    health: Health,
    outbox: Wakeup,
) -> None:
    assert settings.user_id

    async def fetch_create(room_id: str) -> dict[str, Any] | None:
        response = await client.room_get_state(room_id)
        if not isinstance(response, RoomGetStateResponse):
            return None
        return next((e for e in response.events if e.get("type") == "m.room.create"), None)

    async def reply(room_id: str, text: str) -> None:
        outcome = await sender.attempt(
            room_id, text, text_to_html(text), f"fn-r-{uuid.uuid4().hex}"
        )
        if not outcome.sent:
            log.warning("reply to %s not sent: %s", room_id, outcome.error)

    def context(room_id: str, sender_id: str) -> CommandContext:
        return CommandContext(room_id, sender_id, store, settings.webhook_url, health.text)

    permissions = PermissionChecker(settings.command_power_level, settings.admins, fetch_create)
    router = CommandRouter(settings.user_id, permissions, context, reply, sync.live)
    invites = InvitePolicy(client, settings.user_id, settings.admins)
    upgrades = RoomUpgrades(client, store, outbox)
    client.add_event_callback(_guarded(router.on_message), RoomMessageText)
    client.add_event_callback(_guarded(invites.on_invite), InviteMemberEvent)
    client.add_event_callback(_guarded(upgrades.on_tombstone), RoomUpgradeEvent)


def _guarded(callback: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """nio runs callbacks inside sync(): one that raises would stop the sync loop."""

    @functools.wraps(callback)
    async def wrapper(*args: Any) -> None:
        try:
            await callback(*args)
        except Exception:
            log.exception("error in %s", callback.__qualname__)

    return wrapper


async def _store_ctx(store: Store, _: web.Application) -> AsyncIterator[None]:
    await store.open()
    log.info("store open at %s", store.path)
    yield
    await store.close()


async def _matrix_ctx(
    client: AsyncClient,
    settings: Settings,
    logged_in: asyncio.Event,
    tasks: Supervisor,
    _: web.Application,
) -> AsyncIterator[None]:
    """Log in before listening when possible; a refused login stops startup.

    The first attempt is bounded: Gitea does not retry, so the receiver must not wait long
    for a slow homeserver before it listens.
    """
    task = None
    if await _try_log_in(client, settings, FIRST_LOGIN_S):
        logged_in.set()
    else:
        task = tasks.start(_keep_trying_log_in(client, settings, logged_in), "login")
    yield
    await cancel(task)
    await client.close()


async def _try_log_in(
    client: AsyncClient, settings: Settings, timeout_s: float = LOGIN_TIMEOUT_S
) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            how = await log_in(client, settings)
    except (HomeserverUnavailable, aiohttp.ClientError, TimeoutError) as exc:
        log.warning(
            "homeserver %s unreachable (%s); webhooks are still accepted, retrying",
            settings.homeserver,
            exc,
        )
        return False
    log.info(
        "logged in to %s as %s (device %s, %s)",
        settings.homeserver,
        client.user_id,
        client.device_id,
        how,
    )
    return True


async def _keep_trying_log_in(
    client: AsyncClient, settings: Settings, logged_in: asyncio.Event
) -> None:
    """Retry until logged in; a refused login (LoginError) ends the task and the daemon."""
    delay = 1.0
    while not await _try_log_in(client, settings):
        await asyncio.sleep(delay)
        delay = min(LOGIN_RETRY_CAP_S, delay * 2)
    logged_in.set()


async def _delivery_ctx(
    dispatcher: Dispatcher,
    sender: Sender,
    outbox: Wakeup,
    logged_in: asyncio.Event,
    tasks: Supervisor,
    _: web.Application,
) -> AsyncIterator[None]:
    routing = tasks.start(dispatcher.run(), "dispatcher")
    sending = tasks.start(sender.run(logged_in), "sender")
    yield
    await cancel(routing)
    if logged_in.is_set():  # otherwise it never started: nothing in hand to finish
        sender.stop()
        await asyncio.wait({sending}, timeout=SENDER_DRAIN_S)
    await cancel(sending)


async def _sync_ctx(
    sync: SyncLoop, logged_in: asyncio.Event, tasks: Supervisor, _: web.Application
) -> AsyncIterator[None]:
    async def run() -> None:
        await logged_in.wait()
        await sync.run()

    task = tasks.start(run(), "sync")
    yield
    await cancel(task)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the daemon until `stop` is set; startup and fatal errors propagate to the caller."""
    fatal: list[Exception] = []

    def on_fatal(exc: Exception) -> None:
        fatal.append(exc)
        stop.set()

    app = build_app(settings, on_fatal)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        # Inside the try: a failed startup must still close what already started.
        await runner.setup()
        site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
        await site.start()
        log.info(
            "receiver listening on http://%s:%d/webhook/gitea",
            settings.listen_host,
            settings.listen_port,
        )
        started = time.monotonic()
        await stop.wait()
        log.info("stopping after %.0f s", time.monotonic() - started)
    finally:
        await runner.cleanup()
    if fatal:
        raise fatal[0]
