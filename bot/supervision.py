"""Background tasks that cannot die quietly, and do not take the daemon with them.

A task that ends with an unexpected exception is restarted in-process with backoff: the
receiver keeps accepting webhooks meanwhile (Gitea never retries, so a restart of the whole
process would lose what arrives while it is down), and everything accepted is in the store.
Only what a restart cannot fix stops the daemon (exit 1): credentials the homeserver refuses
(`LoginError`) and a store that is no longer a usable database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bot.login import LoginError

log = logging.getLogger(__name__)

RESTART_BASE_S = 1.0
RESTART_CAP_S = 60.0
# A task that ran this long before dying was healthy: its next restart starts the backoff over.
HEALTHY_RUN_S = 300.0

Job = Callable[[], Coroutine[Any, Any, None]]
Sleep = Callable[[float], Awaitable[None]]


class BackgroundTaskFailed(RuntimeError):
    pass


def is_fatal(exc: BaseException) -> bool:
    """Refused credentials, or a database file that is corrupt or not a database at all
    (an OperationalError, such as a locked database, passes: a retry can fix it)."""
    if isinstance(exc, LoginError):
        return True
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def restart_delay(failures: int) -> float:
    """Exponential backoff with jitter (the upper half), capped."""
    ceiling = min(RESTART_CAP_S, RESTART_BASE_S * 2 ** min(failures - 1, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class Supervisor:
    def __init__(
        self,
        on_fatal: Callable[[Exception], None],
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`on_fatal` is told when the daemon must stop; `sleep` and `clock` are for tests."""
        self._on_fatal = on_fatal
        self._sleep = sleep
        self._clock = clock
        self.restarts: dict[str, int] = {}  # task name → restarts so far (for tests and logs)

    def start(self, job: Job, name: str) -> asyncio.Task[None]:
        """Run `job()` in a task; a new coroutine from `job` replaces one that died.

        The task ends when a run of the job returns, is cancelled, or fails fatally.
        """
        task = asyncio.create_task(self._keep_running(job, name), name=name)
        task.add_done_callback(self._check)
        return task

    async def _keep_running(self, job: Job, name: str) -> None:
        failures = 0
        while True:
            started = self._clock()
            try:
                await job()
                return
            except Exception as exc:
                if is_fatal(exc):
                    raise
                failures = 1 if self._clock() - started >= HEALTHY_RUN_S else failures + 1
                delay = restart_delay(failures)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.error(
                    "background task %s died (%s); restarting it in %.1f s",
                    name,
                    type(exc).__name__,
                    delay,
                    exc_info=exc,
                )
            await self._sleep(delay)

    def _check(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.critical("background task %s cannot go on; stopping", task.get_name(), exc_info=exc)
        # A refused login explains itself to the operator; a broken store (or a bug in the
        # supervision itself) is wrapped into one line that names the task.
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
