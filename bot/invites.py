"""Joining rooms on invite, by policy: users of the bot's own homeserver, or admins, and
never more than NOTIFIER_MAX_ROOMS rooms.

Anyone else's invite is declined, so a stranger cannot pull the bot into rooms; and the
room cap bounds what even a same-server user can make the bot follow (each room costs a
share of every sync and of the store).
"""

from __future__ import annotations

import logging

import aiohttp
from nio import AsyncClient, InviteMemberEvent, JoinedRoomsResponse, JoinError, MatrixRoom

log = logging.getLogger(__name__)


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


class InvitePolicy:
    def __init__(
        self, client: AsyncClient, bot_user_id: str, admins: list[str], max_rooms: int = 500
    ) -> None:
        self._client = client
        self._bot = bot_user_id
        self._admins = frozenset(admins)
        self._max_rooms = max_rooms

    def accepts(self, inviter: str) -> bool:
        return inviter in self._admins or server_of(inviter) == server_of(self._bot)

    async def on_invite(self, room: MatrixRoom, event: InviteMemberEvent) -> None:
        """nio callback for invite state events; acts only on invites addressed to the bot."""
        if event.state_key != self._bot or event.membership != "invite":
            return
        if not self.accepts(event.sender):
            log.info("declining invite to %s from %s (not allowed)", room.room_id, event.sender)
            await self._client.room_leave(room.room_id)
            return
        joined = await self._joined_count()
        if joined >= self._max_rooms:
            log.warning(
                "declining invite to %s from %s: the bot is in %d rooms, NOTIFIER_MAX_ROOMS=%d",
                room.room_id,
                event.sender,
                joined,
                self._max_rooms,
            )
            await self._client.room_leave(room.room_id)
            return
        response = await self._client.join(room.room_id)
        if isinstance(response, JoinError):
            log.warning("could not join %s: %s", room.room_id, response.message)
        else:
            log.info("joined %s on invite from %s", room.room_id, event.sender)

    async def _joined_count(self) -> int:
        """The homeserver's count (invites are rare, and nio keeps rooms the bot left);
        nio's own if the homeserver cannot say."""
        try:
            response = await self._client.joined_rooms()
        except (aiohttp.ClientError, TimeoutError):
            response = None
        if isinstance(response, JoinedRoomsResponse):
            return len(response.rooms)
        return len(self._client.rooms)
