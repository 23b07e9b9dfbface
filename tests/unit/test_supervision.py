"""bot/supervision.py: background tasks restart in-process; only what a restart cannot fix
stops the daemon."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.login import LoginError
from bot.supervision import (
    RESTART_CAP_S,
    BackgroundTaskFailed,
    Job,
    Supervisor,
    restart_delay,
)


class Sleeps:
    """A fake sleep that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def crashing(times: int, exc: Exception) -> tuple[list[int], Job]:
    """A job that raises `exc` on its first `times` runs, then returns; counts runs."""
    runs: list[int] = []

    async def job() -> None:
        runs.append(len(runs))
        if len(runs) <= times:
            raise exc

    return runs, job


async def test_a_task_that_raises_is_restarted_with_growing_backoff() -> None:
    fatal: list[Exception] = []
    sleeps = Sleeps()
    runs, job = crashing(3, KeyError("boom"))
    supervisor = Supervisor(fatal.append, sleep=sleeps, clock=Clock())
    await supervisor.start(job, "sender")
    assert len(runs) == 4  # three crashes, then a run that ended normally
    assert fatal == []
    assert supervisor.restarts == {"sender": 3}
    for failures, delay in enumerate(sleeps.delays, start=1):
        ceiling = min(RESTART_CAP_S, 2.0 ** (failures - 1))
        assert ceiling / 2 <= delay <= ceiling


async def test_a_long_healthy_run_starts_the_backoff_over() -> None:
    sleeps = Sleeps()
    clock = Clock()
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)
        clock.now += 1000.0 if len(runs) == 3 else 0.0  # the third run lives long
        if len(runs) <= 3:
            raise RuntimeError("bug")

    await Supervisor(lambda exc: None, sleep=sleeps, clock=clock).start(job, "sync")
    assert sleeps.delays[1] >= 1.0  # second failure in a row: the ceiling doubled
    assert sleeps.delays[2] <= 1.0  # after a healthy run: back to the first step


def test_restart_delay_is_capped() -> None:
    assert all(RESTART_CAP_S / 2 <= restart_delay(n) <= RESTART_CAP_S for n in (7, 20, 10_000))


async def test_a_refused_login_still_stops_the_daemon() -> None:
    fatal: list[Exception] = []
    sleeps = Sleeps()
    runs, job = crashing(5, LoginError("the homeserver refused NOTIFIER_PASSWORD"))
    task = Supervisor(fatal.append, sleep=sleeps).start(job, "login")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # the done callback runs on the next loop iteration
    assert len(runs) == 1
    assert sleeps.delays == []
    assert len(fatal) == 1
    assert isinstance(fatal[0], LoginError)


async def test_a_corrupt_store_stops_the_daemon_in_one_named_line() -> None:
    fatal: list[Exception] = []
    runs, job = crashing(5, sqlite3.DatabaseError("database disk image is malformed"))
    task = Supervisor(fatal.append, sleep=Sleeps()).start(job, "dispatcher")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)
    assert len(runs) == 1
    (error,) = fatal
    assert isinstance(error, BackgroundTaskFailed)
    assert "dispatcher failed" in str(error) and "malformed" in str(error)


@pytest.mark.parametrize("exc", [sqlite3.OperationalError("database is locked"), OSError("x")])
async def test_passing_trouble_is_restarted_not_fatal(exc: Exception) -> None:
    fatal: list[Exception] = []
    runs, job = crashing(1, exc)
    await Supervisor(fatal.append, sleep=Sleeps()).start(job, "sender")
    assert (len(runs), fatal) == (2, [])


async def test_cancelling_stops_the_task_without_restarting_it() -> None:
    fatal: list[Exception] = []
    started = asyncio.Event()
    runs: list[int] = []

    async def job() -> None:
        runs.append(1)
        started.set()
        await asyncio.Event().wait()

    task = Supervisor(fatal.append, sleep=Sleeps()).start(job, "sync")
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert (len(runs), fatal) == (1, [])
