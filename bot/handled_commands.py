"""The record of command events already handled, so a command runs at most once.

Kept in the store (handled_commands); the store's hourly prune forgets ids past the
retention period, long after a replay is possible (Synapse caches /sync answers for two
minutes).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from core.store import Store


class HandledCommands:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def claim(self, event_id: str, room_id: str) -> bool:
        """Record the command as handled; False when it was already (do not run it)."""
        return await self._store.claim_command(event_id, room_id, self._clock())
