"""Who may change a room's subscriptions.

Power levels decide, with one twist: in room version 12 (MSC4289) the room's creators
(the sender of `m.room.create` and its `additional_creators`) are not listed in
`m.room.power_levels` and outrank everyone. matrix-nio 0.26 reports them as
`users_default`, so the create event is read here and creators are allowed outright.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from nio import MatrixRoom

log = logging.getLogger(__name__)

# Fetches a room's `m.room.create` event (sender + content); None when unavailable.
CreateEventFetcher = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    level: int | None  # the user's power level, None when allowed by role (admin, creator)


def creators_outrank_power_levels(room_version: str) -> bool:
    """True for room versions with MSC4289 semantics: 12 and later, and its unstable name."""
    if room_version.startswith("org.matrix.hydra"):
        return True
    return room_version.isdigit() and int(room_version) >= 12


def creators_of(create_event: dict[str, Any]) -> set[str]:
    content = create_event.get("content") or {}
    extra = content.get("additional_creators") or []
    names = {create_event.get("sender")} | {c for c in extra if isinstance(c, str)}
    return {name for name in names if isinstance(name, str)}


class PermissionChecker:
    """Decides whether a user may run a privileged command in a room."""

    def __init__(self, required_level: int, admins: list[str], fetch_create: CreateEventFetcher):
        self.required_level = required_level
        self._admins = frozenset(admins)
        self._fetch_create = fetch_create
        # A create event never changes, so caching it for the process's life is exact.
        self._create_events: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=1024)

    async def check(self, room: MatrixRoom, user_id: str) -> Verdict:
        if user_id in self._admins:
            return Verdict(True, None)
        if await self._is_privileged_creator(room.room_id, user_id):
            return Verdict(True, None)
        level = room.power_levels.get_user_level(user_id)
        return Verdict(level >= self.required_level, level)

    async def _is_privileged_creator(self, room_id: str, user_id: str) -> bool:
        create = self._create_events.get(room_id)
        if create is None:
            create = await self._fetch_create(room_id)
            if create is None:
                return False
            self._create_events[room_id] = create
        version = str((create.get("content") or {}).get("room_version", "1"))
        return creators_outrank_power_levels(version) and user_id in creators_of(create)
