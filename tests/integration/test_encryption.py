"""End-to-end encrypted rooms against a real Synapse: an encrypting client (as Element is)
talks to the bot; commands, replies and notices are all encrypted and decrypt on the other
side, and the bot keeps its device (and so its keys) across a restart."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.room_driver import Event, RoomDriver, notice_from
from tests.daemon_process import Daemon
from tests.integration.backlog import interrupt_backlog
from tests.integration.conftest import Homeserver, push


@pytest.fixture
async def carol(homeserver: Homeserver, tmp_path: Path) -> AsyncIterator[RoomDriver]:
    user = homeserver.synapse.register("carol", "carol-password-1")
    driver = RoomDriver(homeserver.url, user.user_id, user.password, tmp_path / "carol-crypto")
    await driver.login()
    yield driver
    await driver.close()


def decrypted_notice(bot: str, contains: str) -> Any:
    plain = notice_from(bot, contains)

    def match(event: Event) -> bool:
        return bool(event.get("decrypted")) and plain(event)

    return match


async def test_encrypted_room_commands_notices_and_restart(
    homeserver: Homeserver, daemon: Daemon, carol: RoomDriver
) -> None:
    bot, tag = homeserver.bot.user_id, uuid.uuid4().hex[:8]
    repo = f"secret{tag}/widgets"
    room = await carol.create_room(invite=[bot], encrypted=True)
    await carol.wait_for_member(room, bot)
    await carol.say(room, f"!subscribe {repo}")
    reply = await carol.wait_for(room, decrypted_notice(bot, "Subscribed"), timeout=30)
    assert reply["content"]["body"].startswith(f"Subscribed this room to {repo}")

    marker = f"enc-{tag}"
    await push(daemon, repo, marker)
    notice = await carol.wait_for(room, decrypted_notice(bot, marker), timeout=30)
    assert notice["content"]["body"].startswith(f"[{repo}] alice pushed 1 commit to main")
    assert notice["content"]["m.mentions"] == {}

    session = daemon.state_dir / "matrix-session.json"
    device = json.loads(session.read_text())["device_id"]
    assert daemon.stop() == 0
    daemon.start()
    assert json.loads(session.read_text())["device_id"] == device
    after = f"enc-after-{tag}"
    await push(daemon, repo, after)
    await carol.wait_for(room, decrypted_notice(bot, after), timeout=30)
    # This room's only: the bot account is also in other tests' encrypted rooms, whose
    # history was encrypted for devices of other state directories.
    undecryptable = [line for line in daemon.log().splitlines() if "cannot decrypt" in line]
    assert not [line for line in undecryptable if room in line]


async def test_sigkill_in_an_encrypted_room_loses_and_duplicates_nothing(
    homeserver: Homeserver, daemon: Daemon, carol: RoomDriver
) -> None:
    """The outbox's txn-id guarantee holds when every message is encrypted afresh."""
    bot, repo = homeserver.bot.user_id, f"encstop{uuid.uuid4().hex[:8]}/repo"
    room = await carol.create_room(invite=[bot], encrypted=True)
    await carol.wait_for_member(room, bot)
    await carol.say(room, f"!subscribe {repo}")
    await carol.wait_for(room, decrypted_notice(bot, "Subscribed"), timeout=30)
    _, _, before, drained = await interrupt_backlog(
        daemon, carol, bot, room, repo, signal.SIGKILL, total=60, seen=5
    )
    undecrypted = carol.events(room, lambda e: e.get("type") == "m.room.encrypted")
    assert undecrypted == []
    print(
        f"\nencrypted room, SIGKILL after {before} of 60: all 60 once each, "
        f"rest drained in {drained:.1f} s"
    )
