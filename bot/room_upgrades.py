"""Following a room upgrade: when a subscribed room is replaced (m.room.tombstone), its
subscriptions, held events and unsent messages move to the new room and the bot joins it.

In an invite-only room the bot can only join the new room once invited; until then its
messages there fail visibly (`!health`), and the invite handler joins when invited.
"""

from __future__ import annotations

import logging

from nio import AsyncClient, JoinError, MatrixRoom, RoomUpgradeEvent

from core.store import Store
from core.wakeup import Wakeup

log = logging.getLogger(__name__)


class RoomUpgrades:
    def __init__(self, client: AsyncClient, store: Store, outbox: Wakeup) -> None:
        self._client = client
        self._store = store
        self._outbox = outbox

    async def on_tombstone(self, room: MatrixRoom, event: RoomUpgradeEvent) -> None:
        """nio callback; idempotent, so a tombstone seen again after a restart is harmless."""
        new_room = event.replacement_room
        if not new_room or new_room == room.room_id:
            return
        moved = await self._store.move_room(room.room_id, new_room)
        if moved:
            log.info(
                "room %s was upgraded to %s: moved %d subscription(s)",
                room.room_id,
                new_room,
                moved,
            )
        response = await self._client.join(new_room)
        if isinstance(response, JoinError):
            log.warning(
                "could not join upgraded room %s (%s): invite the bot there",
                new_room,
                response.message,
            )
        self._outbox.set()
