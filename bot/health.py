"""One snapshot of the daemon's health, served as JSON (`/webhook/health`) and as chat text.

Both carry the same facts: uptime, the homeserver link, the queue, failed messages per
room, the last delivery per subscription, and — over the last 24 hours — signature
failures (almost always a secret that differs between Gitea and the daemon) and send
errors. Problems must be visible here before users notice missing notices.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Protocol

from bot.sync_loop import LinkState
from core import diagnostics
from core.diagnostics import IntakeSummary, SendErrorSummary
from core.store import Store

# A backlog older than this means messages are not getting out: report "degraded".
STALE_QUEUE_S = 300.0
WINDOW_S = 86400.0
SECRET_HINT = (
    "a wrong secret is the usual cause: the webhook's secret in Gitea must equal "
    "NOTIFIER_WEBHOOK_SECRET (re-run `forge-notifier hooks install` to set it)"
)


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


def _signature_facts(summary: IntakeSummary) -> dict[str, Any]:
    return {
        "last_24h": summary.count,
        "last_at": summary.last_at,
        "last_reason": summary.last_reason,
        "last_remote": summary.last_remote,
        "hint": SECRET_HINT if summary.count else None,
    }


def _send_error_facts(summary: SendErrorSummary) -> dict[str, Any]:
    return {
        "last_24h": summary.errors,
        "failed_24h": summary.failed,
        "last_error": summary.last_error,
        "last_room": summary.last_room,
    }


class Health:
    def __init__(
        self,
        store: Store,
        link: LinkSource,
        started_at: float | None = None,
        encryption: str = "off",
    ) -> None:
        """`encryption`: "on", or why it is off (shown so an operator sees it at once)."""
        self._store = store
        self._link = link
        self._started_at = started_at or time.time()
        self._encryption = encryption

    async def snapshot(self) -> dict[str, Any]:
        now = time.time()
        link: LinkState = self._link.state
        queue = await self._store.queue_stats(now)
        rooms: dict[str, list[str]] = defaultdict(list)
        for sub in await self._store.subscriptions():
            rooms[sub.repo].append(sub.room_id)
        stale = queue.oldest_age_s is not None and queue.oldest_age_s > STALE_QUEUE_S
        last = await self._store.last_delivery_per_repo()
        signatures = await self._store.intake_summary(diagnostics.BAD_SIGNATURE, now - WINDOW_S)
        return {
            "status": "ok" if link.connected and not stale else "degraded",
            "uptime_s": round(now - self._started_at, 1),
            "matrix": {
                "connected": link.connected,
                "last_sync": link.last_sync,
                "last_error": link.last_error,
                "encryption": self._encryption,
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
            "last_delivery": {spec: _last_seen(spec, last) for spec in sorted(rooms)},
            "signature_failures": _signature_facts(signatures),
            "send_errors": _send_error_facts(await self._store.send_errors_since(now - WINDOW_S)),
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
            f"Homeserver: {link}, last sync {_ago(last_sync)}; encryption {matrix['encryption']}",
            f"Queue: {queue['pending']} pending"
            + (f", oldest {oldest:.0f} s" if oldest is not None else "")
            + f"; {queue['held']} held by the rate limit; {queue['failed']} failed",
        ]
        lines += [
            f"Failed: {f['failed']} message(s) to {f['room']}, latest: {f['last_error']}"
            for f in snap["failures"]
        ]
        lines.append(_signature_line(snap["signature_failures"], now))
        lines.append(_send_errors_line(snap["send_errors"]))
        for spec, seen in snap["last_delivery"].items():
            lines.append(f"• {spec}: last delivery {_ago(now - seen if seen else None)}")
        return "\n".join(lines)


def _signature_line(facts: dict[str, Any], now: float) -> str:
    if not facts["last_24h"]:
        return "Signature failures (24 h): none"
    return (
        f"Signature failures (24 h): {facts['last_24h']}, latest {_ago(now - facts['last_at'])}"
        f" from {facts['last_remote'] or 'unknown'}: {facts['last_reason']} — {facts['hint']}"
    )


def _send_errors_line(facts: dict[str, Any]) -> str:
    if not facts["last_24h"]:
        return "Send errors (24 h): none"
    latest = (
        f"latest: {facts['last_error']} ({facts['last_room']})"
        if facts["last_error"]
        else "all retried successfully"
    )
    return (
        f"Send errors (24 h): {facts['last_24h']} failed attempt(s), "
        f"{facts['failed_24h']} message(s) failed for good; {latest}"
    )
