"""Webhook accepted → notice visible to a second Matrix user, against a real Synapse.

Starts a throwaway Synapse and `forge-notifier run` as a child process, subscribes a room,
then sends N signed pushes one after another. For each: t0 = the receiver's 202 arrived,
t1 = the second user's /sync delivered the notice. In the same run it measures the
homeserver's own round trip (the second user sends a message and sees it come back), the
floor under any bot. Prints medians, p95 and the ratio. Never asserted in tests.

    python -m benchmarks.e2e_latency [--pushes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bot.local_synapse import LocalSynapse
from bot.room_driver import RoomDriver, notice_from
from bot.sample import post_delivery, sample_push, sign_delivery
from tests.daemon_process import Daemon


async def _follow(driver: RoomDriver, stop: asyncio.Event) -> None:
    """Keep the driver's long-poll sync running so arrival times are exact."""
    while not stop.is_set():
        await driver.sync(timeout_ms=5000)


async def _arrival(driver: RoomDriver, room: str, predicate: object, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.events(room, predicate)  # type: ignore[arg-type]
        if found:
            return driver.seen_at[found[0]["event_id"]]
        await asyncio.sleep(0.002)
    raise TimeoutError("notice never arrived")


async def _measure(
    daemon: Daemon, driver: RoomDriver, bot: str, secret: str, n: int
) -> tuple[list[float], list[float]]:
    room = await driver.create_room(invite=[bot])
    await driver.wait_for_member(room, bot)
    await driver.say(room, "!subscribe bench/repo")
    await driver.wait_for(room, notice_from(bot, "Subscribed"))
    stop = asyncio.Event()
    follower = asyncio.create_task(_follow(driver, stop))
    bot_ms, homeserver_ms = [], []
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            marker = f"bench-{uuid.uuid4().hex[:10]}"
            delivery = sign_delivery(sample_push("bench/repo", message=marker), secret)
            status, _ = await post_delivery(session, daemon.webhook_url, delivery)
            accepted = time.monotonic()
            assert status == 202, status
            seen = await _arrival(driver, room, notice_from(bot, marker), 30)
            bot_ms.append((seen - accepted) * 1000)
            echo = f"echo-{i}-{uuid.uuid4().hex[:6]}"
            sent = time.monotonic()
            await driver.say(room, echo)
            back = await _arrival(
                driver, room, lambda e, m=echo: e.get("content", {}).get("body") == m, 30
            )
            homeserver_ms.append((back - sent) * 1000)
            await asyncio.sleep(0.2)
    stop.set()
    await follower
    return bot_ms, homeserver_ms


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=30)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fn-bench-"))
    synapse = LocalSynapse(base / "synapse")
    synapse.start()
    daemon = None
    try:
        bot = synapse.register("notifier", secrets.token_hex(8))
        user = synapse.register("bench", secrets.token_hex(8))
        secret = secrets.token_hex(16)
        daemon = Daemon(
            synapse.url, bot.user_id, bot.password, secret, base, NOTIFIER_LOG_LEVEL="WARNING"
        )
        daemon.start()

        async def run() -> tuple[list[float], list[float]]:
            driver = RoomDriver(synapse.url, user.user_id, user.password)
            await driver.login()
            try:
                return await _measure(daemon, driver, bot.user_id, secret, args.pushes)
            finally:
                await driver.close()

        bot_ms, hs_ms = asyncio.run(run())
    finally:
        if daemon:
            daemon.stop()
        synapse.stop()
    med_bot, med_hs = statistics.median(bot_ms), statistics.median(hs_ms)
    print(f"pushes: {len(bot_ms)}")
    print(
        f"webhook 202 → notice seen by second user: median {med_bot:.1f} ms, "
        f"p95 {_p(bot_ms, 95):.1f} ms, max {max(bot_ms):.1f} ms"
    )
    print(
        f"homeserver's own send → seen round trip:  median {med_hs:.1f} ms, "
        f"p95 {_p(hs_ms, 95):.1f} ms"
    )
    print(f"ratio of medians (notifier / homeserver): {med_bot / med_hs:.2f}")


if __name__ == "__main__":
    main()
