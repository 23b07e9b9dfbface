"""Burst: thousands of pushes over many repositories as fast as one client can send.

Every push must be accounted for in the room, exactly once: the bot's messages are
parsed — a single push "[repo] alice pushed N commits to main" counts one push of N
commits (and its marker must be one we sent to that repo, once), a coalesced "[repo] P
pushes (C commits) to …" counts P pushes of C commits — and per repository the pushes and
commits must add up to what was sent. The room's full history is read back through
/messages for the final count, so nothing depends on /sync having shown everything.
The daemon's memory is sampled throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from nio import MessageDirection, RoomMessagesResponse

from benchmarks.e2e_latency import MARKER, Follower, new_marker
from benchmarks.payloads import BenchPush, signed_push
from bot.room_driver import RoomDriver

SINGLE = re.compile(r"^\[(?P<repo>[^\]]+)\] \S+ pushed (?P<commits>\d+) commits? to ")
COALESCED = re.compile(
    r"^\[(?P<repo>[^\]]+)\] (?P<pushes>\d+) pushes \((?P<commits>\d+) commits?\)"
)
CLIENT_CONNECTIONS = 32


@dataclass
class Tally:
    """What the room says happened, per repository."""

    pushes: Counter[str] = field(default_factory=Counter)
    commits: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    coalesced: int = 0
    singles: int = 0
    markers: Counter[str] = field(default_factory=Counter)  # marker → times seen in singles
    marker_repo: dict[str, str] = field(default_factory=dict)
    times: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    unparsed: int = 0

    def add(self, event: dict[str, Any], bot: str) -> int:
        """Count one room event; returns how many pushes it accounts for."""
        content = event.get("content", {})
        if event.get("sender") != bot or content.get("msgtype") != "m.notice":
            return 0
        body = content.get("body", "")
        if match := COALESCED.match(body):
            repo, pushes = match["repo"], int(match["pushes"])
            self.coalesced += 1
        elif match := SINGLE.match(body):
            repo, pushes = match["repo"], 1
            self.singles += 1
            for marker in MARKER.findall(body.split("\n", 3)[2] if body.count("\n") >= 2 else ""):
                self.markers[marker] += 1
                self.marker_repo[marker] = repo
        else:
            self.unparsed += 1
            return 0
        self.pushes[repo] += pushes
        self.commits[repo] += int(match["commits"])
        self.messages[repo] += 1
        self.times[repo].append(int(event.get("origin_server_ts", 0)))
        return pushes

    @property
    def total_pushes(self) -> int:
        return sum(self.pushes.values())


@dataclass
class BurstResult:
    pushes: int
    repos: int
    window_s: float
    send_s: float  # first request out → last answer in
    statuses: Counter[int]
    drained_s: float | None  # first request out → last push accounted for (via /sync)
    tally: Tally  # the final count, from the room's history
    expected_pushes: Counter[str]
    expected_commits: Counter[str]
    progress: list[tuple[float, int]]  # (seconds since start, pushes accounted for)
    sent_repo: dict[str, str]  # marker → the repository it was pushed to
    start: float = 0.0
    end: float = 0.0
    queued: dict[str, list[float]] = field(default_factory=dict)  # repo → outbox created_at

    @property
    def send_rate(self) -> float:
        return self.pushes / self.send_s if self.send_s else 0.0

    @property
    def wrong_repos(self) -> list[str]:
        repos = set(self.expected_pushes) | set(self.tally.pushes)
        return sorted(
            r
            for r in repos
            if self.tally.pushes[r] != self.expected_pushes[r]
            or self.tally.commits[r] != self.expected_commits[r]
        )

    @property
    def duplicated_markers(self) -> int:
        return sum(1 for n in self.tally.markers.values() if n > 1)

    @property
    def misplaced_markers(self) -> int:
        return sum(1 for m, repo in self.tally.marker_repo.items() if self.sent_repo.get(m) != repo)

    @property
    def exact(self) -> bool:
        return (
            self.tally.total_pushes == self.pushes
            and not self.wrong_repos
            and not self.duplicated_markers
            and not self.misplaced_markers
        )

    def gaps_s(self) -> list[float]:
        """Seconds between consecutive messages of one repository (homeserver timestamps)."""
        out = []
        for stamps in self.tally.times.values():
            ordered = sorted(stamps)
            out += [(b - a) / 1000 for a, b in itertools.pairwise(ordered)]
        return out

    def queued_gaps_s(self) -> list[float]:
        """Seconds between consecutive messages of one repository as the daemon queued them."""
        out = []
        for stamps in self.queued.values():
            ordered = sorted(stamps)
            out += [b - a for a, b in itertools.pairwise(ordered)]
        return out

    def max_in_window(self) -> int:
        """Most messages of one repository inside any `window_s` span of server time."""
        most = 0
        span = self.window_s * 1000
        for stamps in self.tally.times.values():
            ordered = sorted(stamps)
            j = 0
            for i, t in enumerate(ordered):
                while ordered[j] <= t - span:
                    j += 1
                most = max(most, i - j + 1)
        return most


def plan(pushes: int, repos: int, secret: str, seed: int = 6) -> list[BenchPush]:
    """Pushes round-robin over `repos` repositories, 1-7 commits each (seeded)."""
    rng = random.Random(seed)
    names = [f"burst/r{i:03d}" for i in range(repos)]
    return [
        signed_push(names[i % repos], new_marker("burst", i), secret, rng.randint(1, 7))
        for i in range(pushes)
    ]


async def send_all(url: str, batch: list[BenchPush]) -> tuple[Counter[int], float, float]:
    """POST every push with CLIENT_CONNECTIONS in flight; (statuses, start, end)."""
    queue: asyncio.Queue[BenchPush] = asyncio.Queue()
    for push in batch:
        queue.put_nowait(push)
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            push = queue.get_nowait()
            try:
                async with session.post(
                    url, data=push.delivery.body, headers=push.delivery.headers
                ) as response:
                    await response.read()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1

    start = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CLIENT_CONNECTIONS)))
    return statuses, start, time.monotonic()


async def room_history(driver: RoomDriver, room: str, limit: int = 100_000) -> list[dict]:  # type: ignore[type-arg]
    """Every event of the room, oldest first, paged through /messages."""
    events: list[dict] = []  # type: ignore[type-arg]
    token: str | None = None
    while len(events) < limit:
        response = await driver.client.room_messages(
            room, start=token, direction=MessageDirection.back, limit=1000
        )
        if not isinstance(response, RoomMessagesResponse):
            raise RuntimeError(f"/messages failed: {response}")
        events += [e.source for e in response.chunk]
        if not response.chunk or not response.end or response.end == token:
            break
        token = response.end
    return list(reversed(events))


async def run_burst(
    follower: Follower,
    room: str,
    bot: str,
    url: str,
    secret: str,
    pushes: int,
    repos: int,
    window_s: float,
    timeout_s: float,
    queue_empty: Any,  # async () -> bool: the daemon has nothing pending or held
) -> BurstResult:
    batch = plan(pushes, repos, secret)
    expected_pushes: Counter[str] = Counter(p.repo for p in batch)
    expected_commits: Counter[str] = Counter()
    for p in batch:
        expected_commits[p.repo] += p.commits
    first_event = len(follower.events)
    statuses, start, sent_end = await send_all(url, batch)
    live = Tally()
    progress: list[tuple[float, int]] = [(0.0, 0)]
    drained: float | None = None
    cursor = first_event
    deadline = start + timeout_s
    while time.monotonic() < deadline:
        for at, event_room, event in follower.events[cursor:]:
            if event_room == room and live.add(event, bot):
                progress.append((at - start, live.total_pushes))
        cursor = len(follower.events)
        if live.total_pushes >= pushes and await queue_empty():
            drained = progress[-1][0]
            break
        await asyncio.sleep(0.1)
    end = time.monotonic()
    await asyncio.sleep(1.0)  # anything sent twice would show up now
    final = Tally()
    for event in await room_history(follower.driver, room):
        final.add(event, bot)
    return BurstResult(
        pushes=pushes,
        repos=repos,
        window_s=window_s,
        send_s=sent_end - start,
        statuses=statuses,
        drained_s=drained,
        tally=final,
        expected_pushes=expected_pushes,
        expected_commits=expected_commits,
        progress=progress,
        sent_repo={p.marker: p.repo for p in batch},
        start=start,
        end=end,
    )


def queued_times(database: Path, room: str) -> dict[str, list[float]]:
    """When the daemon queued each message to `room`, per repository (read-only, from its
    outbox): the rate limit is decided at queue time, the room sees send time."""
    uri = f"{database.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            "SELECT lower(repo), created_at FROM outbox WHERE room_id = ?", (room,)
        ).fetchall()
    out: defaultdict[str, list[float]] = defaultdict(list)
    for repo, at in rows:
        out[repo].append(at)
    return dict(out)
