"""The composition root: the one place that knows every part and wires them together.

Lifecycle runs through aiohttp cleanup contexts, in start order store → Matrix client →
dispatcher and sender → sync. None of them waits for the homeserver: the store opens, the
listener is bound, and only then does the login start, in the background, so webhooks are
accepted at once even when the homeserver hangs. The background tasks restart in-process
when they die (bot/supervision.py); only refused credentials or a broken store stop the
daemon. aiohttp stops accepting and finishes in-flight requests first, then unwinds the
contexts in reverse: sync stops, the sender finishes the message it holds (bounded), the
client closes, and the store closes last.

Under systemd, `serve` reports READY=1 once the store is open, the listener is bound and
the first Matrix sync is done (EXTEND_TIMEOUT_USEC until then), and pings the watchdog from
the event loop after that.
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
    InviteMemberEvent,
    MegolmEvent,
    RoomGetStateResponse,
    RoomMessageText,
    RoomUpgradeEvent,
)
from prometheus_client import CollectorRegistry

from bot.commands import CommandContext, CommandRouter
from bot.dispatcher import Dispatcher
from bot.encryption import E2EStatus, client_config, crypto_store_dir, e2e_status, undecryptable
from bot.gitea_hooks import webhook_note
from bot.handled_commands import HandledCommands
from bot.health import Health
from bot.invites import InvitePolicy
from bot.login import HomeserverUnavailable, log_in
from bot.message import text_to_html
from bot.permissions import PermissionChecker
from bot.room_upgrades import RoomUpgrades
from bot.sender import Sender
from bot.supervision import Supervisor, cancel
from bot.sync_loop import SyncLoop
from bot.systemd_notify import SystemdNotifier
from core.metrics import Metrics, scraper
from core.settings import ConfigError, Settings
from core.store import Store
from core.trust import TrustPolicy
from core.wakeup import Wakeup
from receiver.app import create_app
from receiver.server import runner_options
from receiver.webhook import WebhookConfig, WebhookReceiver

log = logging.getLogger(__name__)

SENDER_DRAIN_S = 5.0
LOGIN_RETRY_CAP_S = 60.0
LOGIN_TIMEOUT_S = 60.0
# How long in-flight requests may take to finish on SIGTERM; with SENDER_DRAIN_S this is
# what the unit's TimeoutStopSec= must cover.
REQUEST_DRAIN_S = 10.0
# Set once the first Matrix sync is done: the last condition of readiness.
MATRIX_LIVE = web.AppKey("matrix_live", asyncio.Event)
# Set once the listener is bound: the login waits for it, so it never delays the receiver.
LISTENING = web.AppKey("listening", asyncio.Event)


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
    e2e = e2e_status(settings.encryption)
    client = AsyncClient(
        settings.homeserver,
        settings.user_id,
        store_path=str(crypto_store_dir(settings.state_dir)) if e2e.enabled else "",
        config=client_config(e2e),
    )
    # Its own registry, not prometheus-client's global one: several apps can coexist.
    metrics = Metrics(CollectorRegistry())

    async def resume_sending() -> None:
        await store.retry_now(time.time())
        outbox.set()

    sync = SyncLoop(client, store, on_reconnect=resume_sending)
    health = Health(store, sync, encryption=e2e.reason)
    secret = settings.secret
    ignored = frozenset(login.lower() for login in settings.ignore_pushers)
    config = WebhookConfig(secret, settings.max_body_bytes, ignored)
    receiver = WebhookReceiver(store, config, on_accepted=inbox.set, metrics=metrics)
    scrape = scraper(metrics, store, lambda: sync.state.connected)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app = create_app(receiver, health.snapshot, settings.max_body_bytes, scrape, token)
    app[MATRIX_LIVE] = sync.live
    app[LISTENING] = asyncio.Event()
    sender = Sender(
        client,
        store,
        outbox,
        metrics=metrics,
        share_with=settings.e2e_share_with,
        on_settled=inbox.set,
    )
    dispatcher = Dispatcher(
        store, inbox, outbox, settings.rate_limit_seconds, settings.retention_days * 86400
    )
    trust = TrustPolicy.of(settings.admins, settings.trusted_users)
    _register_callbacks(client, settings, store, sync, sender, health, outbox, trust)
    logged_in = asyncio.Event()
    tasks = Supervisor(on_fatal)
    app.cleanup_ctx.extend(
        [
            functools.partial(_store_ctx, store, tasks),
            functools.partial(_trust_ctx, store, trust),
            functools.partial(_matrix_ctx, client, settings, logged_in, tasks, e2e),
            functools.partial(_delivery_ctx, dispatcher, sender, outbox, sync.live, tasks),
            functools.partial(_sync_ctx, sync, logged_in, tasks),
        ]
    )
    return app


def _register_callbacks(
    client: AsyncClient,
    settings: Settings,
    store: Store,
    sync: SyncLoop,
    sender: Sender,
    health: Health,
    outbox: Wakeup,
    trust: TrustPolicy,
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

    note = None
    if settings.gitea_url and settings.gitea_token:
        token = settings.gitea_token.get_secret_value()
        note = functools.partial(webhook_note, settings.gitea_url, token, settings.webhook_url)

    def context(room_id: str, sender_id: str) -> CommandContext:
        return CommandContext(
            room_id, sender_id, store, settings.webhook_url, health.text, note, trust
        )

    permissions = PermissionChecker(settings.command_power_level, settings.admins, fetch_create)
    handled = HandledCommands(store)
    router = CommandRouter(
        settings.user_id, permissions, context, reply, sync.answers, handled.claim
    )
    invites = InvitePolicy(client, settings.user_id, settings.admins, settings.max_rooms)
    upgrades = RoomUpgrades(client, store, outbox)
    client.add_event_callback(_guarded(router.on_message), RoomMessageText)
    client.add_event_callback(_guarded(invites.on_invite), InviteMemberEvent)
    client.add_event_callback(_guarded(upgrades.on_tombstone), RoomUpgradeEvent)
    client.add_event_callback(_guarded(undecryptable(client)), MegolmEvent)


def _guarded(callback: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """nio runs callbacks inside sync(): one that raises would stop the sync loop."""

    @functools.wraps(callback)
    async def wrapper(*args: Any) -> None:
        try:
            await callback(*args)
        except Exception:
            log.exception("error in %s", callback.__qualname__)

    return wrapper


async def _store_ctx(store: Store, tasks: Supervisor, _: web.Application) -> AsyncIterator[None]:
    await store.open()
    log.info("store open at %s", store.path)
    checkpoints = tasks.start(store.checkpoint_forever, "wal-checkpoint")
    yield
    await cancel(checkpoints)
    await store.close()


async def _trust_ctx(store: Store, trust: TrustPolicy, _: web.Application) -> AsyncIterator[None]:
    """Trust follows the current lists: an author taken off them no longer lends it."""
    await store.revoke_trust(trust.is_trusted)
    yield


async def _matrix_ctx(
    client: AsyncClient,
    settings: Settings,
    logged_in: asyncio.Event,
    tasks: Supervisor,
    e2e: E2EStatus,
    app: web.Application,
) -> AsyncIterator[None]:
    """Log in in the background once the receiver listens; a refused login stops the daemon.

    Gitea does not retry, so the receiver never waits for the homeserver: a hung one only
    delays the bot, never the webhooks.
    """
    if e2e.enabled:
        log.info("end-to-end encryption on; crypto store in %s", client.store_path)
    else:
        log.warning("end-to-end encryption off (%s): encrypted rooms get no messages", e2e.reason)

    async def log_in_when_listening() -> None:
        await app[LISTENING].wait()
        await _keep_trying_log_in(client, settings, logged_in)

    task = tasks.start(log_in_when_listening, "login")
    yield
    await cancel(task)
    await client.close()


async def _try_log_in(client: AsyncClient, settings: Settings) -> bool:
    try:
        async with asyncio.timeout(LOGIN_TIMEOUT_S):
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
    live: asyncio.Event,
    tasks: Supervisor,
    _: web.Application,
) -> AsyncIterator[None]:
    """The sender starts once the first sync is done: an encrypted room must be known
    (members, devices) before anything can be encrypted for it."""
    routing = tasks.start(dispatcher.run, "dispatcher")
    sending = tasks.start(functools.partial(sender.run, live), "sender")
    yield
    await cancel(routing)
    if live.is_set():  # otherwise it never started: nothing in hand to finish
        sender.stop()
        await asyncio.wait({sending}, timeout=SENDER_DRAIN_S)
    await cancel(sending)


async def _sync_ctx(
    sync: SyncLoop, logged_in: asyncio.Event, tasks: Supervisor, _: web.Application
) -> AsyncIterator[None]:
    async def run() -> None:
        await logged_in.wait()
        await sync.run()

    task = tasks.start(run, "sync")
    yield
    await cancel(task)


async def serve(
    settings: Settings, stop: asyncio.Event, notifier: SystemdNotifier | None = None
) -> None:
    """Run the daemon until `stop` is set; startup and fatal errors propagate to the caller.

    `notifier` speaks to systemd (`Type=notify`); without one nothing is notified.
    """
    fatal: list[Exception] = []

    def on_fatal(exc: Exception) -> None:
        fatal.append(exc)
        stop.set()

    notifier = notifier or SystemdNotifier(None)
    app = build_app(settings, on_fatal)
    runner = web.AppRunner(
        app, handle_signals=False, shutdown_timeout=REQUEST_DRAIN_S, **runner_options(app)
    )
    keep_alive = asyncio.create_task(notifier.keep_alive(), name="systemd-keep-alive")
    try:
        # Inside the try: a failed startup must still close what already started.
        notifier.status("starting: opening the store")
        await runner.setup()
        site = web.TCPSite(runner, settings.listen_host, settings.listen_port)
        await site.start()
        address = f"http://{settings.listen_host}:{settings.listen_port}/webhook/gitea"
        log.info("receiver listening on %s", address)
        app[LISTENING].set()
        started = time.monotonic()
        await _report_ready(app[MATRIX_LIVE], stop, notifier, address, settings)
        await stop.wait()
        notifier.stopping()
        log.info("stopping after %.0f s", time.monotonic() - started)
    finally:
        await runner.cleanup()
        await cancel(keep_alive)
        notifier.close()
    if fatal:
        raise fatal[0]


async def _report_ready(
    live: asyncio.Event,
    stop: asyncio.Event,
    notifier: SystemdNotifier,
    address: str,
    settings: Settings,
) -> None:
    """READY=1 once the first sync is done (store and listener are up by now), unless
    the daemon is stopped first. Webhooks are accepted meanwhile either way."""
    notifier.status(f"accepting webhooks at {address}; waiting for {settings.homeserver}")
    waits = {asyncio.create_task(live.wait()), asyncio.create_task(stop.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waits:
            await cancel(waiter)
    if live.is_set() and not stop.is_set():
        notifier.ready(f"accepting webhooks at {address}; Matrix sync live")
        log.info("ready: Matrix sync live, receiver listening")
