"""A level-triggered nudge between coroutines: "there may be new work", coalesced."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """Producers call `set()`; one consumer waits with a timeout, so polling is the fallback."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()
        self._event.clear()
