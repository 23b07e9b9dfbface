"""End-to-end fixtures: one real Synapse per test session, the daemon as a real process.

The daemon runs as `python -m bot run` with its configuration in the environment, exactly
as an operator runs it; a second Matrix user (RoomDriver) drives the rooms.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.local_synapse import LocalSynapse, RegisteredUser
from bot.room_driver import RoomDriver, notice_from
from bot.sample import SignedDelivery, post_delivery, sample_push, sign_delivery
from tests.daemon_process import Daemon

WEBHOOK_SECRET = "integration-secret-" + secrets.token_hex(8)
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is `integration`: `-m "not integration"` is the
    unit tier alone. (pytest hands this hook every collected item, not only this folder's.)"""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Homeserver:
    synapse: LocalSynapse
    bot: RegisteredUser
    alice: RegisteredUser
    bob: RegisteredUser

    @property
    def url(self) -> str:
        return self.synapse.url


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    synapse = LocalSynapse(tmp_path_factory.mktemp("synapse"))
    synapse.start()
    try:
        yield Homeserver(
            synapse,
            synapse.register("notifier", secrets.token_hex(8)),
            synapse.register("alice", secrets.token_hex(8)),
            synapse.register("bob", secrets.token_hex(8)),
        )
    finally:
        synapse.stop()


@pytest.fixture
def daemon(homeserver: Homeserver, tmp_path: Path) -> Iterator[Daemon]:
    bot = homeserver.bot
    # Alice is a trusted user (not an admin: permissions stay the room's): her
    # subscriptions see private repositories, as most tests' payloads do not say "public".
    trusted = {"NOTIFIER_TRUSTED_USERS": homeserver.alice.user_id}
    process = Daemon(homeserver.url, bot.user_id, bot.password, WEBHOOK_SECRET, tmp_path, **trusted)
    process.start()
    yield process
    process.stop()


async def _driver(homeserver: Homeserver, user: RegisteredUser) -> AsyncIterator[RoomDriver]:
    driver = RoomDriver(homeserver.url, user.user_id, user.password)
    await driver.login()
    yield driver
    await driver.close()


@pytest.fixture
async def alice(homeserver: Homeserver) -> AsyncIterator[RoomDriver]:
    async for driver in _driver(homeserver, homeserver.alice):
        yield driver


@pytest.fixture
async def bob(homeserver: Homeserver) -> AsyncIterator[RoomDriver]:
    async for driver in _driver(homeserver, homeserver.bob):
        yield driver


async def room_with_bot(
    driver: RoomDriver, bot_id: str, invite: tuple[str, ...] = (), version: str | None = None
) -> str:
    room = await driver.create_room(invite=[bot_id, *invite], room_version=version)
    await driver.wait_for_member(room, bot_id)
    return room


async def subscribed_room(driver: RoomDriver, bot_id: str, spec: str) -> str:
    """A new room with the bot in it, subscribed to `spec` by the room's creator."""
    room = await room_with_bot(driver, bot_id)
    await command(driver, room, bot_id, f"!subscribe {spec}", "Subscribed")
    return room


async def command(driver: RoomDriver, room: str, bot_id: str, text: str, expect: str) -> str:
    """Send a command and return the bot's reply body (the first new notice containing `expect`)."""
    mark = driver.mark(room)
    await driver.say(room, text)
    reply = await driver.wait_for(room, notice_from(bot_id, expect), since=mark)
    return str(reply["content"]["body"])


async def push(
    daemon: Daemon, repo: str, marker: str, secret: str | None = WEBHOOK_SECRET, **kw: Any
) -> tuple[int, dict[str, Any], SignedDelivery]:
    delivery = sign_delivery(sample_push(repo, message=marker, **kw), secret)
    return (*await post(daemon, delivery), delivery)


async def post(daemon: Daemon, delivery: SignedDelivery) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        return await post_delivery(session, daemon.webhook_url, delivery)
