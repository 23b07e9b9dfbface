"""The Matrix sync loop, with the link state that health reports need.

The first sync (timeout 0) only takes the current position: events in it are history, and
commands in it must not be answered. Commands are handled only once `live` is set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from nio import AsyncClient, SyncError

from bot.encryption import maintain_keys
from bot.login import LoginError

log = logging.getLogger(__name__)

LONG_POLL_MS = 30_000
# Short enough that delivery resumes within seconds of the homeserver coming back.
RETRY_CAP_S = 10.0
# /sync's default of 10 timeline events per room drops events under a burst.
SYNC_FILTER = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": True}},
    "presence": {"not_types": ["*"]},
}


@dataclass
class LinkState:
    """What health checks report about the homeserver link."""

    connected: bool = False
    last_sync: float | None = None
    last_error: str | None = None


class SyncLoop:
    def __init__(
        self, client: AsyncClient, on_reconnect: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """`on_reconnect` runs when a sync succeeds after failures (the homeserver is back)."""
        self._client = client
        self._on_reconnect = on_reconnect
        self.state = LinkState()
        self.live = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        while True:
            if not await self._sync_once(first=not self.live.is_set()):
                failures += 1
                await asyncio.sleep(min(RETRY_CAP_S, 2**failures))
                continue
            if not self.live.is_set():
                self.live.set()
                log.info("Matrix sync is live")
            if failures and self._on_reconnect:
                log.info("homeserver reachable again after %d failed sync(s)", failures)
                await self._on_reconnect()
            failures = 0

    async def _sync_once(self, first: bool) -> bool:
        try:
            response = await self._client.sync(
                timeout=0 if first else LONG_POLL_MS,
                sync_filter=SYNC_FILTER,
                full_state=first,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._failed(f"network: {type(exc).__name__}")
        if isinstance(response, SyncError):
            if response.status_code == "M_UNKNOWN_TOKEN":
                raise LoginError(
                    "the homeserver no longer accepts the bot's session "
                    "(M_UNKNOWN_TOKEN); a restart logs in again"
                )
            return self._failed(f"{response.status_code}: {response.message}")
        self.state = LinkState(connected=True, last_sync=time.time())
        try:
            await maintain_keys(self._client)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "end-to-end key maintenance failed (%s); retried after the next sync",
                type(exc).__name__,
            )
        return True

    def _failed(self, error: str) -> bool:
        if self.state.connected:
            log.warning("Matrix sync failed: %s", error)
        self.state = LinkState(False, self.state.last_sync, error)
        return False
