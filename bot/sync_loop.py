"""The Matrix sync loop, with the link state that health reports need.

The position (`next_batch`) is stored after each processed sync, and a start resumes from
it: Synapse caches /sync answers for two minutes, so a bot that starts without a position
after a quick restart is handed its previous run's answers again, commands included. The
first sync of a run (timeout 0, full state, so every room's state is known again) is:
- without a stored position (first start, or the position was refused): history only,
  its commands are not answered;
- from a stored position: what arrived while the bot was away; its commands are answered,
  unless older than CATCH_UP_MAX_AGE_S (nobody waits for those any more).
Commands that were handled already are skipped by their event id (bot/commands.py), which
covers a crash between running a command and storing the position after it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from nio import AsyncClient, SyncError

from bot.encryption import maintain_keys
from bot.login import LoginError

log = logging.getLogger(__name__)

POSITION_KEY = "next_batch"
# Commands that waited longer than this while the bot was away are history, not answered.
CATCH_UP_MAX_AGE_S = 600.0

LONG_POLL_MS = 30_000
# Short enough that delivery resumes within seconds of the homeserver coming back.
RETRY_CAP_S = 10.0
# /sync's default of 10 timeline events per room drops events under a burst.
SYNC_FILTER = {
    "room": {"timeline": {"limit": 100}, "state": {"lazy_load_members": True}},
    "presence": {"not_types": ["*"]},
}


class Phase(enum.Enum):
    """What the sync in progress means for the commands in it."""

    HISTORY = "history"  # first sync without a stored position: answer nothing
    CATCH_UP = "catch-up"  # first sync from a stored position: answer recent commands
    LIVE = "live"


class Position(Protocol):
    """Where the sync position is kept (the store's sync_state table)."""

    async def sync_value(self, key: str) -> str | None: ...

    async def set_sync_value(self, key: str, value: str | None) -> None: ...


@dataclass
class LinkState:
    """What health checks report about the homeserver link."""

    connected: bool = False
    last_sync: float | None = None
    last_error: str | None = None


class SyncLoop:
    def __init__(
        self,
        client: AsyncClient,
        position: Position,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`on_reconnect` runs when a sync succeeds after failures (the homeserver is back)."""
        self._client = client
        self._position = position
        self._on_reconnect = on_reconnect
        self._clock = clock
        self.state = LinkState()
        self.live = asyncio.Event()
        self.phase = Phase.HISTORY
        self._saved: str | None = None  # the position last stored

    def answers(self, origin_server_ts_ms: int) -> bool:
        """Whether a command sent at that time, seen in the sync in progress, is answered."""
        if self.phase is Phase.HISTORY:
            return False
        if self.phase is Phase.CATCH_UP:
            return self._clock() - origin_server_ts_ms / 1000 <= CATCH_UP_MAX_AGE_S
        return True

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
        since = await self._start_position() if first else None
        self.phase = _phase(first, since)
        try:
            response = await self._client.sync(
                timeout=0 if first else LONG_POLL_MS,
                sync_filter=SYNC_FILTER,
                since=since,
                full_state=first,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._failed(f"network: {type(exc).__name__}")
        finally:
            self.phase = Phase.HISTORY  # between syncs no callback runs
        if isinstance(response, SyncError):
            return await self._sync_error(response, resuming=since is not None)
        self.state = LinkState(connected=True, last_sync=time.time())
        await self._save_position()
        try:
            await maintain_keys(self._client)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "end-to-end key maintenance failed (%s); retried after the next sync",
                type(exc).__name__,
            )
        return True

    async def _start_position(self) -> str | None:
        """Where the first sync of a run starts: nio's own position when the loop is
        restarted in-process, else the stored one."""
        if self._client.next_batch:
            return str(self._client.next_batch)
        try:
            return await self._position.sync_value(POSITION_KEY)
        except sqlite3.Error as exc:
            log.warning("cannot read the stored sync position (%s); starting afresh", exc)
            return None

    async def _save_position(self) -> None:
        """After each processed sync: nio has run every callback of it by now."""
        position = self._client.next_batch
        if not position or position == self._saved:
            return
        try:
            await self._position.set_sync_value(POSITION_KEY, position)
        except sqlite3.Error as exc:
            # Handled command ids still stop a replay; the next sync stores it again.
            log.warning("cannot store the sync position (%s)", exc)
            return
        self._saved = position

    async def _sync_error(self, response: SyncError, resuming: bool) -> bool:
        if response.status_code == "M_UNKNOWN_TOKEN":
            raise LoginError(
                "the homeserver no longer accepts the bot's session "
                "(M_UNKNOWN_TOKEN); a restart logs in again"
            )
        http = response.transport_response.status if response.transport_response else None
        if resuming and http == 400:
            # A position this homeserver does not know (another server, a reset database):
            # start afresh, with the first sync as history.
            log.warning("the stored sync position was refused; starting from now")
            self._client.next_batch = ""
            self._saved = None
            await self._position.set_sync_value(POSITION_KEY, None)
        return self._failed(f"{response.status_code}: {response.message}")

    def _failed(self, error: str) -> bool:
        if self.state.connected:
            log.warning("Matrix sync failed: %s", error)
        self.state = LinkState(False, self.state.last_sync, error)
        return False


def _phase(first: bool, since: str | None) -> Phase:
    if not first:
        return Phase.LIVE
    return Phase.HISTORY if since is None else Phase.CATCH_UP
