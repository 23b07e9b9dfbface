"""The core promise against a real Synapse: signed pushes land once in subscribed rooms."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiohttp
import pytest

from bot.room_driver import RoomDriver, notice_from
from bot.sample import sign_delivery
from tests.integration.conftest import (
    WEBHOOK_SECRET,
    Daemon,
    Homeserver,
    command,
    post,
    push,
    room_with_bot,
    subscribed_room,
)

FIRST_LINE = "[acme/widgets] alice pushed 1 commit to main"


def _marker() -> str:
    return f"marker-{uuid.uuid4().hex[:12]}"


async def _room_version(driver: RoomDriver, room: str) -> str:
    response = await driver.client.room_get_state_event(room, "m.room.create")
    return str(response.content["room_version"])  # type: ignore[union-attr]


async def test_invite_then_moderator_subscribes_in_default_v12_room(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver, bob: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await room_with_bot(alice, bot, invite=(homeserver.bob.user_id,))
    assert await _room_version(alice, room) == "12"
    # Alice created the room: in v12 she is a creator, absent from the power-level list.
    reply = await command(alice, room, bot, "!subscribe acme/widgets", "acme/widgets")
    assert reply.startswith("Subscribed this room to acme/widgets (all branches, default events).")
    assert daemon.webhook_url in reply

    await bob.join(room)
    refusal = await command(bob, room, bot, "!subscribe acme/other", "power level")
    assert refusal == "!subscribe needs power level 50 in this room (you have 0)."

    repos = daemon.health()["repos"]
    assert {"repo": "acme/widgets", "rooms": [room]} in repos
    assert all(entry["repo"] != "acme/other" for entry in repos)


async def test_power_levels_decide_in_a_v11_room(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver, bob: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await room_with_bot(alice, bot, invite=(homeserver.bob.user_id,), version="11")
    await bob.join(room)
    refused = await command(bob, room, bot, "!subscribe acme/gadgets", "power level")
    assert "needs power level 50" in refused
    await alice.set_power_level(room, homeserver.bob.user_id, 50)
    await alice.wait_for(
        room,
        lambda e: (
            e.get("type") == "m.room.power_levels"
            and e["content"].get("users", {}).get(homeserver.bob.user_id) == 50
        ),
    )
    reply = await command(bob, room, bot, "!subscribe acme/gadgets", "acme/gadgets")
    assert reply.startswith("Subscribed this room to acme/gadgets (")
    listing = await command(bob, room, bot, "!subscriptions", "acme/gadgets")
    assert "acme/gadgets" in listing


async def test_push_lands_once_despite_retry_and_replay(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await subscribed_room(alice, bot, "acme/widgets")
    marker = _marker()
    status, answer, delivery = await push(daemon, "acme/widgets", marker)
    assert (status, answer["status"]) == (202, "accepted")

    notice = await alice.wait_for(room, notice_from(bot, marker))
    content = notice["content"]
    assert content["body"].startswith(FIRST_LINE)
    assert content["format"] == "org.matrix.custom.html"
    assert marker in content["formatted_body"]
    assert content["m.mentions"] == {}

    assert (await post(daemon, delivery))[1] == {"status": "duplicate"}  # same delivery id
    replay = sign_delivery(json.loads(delivery.body), WEBHOOK_SECRET)
    assert (await post(daemon, replay))[1] == {"status": "duplicate"}  # Gitea's "Replay"

    # A later push arrives after anything the duplicates could have caused (per-room order).
    later = _marker()
    await push(daemon, "acme/widgets", later)
    await alice.wait_for(room, notice_from(bot, later))
    assert len(alice.events(room, notice_from(bot, marker))) == 1


async def test_bad_signature_and_junk_post_nothing(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await subscribed_room(alice, bot, "acme/widgets")
    forged = _marker()
    status, answer, _ = await push(daemon, "acme/widgets", forged, secret="wrong-secret")
    assert status == 401
    assert "signature" in answer["reason"]

    junk = sign_delivery({"not": "a push"}, WEBHOOK_SECRET)
    status, answer = await post(daemon, junk)
    assert status == 400
    assert daemon.health()["status"] == "ok"  # still answering, and not degraded by them

    genuine = _marker()
    await push(daemon, "acme/widgets", genuine)
    await alice.wait_for(room, notice_from(bot, genuine))
    assert alice.events(room, notice_from(bot, forged)) == []


async def test_organisation_wildcard_and_unsubscribe(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await subscribed_room(alice, bot, "Umbrella/*")
    kept = f"kept{uuid.uuid4().hex[:8]}/repo"
    await command(alice, room, bot, f"!subscribe {kept}", "Subscribed")
    marker = _marker()
    await push(daemon, "umbrella/anything", marker)
    await alice.wait_for(room, notice_from(bot, marker))
    reply = await command(alice, room, bot, "!unsubscribe umbrella/*", "Unsubscribed")
    assert reply == "Unsubscribed this room from umbrella/*."

    # A push the room no longer wants, then one for the subscription it kept: a room's
    # messages go out in order, so once the second is there the first would be too.
    unwanted, after = _marker(), _marker()
    await push(daemon, "umbrella/another", unwanted)
    await push(daemon, kept, after)
    await alice.wait_for(room, notice_from(bot, after))
    assert alice.events(room, notice_from(bot, unwanted)) == []
    unknown = await command(alice, room, bot, "!frobnicate", "Unknown command")
    assert "!help" in unknown


async def test_restart_keeps_subscriptions_and_session(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await subscribed_room(alice, bot, "acme/widgets")
    session_file = daemon.state_dir / "matrix-session.json"
    before = json.loads(session_file.read_text())
    devices = await _device_count(homeserver, before["access_token"])

    assert daemon.stop() == 0  # SIGTERM: a clean exit
    daemon.start()

    after = json.loads(session_file.read_text())
    assert after == before  # same token and device: no fresh login
    log = daemon.log()
    assert (log.count(", password)"), log.count(", restored)")) == (1, 1)  # one login in all
    assert await _device_count(homeserver, after["access_token"]) == devices  # no new device
    marker = _marker()
    await push(daemon, "acme/widgets", marker)
    await alice.wait_for(room, notice_from(bot, marker))


async def _device_count(homeserver: Homeserver, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{homeserver.url}/_matrix/client/v3/devices", headers=headers) as response,
    ):
        return len((await response.json())["devices"])


def test_refused_credentials_stop_startup_with_exit_1(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    bot = homeserver.bot
    daemon = Daemon(homeserver.url, bot.user_id, "wrong-password", WEBHOOK_SECRET, tmp_path)
    with pytest.raises(RuntimeError, match="daemon exited 1"):
        daemon.start()
    assert "login refused" in daemon.log()
    assert "wrong-password" not in daemon.log()


async def test_branch_filter_keeps_other_branches_out(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await room_with_bot(alice, bot)
    await command(alice, room, bot, "!subscribe acme/widgets --branch main", "branch main")
    on_dev, on_main = _marker(), _marker()
    assert (await push(daemon, "acme/widgets", on_dev, branch="dev"))[0] == 202
    assert (await push(daemon, "acme/widgets", on_main, branch="main"))[0] == 202
    await alice.wait_for(room, notice_from(bot, on_main))
    assert alice.events(room, notice_from(bot, on_dev)) == []


async def test_access_token_login_is_used_and_kept(
    homeserver: Homeserver, tmp_path: Path, alice: RoomDriver
) -> None:
    bot = homeserver.bot
    token, device = await _fresh_token(homeserver)
    daemon = Daemon(
        homeserver.url, bot.user_id, "", WEBHOOK_SECRET, tmp_path, NOTIFIER_ACCESS_TOKEN=token
    )
    del daemon.env["NOTIFIER_PASSWORD"]
    daemon.start()
    try:
        session = json.loads((daemon.state_dir / "matrix-session.json").read_text())
        assert (session["device_id"], session["access_token"]) == (device, token)
        assert ", access token)" in daemon.log()
        assert token not in daemon.log()
        room = await room_with_bot(alice, bot.user_id)
        reply = await command(alice, room, bot.user_id, "!health", "Homeserver")
        assert "Homeserver: connected" in reply
    finally:
        daemon.stop()


async def _fresh_token(homeserver: Homeserver) -> tuple[str, str]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": homeserver.bot.user_id},
        "password": homeserver.bot.password,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{homeserver.url}/_matrix/client/v3/login", json=body) as response,
    ):
        answer = await response.json()
    return answer["access_token"], answer["device_id"]
