"""Private stays private, against the real Synapse: an admin's room and a room creator's.

Alice is in NOTIFIER_ADMINS; Bob created his own room (so he may command there) but is not
trusted. Both follow `acme/*`: a private repository's push reaches only Alice's room, a
public one both, and Bob's `!health` says nothing of Alice's room.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.room_driver import RoomDriver, notice_from
from tests.integration.conftest import (
    WEBHOOK_SECRET,
    Daemon,
    Homeserver,
    command,
    push,
    room_with_bot,
    subscribed_room,
)


@pytest.fixture
def admin_daemon(homeserver: Homeserver, tmp_path: Path) -> Iterator[Daemon]:
    bot = homeserver.bot
    process = Daemon(
        homeserver.url,
        bot.user_id,
        bot.password,
        WEBHOOK_SECRET,
        tmp_path,
        NOTIFIER_ADMINS=homeserver.alice.user_id,
    )
    process.start()
    yield process
    process.stop()


def _marker(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


async def test_private_pushes_reach_only_the_trusted_room_and_health_stays_in_its_room(
    homeserver: Homeserver, admin_daemon: Daemon, alice: RoomDriver, bob: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    alices = await subscribed_room(alice, bot, "acme/*")
    await command(alice, alices, bot, "!subscribe hr/*", "hr/*")
    bobs = await room_with_bot(bob, bot)
    reply = await command(bob, bobs, bot, "!subscribe acme/*", "Subscribed")
    assert reply.splitlines()[-1].startswith("This room will see public repositories only")
    listing = await command(bob, bobs, bot, "!subscriptions", "acme/*")
    assert "acme/* — all branches, default events, public only (added" in listing

    secret, public = _marker("private"), _marker("public")
    status, _, _ = await push(admin_daemon, "acme/secret", secret, private=True)
    assert status == 202
    status, _, _ = await push(admin_daemon, "acme/open", public)
    assert status == 202

    await alice.wait_for(alices, notice_from(bot, secret))
    await alice.wait_for(alices, notice_from(bot, public))
    # Each room gets its messages in acceptance order: once the later public push is in
    # Bob's room, the private one would have been there before it.
    await bob.wait_for(bobs, notice_from(bot, public))
    assert bob.events(bobs, notice_from(bot, secret)) == []

    health = await command(bob, bobs, bot, "!health", "Status:")
    assert alices not in health
    assert "hr/*" not in health
    assert "This room's subscriptions:\n• acme/*: last delivery" in health
    assert health.endswith("(public only)")

    full = admin_daemon.health()  # the test runs on loopback: the full snapshot
    assert {"repo": "acme/*", "rooms": sorted([alices, bobs])} in full["repos"]
    assert {"repo": "acme/*", "rooms": [bobs]} in full["public_only"]
    admin_view = await command(alice, alices, bot, "!health", "Status:")
    assert "• hr/*: last delivery" in admin_view


async def test_an_admin_taken_off_the_list_no_longer_lends_trust_after_a_restart(
    homeserver: Homeserver, admin_daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await subscribed_room(alice, bot, "acme/*")
    assert "public only" not in await command(alice, room, bot, "!subscriptions", "acme/*")
    admin_daemon.stop()
    del admin_daemon.env["NOTIFIER_ADMINS"]
    admin_daemon.start()
    # Not just "acme/*": until commands are recorded as handled, a restarted bot may answer
    # the `!subscribe` again (Synapse's cached /sync), and that reply names it too.
    listing = await command(alice, room, bot, "!subscriptions", "This room follows")
    assert "acme/* — all branches, default events, public only (added" in listing
    assert f"room {room}: 1 subscription(s) now see public repositories only" in (
        admin_daemon.log()
    )
