"""The invite policy: the bot's own homeserver and admins may pull it into rooms."""

from __future__ import annotations

from typing import Any

from nio import InviteMemberEvent, JoinedRoomsResponse, MatrixRoom

from bot.invites import InvitePolicy

BOT = "@notifier:example.org"


class FakeClient:
    def __init__(self, joined: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.joined = [f"!joined{n}:x" for n in range(joined)]
        self.rooms: dict[str, Any] = {}

    async def joined_rooms(self) -> JoinedRoomsResponse:
        return JoinedRoomsResponse(list(self.joined))

    async def join(self, room_id: str) -> Any:
        self.calls.append(("join", room_id))
        self.joined.append(room_id)

    async def room_leave(self, room_id: str) -> Any:
        self.calls.append(("leave", room_id))


def invite(sender: str, state_key: str = BOT, membership: str = "invite") -> InviteMemberEvent:
    return InviteMemberEvent({}, sender, state_key, membership, None, {"membership": membership})


async def _decide(sender: str, **kw: str) -> list[tuple[str, str]]:
    client = FakeClient()
    policy = InvitePolicy(client, BOT, admins=["@root:elsewhere.net"])  # type: ignore[arg-type]
    await policy.on_invite(MatrixRoom("!r:x", BOT), invite(sender, **kw))
    return client.calls


async def test_same_homeserver_invite_is_accepted() -> None:
    assert await _decide("@alice:example.org") == [("join", "!r:x")]


async def test_admin_from_another_server_is_accepted() -> None:
    assert await _decide("@root:elsewhere.net") == [("join", "!r:x")]


async def test_stranger_is_declined() -> None:
    assert await _decide("@mallory:evil.example") == [("leave", "!r:x")]


async def test_look_alike_server_is_declined() -> None:
    assert await _decide("@mallory:example.org.evil") == [("leave", "!r:x")]


async def test_invites_for_someone_else_are_ignored() -> None:
    assert await _decide("@alice:example.org", state_key="@bob:example.org") == []


async def test_invites_beyond_max_rooms_are_declined() -> None:
    """NOTIFIER_MAX_ROOMS: with the cap reached, even a same-server invite is declined."""
    client = FakeClient(joined=2)
    policy = InvitePolicy(client, BOT, admins=[], max_rooms=3)  # type: ignore[arg-type]
    for room_id in ("!third:x", "!fourth:x"):
        await policy.on_invite(MatrixRoom(room_id, BOT), invite("@alice:example.org"))
    assert client.calls == [("join", "!third:x"), ("leave", "!fourth:x")]


async def test_the_room_cap_applies_to_admins_too() -> None:
    client = FakeClient(joined=500)
    policy = InvitePolicy(client, BOT, admins=["@root:elsewhere.net"])  # type: ignore[arg-type]
    await policy.on_invite(MatrixRoom("!r:x", BOT), invite("@root:elsewhere.net"))
    assert client.calls == [("leave", "!r:x")]
