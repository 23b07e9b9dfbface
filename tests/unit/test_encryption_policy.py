"""The encryption policy's decisions, without a homeserver: with nio's real Olm machine,
who would receive the room key of the bot's next encrypted message."""

from __future__ import annotations

from pathlib import Path

import vodozemac
from nio import AsyncClient, MatrixRoom
from nio.crypto import OlmDevice

from bot.encryption import (
    SHARE_WITH_ALL,
    SHARE_WITH_HOMESERVER,
    apply_share_policy,
    client_config,
    e2e_status,
)

BOT = "@notifier:example.org"
ROOM = "!r:example.org"
ALICE, MALLORY = "@alice:example.org", "@mallory:elsewhere.net"


def test_encryption_is_on_when_wanted_and_available() -> None:
    assert e2e_status(True).enabled  # vodozemac is a runtime dependency
    off = e2e_status(False)
    assert (off.enabled, off.reason) == (False, "turned off by NOTIFIER_ENCRYPTION=false")


def bot_in_room(store: Path, members: list[str]) -> AsyncClient:
    """The bot's client with its crypto store, in a room with `members`, each of whom has
    one device with which the bot has an Olm session (as after a key claim)."""
    client = AsyncClient(
        "http://127.0.0.1:9", store_path=str(store), config=client_config(e2e_status(True))
    )
    client.restore_login(BOT, "BOTDEVICE", "unused-token")  # loads the crypto store
    room = MatrixRoom(ROOM, BOT)
    for user_id in members:
        room.add_member(user_id, None, None)
        account = vodozemac.Account()
        account.generate_one_time_keys(1)
        curve = account.curve25519_key.to_base64()
        keys = {"ed25519": account.ed25519_key.to_base64(), "curve25519": curve}
        client.device_store.add(OlmDevice(user_id, "PHONE", keys))
        one_time_key = next(iter(account.one_time_keys.values())).to_base64()
        client.olm.create_session(one_time_key, curve)
    client.rooms[ROOM] = room
    return client


def room_key_recipients(client: AsyncClient) -> set[str]:
    """The users whose devices nio would send the room key to (as `room_send` does)."""
    users = list(client.rooms[ROOM].users)
    _, to_device = client.olm.share_group_session(ROOM, users, ignore_unverified_devices=True)
    return set(to_device["messages"])


def test_homeserver_policy_keeps_the_room_key_from_other_servers(tmp_path: Path) -> None:
    client = bot_in_room(tmp_path, [ALICE, MALLORY])
    apply_share_policy(client, ROOM, SHARE_WITH_HOMESERVER)
    apply_share_policy(client, ROOM, SHARE_WITH_HOMESERVER)  # before every send: idempotent
    assert room_key_recipients(client) == {ALICE}


def test_default_policy_shares_the_room_key_with_every_member(tmp_path: Path) -> None:
    client = bot_in_room(tmp_path, [ALICE, MALLORY])
    apply_share_policy(client, ROOM, SHARE_WITH_ALL)
    assert room_key_recipients(client) == {ALICE, MALLORY}
