"""The record of command events already handled, so a command runs at most once.

Kept in the store (handled_commands) and pruned past the retention period, at most once an
hour, on the path of a command: the table only grows with commands, so it is pruned only
when commands arrive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core.store import Store

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
# Ids are needed only while a replay is possible (Synapse caches /sync answers for two
# minutes); a day covers any restart, whatever the retention setting.
MIN_KEEP_S = 86400.0


class HandledCommands:
    def __init__(
        self, store: Store, retention_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._keep_s = max(MIN_KEEP_S, retention_s)
        self._clock = clock
        self._pruned_at = float("-inf")

    async def claim(self, event_id: str, room_id: str) -> bool:
        """Record the command as handled; False when it was already (do not run it)."""
        now = self._clock()
        if now - self._pruned_at >= PRUNE_EVERY_S:
            self._pruned_at = now
            pruned = await self._store.prune_handled_commands(now - self._keep_s)
            if pruned:
                log.info("forgot %d handled command id(s) past retention", pruned)
        return await self._store.claim_command(event_id, room_id, now)
