"""End-to-end latency at a steady rate: webhook → message seen by a second Matrix user.

Pushes go out on a fixed schedule (open loop: a slow answer never delays the next push),
spread over many repositories so no rate limit applies. Each carries a unique marker in
its head commit's message; a `Follower` keeps the second user's /sync long-poll running
and notes when each marker first shows up in the room. In the same run the second user
sends its own messages to another room at a steady rate and times their round trip:
the homeserver's own send → seen latency, the floor under any bot.

Standalone (Synapse + daemon + this phase only):

    python -m benchmarks.e2e_latency [--seconds 30] [--rate 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from benchmarks.payloads import BenchPush, signed_push
from benchmarks.stats import Summary
from bot.room_driver import RoomDriver

MARKER = re.compile(r"bench-[a-z]+-\d+-[0-9a-f]{8}")
SEEN_TIMEOUT_S = 30.0


def new_marker(phase: str, seq: int) -> str:
    """Unique text that survives formatting: found again in the room by `MARKER`."""
    return f"bench-{phase}-{seq}-{secrets.token_hex(4)}"


@dataclass
class Probe:
    """One request of a load: when it left, when it was answered, when it was seen."""

    marker: str
    sent: float
    answered: float | None = None
    status: int | None = None
    seen: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Follower:
    """Follows the driver's /sync without pause and indexes every event as it arrives.

    `seen[marker]` is when the first event carrying the marker was delivered; `events`
    keeps (arrival time, room, event) of everything, for the burst's accounting.
    """

    driver: RoomDriver
    seen: dict[str, float] = field(default_factory=dict)
    events: list[tuple[float, str, dict]] = field(default_factory=list)  # type: ignore[type-arg]
    _cursor: dict[str, int] = field(default_factory=dict)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.driver.sync(timeout_ms=2000)
            self._index()

    def _index(self) -> None:
        for room, timeline in self.driver.timeline.items():
            start = self._cursor.get(room, 0)
            for event in timeline[start:]:
                at = self.driver.seen_at.get(event.get("event_id", ""), time.monotonic())
                self.events.append((at, room, event))
                body = event.get("content", {}).get("body", "")
                for marker in MARKER.findall(body if isinstance(body, str) else ""):
                    self.seen.setdefault(marker, at)
            self._cursor[room] = len(timeline)
        self._arrived.set()

    async def wait_seen(self, markers: Sequence[str], timeout: float = SEEN_TIMEOUT_S) -> None:
        """Until every marker was seen, or `timeout` seconds without that happening."""
        deadline = time.monotonic() + timeout
        while any(m not in self.seen for m in markers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)


async def open_loop(
    count: int, rate: float, fire: Callable[[int], Awaitable[Probe]]
) -> list[Probe]:
    """Start `fire(i)` for i in range(count) at `rate` per second, on a fixed schedule."""
    start = time.monotonic()
    tasks: list[asyncio.Future[Probe]] = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(fire(i)))
    return list(await asyncio.gather(*tasks))


async def post_json(
    session: aiohttp.ClientSession, url: str, marker: str, body: bytes, headers: dict[str, str]
) -> Probe:
    probe = Probe(marker, time.monotonic())
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            probe.status = response.status
    except (aiohttp.ClientError, TimeoutError):
        probe.status = None
    probe.answered = time.monotonic()
    return probe


async def echo_load(driver: RoomDriver, room: str, count: int, rate: float) -> list[Probe]:
    """The homeserver's own round trip: the driver sends, its own sync sees it come back."""

    async def fire(i: int) -> Probe:
        marker = new_marker("echo", i)
        probe = Probe(marker, time.monotonic())
        try:
            await driver.say(room, f"echo {marker}")
            probe.status = 200
        except Exception:  # the driver raises its own error type for refusals
            probe.status = None
        probe.answered = time.monotonic()
        return probe

    return await open_loop(count, rate, fire)


@dataclass(frozen=True)
class SteadyResult:
    """One steady phase: the product's probes and the homeserver's own, same period."""

    name: str
    rate: float
    seconds: float
    probes: list[Probe]
    echoes: list[Probe]

    def _ms(self, probes: list[Probe], since_answer: bool) -> list[float]:
        out = []
        for p in probes:
            start = p.answered if since_answer else p.sent
            if p.seen is not None and start is not None:
                out.append((p.seen - start) * 1000)
        return out

    @property
    def from_sent_ms(self) -> list[float]:
        return self._ms(self.probes, since_answer=False)

    @property
    def from_answer_ms(self) -> list[float]:
        return self._ms(self.probes, since_answer=True)

    @property
    def answer_ms(self) -> list[float]:
        return [(p.answered - p.sent) * 1000 for p in self.probes if p.answered is not None]

    @property
    def homeserver_ms(self) -> list[float]:
        return self._ms(self.echoes, since_answer=False)

    @property
    def lost(self) -> int:
        return sum(1 for p in self.probes if p.seen is None)

    @property
    def refused(self) -> int:
        return sum(1 for p in self.probes if not p.ok)

    @property
    def achieved_rate(self) -> float:
        answered = [p.answered for p in self.probes if p.ok and p.answered is not None]
        if len(answered) < 2:
            return 0.0
        return (len(answered) - 1) / (max(answered) - min(p.sent for p in self.probes))

    def summaries(self) -> dict[str, Summary]:
        return {
            "sent→seen": Summary.of(self.from_sent_ms),
            "answered→seen": Summary.of(self.from_answer_ms),
            "answer": Summary.of(self.answer_ms),
            "homeserver": Summary.of(self.homeserver_ms),
        }


async def steady_phase(
    name: str,
    follower: Follower,
    echo_room: str,
    rate: float,
    seconds: float,
    fire: Callable[[int], Awaitable[Probe]],
    echo_rate: float = 2.0,
) -> SteadyResult:
    """Run the product's load and the homeserver's echo load side by side."""
    count = max(1, int(rate * seconds))
    echoes = max(1, int(echo_rate * seconds))
    probes, echo_probes = await asyncio.gather(
        open_loop(count, rate, fire),
        echo_load(follower.driver, echo_room, echoes, echo_rate),
    )
    await follower.wait_seen([p.marker for p in probes + echo_probes if p.ok])
    for probe in probes + echo_probes:
        probe.seen = follower.seen.get(probe.marker)
    return SteadyResult(name, rate, seconds, probes, echo_probes)


def notifier_fire(
    session: aiohttp.ClientSession, url: str, secret: str, repos: Sequence[str]
) -> Callable[[int], Awaitable[Probe]]:
    """Signed pushes round-robin over `repos`; signing happens before the clock starts."""
    cache: dict[int, BenchPush] = {}

    def push(i: int) -> BenchPush:
        if i not in cache:
            cache[i] = signed_push(repos[i % len(repos)], new_marker("steady", i), secret)
        return cache[i]

    async def fire(i: int) -> Probe:
        p = push(i)
        return await post_json(session, url, p.marker, p.delivery.body, p.delivery.headers)

    for i in range(len(repos) * 2):  # warm the cache for the first two rounds
        push(i)
    return fire


# --- standalone --------------------------------------------------------------------------


async def _standalone(base: Path, seconds: float, rate: float) -> SteadyResult:
    from benchmarks.world import join_rooms, register_accounts, seed_subscriptions
    from bot.local_synapse import LocalSynapse
    from tests.daemon_process import Daemon

    synapse = LocalSynapse(base / "synapse")
    synapse.start()
    daemon = None
    try:
        accounts = register_accounts(synapse)
        driver = RoomDriver(synapse.url, accounts.driver.user_id, accounts.driver.password)
        await driver.login()
        room = await driver.create_room(invite=[accounts.bot.user_id])
        echo_room = await driver.create_room(invite=[])
        await join_rooms(synapse.url, accounts.bot, [room])
        repos = [f"steady/r{i:02d}" for i in range(50)]
        workdir = base / "daemon"
        workdir.mkdir()
        await seed_subscriptions(workdir / "state", [(room, r) for r in repos], driver.user_id)
        secret = secrets.token_hex(16)
        daemon = Daemon(synapse.url, accounts.bot.user_id, accounts.bot.password, secret, workdir)
        await asyncio.to_thread(daemon.start)
        follower = Follower(driver)
        follower.start()
        async with aiohttp.ClientSession() as session:
            fire = notifier_fire(session, daemon.webhook_url, secret, repos)
            result = await steady_phase("forge-notifier", follower, echo_room, rate, seconds, fire)
        await follower.stop()
        await driver.close()
        return result
    finally:
        if daemon is not None:
            daemon.stop()
        synapse.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fn-bench-"))
    result = asyncio.run(_standalone(base, args.seconds, args.rate))
    for name, s in result.summaries().items():
        print(f"{name:>14}: n={s.n} p50 {s.p50:.1f} ms  p95 {s.p95:.1f} ms  p99 {s.p99:.1f} ms")
    print(f"lost: {result.lost}, refused: {result.refused}")


if __name__ == "__main__":
    main()
