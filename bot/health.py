"""One snapshot of the daemon's health, served as JSON (`/webhook/health`) and as chat text."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Protocol

from bot.sync_loop import LinkState
from core.store import Store

# A backlog older than this means messages are not getting out: report "degraded".
STALE_QUEUE_S = 300.0


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


class LinkSource(Protocol):
    """The sync loop, or a fake in tests."""

    state: LinkState


def _last_seen(spec: str, last: dict[str, float]) -> float | None:
    """Latest delivery covered by a spec; `OWNER/*` covers all of the owner's repositories."""
    if not spec.endswith("/*"):
        return last.get(spec)
    owner = spec[:-1]
    return max((at for repo, at in last.items() if repo.startswith(owner)), default=None)


class Health:
    def __init__(self, store: Store, link: LinkSource, started_at: float | None = None) -> None:
        self._store = store
        self._link = link
        self._started_at = started_at or time.time()

    async def snapshot(self) -> dict[str, Any]:
        now = time.time()
        link: LinkState = self._link.state
        queue = await self._store.queue_stats(now)
        rooms: dict[str, list[str]] = defaultdict(list)
        for sub in await self._store.subscriptions():
            rooms[sub.repo].append(sub.room_id)
        stale = queue.oldest_age_s is not None and queue.oldest_age_s > STALE_QUEUE_S
        return {
            "status": "ok" if link.connected and not stale else "degraded",
            "uptime_s": round(now - self._started_at, 1),
            "matrix": {
                "connected": link.connected,
                "last_sync": link.last_sync,
                "last_error": link.last_error,
            },
            "queue": {
                "pending": queue.pending,
                "oldest_age_s": queue.oldest_age_s,
                "held": queue.held,
                "failed": queue.failed,
            },
            "failures": [
                {"room": room, "failed": count, "last_error": why}
                for room, count, why in await self._store.failures_by_room()
            ],
            "repos": [{"repo": repo, "rooms": sorted(ids)} for repo, ids in sorted(rooms.items())],
        }

    async def text(self) -> str:
        snap = await self.snapshot()
        now = time.time()
        matrix, queue = snap["matrix"], snap["queue"]
        last_sync = now - matrix["last_sync"] if matrix["last_sync"] else None
        link = "connected" if matrix["connected"] else f"DOWN ({matrix['last_error']})"
        oldest = queue["oldest_age_s"]
        lines = [
            f"Status: {snap['status']}, up {_ago(snap['uptime_s']).removesuffix(' ago')}",
            f"Homeserver: {link}, last sync {_ago(last_sync)}",
            f"Queue: {queue['pending']} pending"
            + (f", oldest {oldest:.0f} s" if oldest is not None else "")
            + f"; {queue['held']} held by the rate limit; {queue['failed']} failed",
        ]
        lines += [
            f"Failed: {f['failed']} message(s) to {f['room']}, latest: {f['last_error']}"
            for f in snap["failures"]
        ]
        last = await self._store.last_delivery_per_repo()
        for entry in snap["repos"]:
            seen = _last_seen(entry["repo"], last)
            lines.append(f"• {entry['repo']}: last delivery {_ago(now - seen if seen else None)}")
        return "\n".join(lines)
