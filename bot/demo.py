"""`forge-notifier demo`: the whole product on a throwaway local homeserver, in one command.

Starts Synapse (from the `demo` extra) in a temporary directory, registers a bot and a
demo user, runs the daemon against it, has the demo user create a room, invite the bot and
subscribe it, sends a signed sample push, and prints the notice as it landed in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

import aiohttp
from pydantic import SecretStr

from bot.app import serve
from bot.room_driver import RoomDriver, notice_from
from bot.sample import post_delivery, sample_push, sign_delivery
from core.settings import Settings

log = logging.getLogger(__name__)

DEMO_REPO = "demo/widgets"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_demo(once: bool) -> int:
    """Entry point: owns the temporary directory and the Synapse process."""
    try:
        from bot.local_synapse import LocalSynapse
    except ImportError:
        print("The demo needs Synapse: pip install 'forge-notifier[demo]'")
        return 1
    base = Path(tempfile.mkdtemp(prefix="forge-notifier-demo-"))
    synapse = LocalSynapse(base / "synapse")
    try:
        print("Starting a throwaway Synapse on 127.0.0.1 …", flush=True)
        synapse.start()
        bot = synapse.register("notifier", secrets.token_hex(12))
        user = synapse.register("demo", secrets.token_hex(12))
        settings = Settings(
            homeserver=synapse.url,
            user_id=bot.user_id,
            password=SecretStr(bot.password),
            webhook_secret=SecretStr(secrets.token_hex(16)),
            listen_port=free_port(),
            state_dir=base / "state",
        )
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(_demo(settings, user.user_id, user.password, once))
        return 0
    finally:
        synapse.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _demo(settings: Settings, user_id: str, password: str, once: bool) -> int:
    stop = asyncio.Event()
    daemon = asyncio.create_task(serve(settings, stop))
    driver = RoomDriver(str(settings.homeserver), user_id, password)
    try:
        await _wait_listening(settings, daemon)
        await driver.login()
        body = await _walkthrough(settings, driver)
        print("\nThe notice as it landed in the room:\n")
        print("    " + body.replace("\n", "\n    "))
        if not once:
            print(keeps_running_note(settings))
            await asyncio.Event().wait()
        return 0
    finally:
        await driver.close()
        stop.set()
        await daemon


def keeps_running_note(settings: Settings) -> str:
    """Where to send webhooks; the secret goes to a file, never to the screen."""
    secret_file = _write_secret(settings)
    return (
        f"\nThe daemon keeps running: webhooks to {settings.webhook_url} "
        f"(the secret is in {secret_file}), "
        f"homeserver {settings.homeserver}. Ctrl-C stops it."
    )


def _write_secret(settings: Settings) -> Path:
    """The webhook secret for the operator's own tries, in a 0600 file: never on screen,
    where terminal logs and screen shares keep it."""
    path = settings.state_dir / "webhook-secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"{settings.secret}\n")
    return path


async def _walkthrough(settings: Settings, driver: RoomDriver) -> str:
    bot = str(settings.user_id)
    room = await driver.create_room(invite=[bot])
    print(f"Demo user {driver.user_id} created {room} and invited {bot}", flush=True)
    await driver.wait_for_member(room, bot)
    await driver.say(room, f"!subscribe {DEMO_REPO}")
    reply = await driver.wait_for(room, notice_from(bot, "Subscribed"))
    print(f"Bot: {reply['content']['body']}", flush=True)
    secret = settings.secret
    delivery = sign_delivery(sample_push(DEMO_REPO, commits=3), secret)
    async with aiohttp.ClientSession() as session:
        status, answer = await post_delivery(session, settings.webhook_url, delivery)
    print(f"Signed sample push → HTTP {status} {answer}", flush=True)
    notice = await driver.wait_for(room, notice_from(bot, f"[{DEMO_REPO}]"))
    return str(notice["content"]["body"])


async def _wait_listening(settings: Settings, daemon: asyncio.Task[None]) -> None:
    url = f"http://{settings.listen_host}:{settings.listen_port}/webhook/health"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            if daemon.done():
                daemon.result()  # re-raises the startup error
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("the daemon did not start listening")
