"""Background tasks that cannot die quietly.

A task that ends with an unexpected exception stops the daemon (exit 1) instead of leaving
it accepting webhooks that nothing will ever deliver; systemd's `Restart=on-failure` then
starts it afresh, and everything accepted is still in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bot.login import LoginError

log = logging.getLogger(__name__)


class BackgroundTaskFailed(RuntimeError):
    pass


class Supervisor:
    def __init__(self, on_fatal: Callable[[Exception], None]) -> None:
        self._on_fatal = on_fatal

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._check)
        return task

    def _check(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.critical("background task %s died; stopping", task.get_name(), exc_info=exc)
        # A refused login explains itself to the operator; anything else is wrapped.
        if isinstance(exc, LoginError):
            self._on_fatal(exc)
        else:
            self._on_fatal(BackgroundTaskFailed(f"{task.get_name()} failed: {exc!r}"))


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Cancel and wait, swallowing only the cancellation itself."""
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
