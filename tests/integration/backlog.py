"""Pushing a backlog through the daemon and checking every push arrived once, in order."""

from __future__ import annotations

import time
import uuid

import aiohttp

from bot.room_driver import Event, RoomDriver, notice_from
from bot.sample import post_delivery, sample_push, sign_delivery
from tests.daemon_process import Daemon
from tests.integration.conftest import WEBHOOK_SECRET


def bodies(driver: RoomDriver, room: str, bot: str, contains: str) -> list[str]:
    return [e["content"]["body"] for e in driver.events(room, notice_from(bot, contains))]


async def post_many(daemon: Daemon, repo: str, markers: list[str]) -> list[int]:
    async with aiohttp.ClientSession() as session:
        statuses = []
        for marker in markers:
            delivery = sign_delivery(sample_push(repo, message=marker), WEBHOOK_SECRET)
            statuses.append((await post_delivery(session, daemon.webhook_url, delivery))[0])
        return statuses


async def wait_all(
    driver: RoomDriver, room: str, bot: str, markers: list[str], timeout: float
) -> float:
    """Sync until every marker was seen; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while not all(bodies(driver, room, bot, m) for m in markers):
        if time.monotonic() > deadline:
            missing = [m for m in markers if not bodies(driver, room, bot, m)]
            raise AssertionError(f"{len(missing)} of {len(markers)} never arrived: {missing[:3]}")
        await driver.sync(timeout_ms=2000)
    return time.monotonic() - started


def assert_once_in_order(driver: RoomDriver, room: str, bot: str, markers: list[str]) -> None:
    notices: list[Event] = driver.events(room, notice_from(bot))
    seen = [m for e in notices for m in markers if m in e["content"]["body"]]
    assert sorted(seen) == sorted(markers), "a marker is missing or appears twice"
    assert seen == markers, "messages arrived out of order"


async def interrupt_backlog(
    daemon: Daemon,
    alice: RoomDriver,
    bot: str,
    room: str,
    repo: str,
    sig: int,
    total: int,
    seen: int,
) -> tuple[int | None, float, int, float]:
    """Queue `total` pushes to `repo` (which `room` follows), stop the daemon with `sig` once
    `seen` have arrived, restart it and wait for the rest. Every marker must then be in the
    room exactly once, in order. Returns (exit code, seconds to stop, delivered before the
    stop, seconds to drain)."""
    tag = uuid.uuid4().hex[:8]
    markers = [f"stop-{i:03d}-{tag}" for i in range(total)]
    assert await post_many(daemon, repo, markers) == [202] * total
    while len(bodies(alice, room, bot, f"-{tag}")) < seen:
        await alice.sync()
    before = len(bodies(alice, room, bot, f"-{tag}"))
    stopping = time.monotonic()
    code = daemon.stop(sig)
    stopped_in = time.monotonic() - stopping
    daemon.start()
    drained = await wait_all(alice, room, bot, markers, timeout=120)
    assert_once_in_order(alice, room, bot, markers)
    return code, stopped_in, before, drained
