"""One snapshot of the daemon's health, served as JSON (`/webhook/health`) and as chat text.

Both carry the same facts: uptime, the homeserver link, the queue, failed messages per
room, the last delivery per subscription, and — over the last 24 hours — signature
failures (almost always a secret that differs between Gitea and the daemon) and send
errors. Problems must be visible here before users notice missing notices.

Scoped to who asks (`HealthScope`): global status and queue totals for everyone, but a
room sees only its own subscriptions, failures and last deliveries; other rooms and the
details of signature failures (remote addresses, reasons) are for admins and the
operator (the full JSON; see receiver/app.py for who gets it over HTTP).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

from bot.sync_loop import LinkState
from core import diagnostics
from core.diagnostics import IntakeSummary, SendErrorSummary
from core.records import Subscription
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


@dataclass(frozen=True, slots=True)
class HealthScope:
    """Who asks: a room (None: the operator, over HTTP) and whether the asker is an admin."""

    room_id: str | None = None
    admin: bool = False

    @property
    def everything(self) -> bool:
        return self.admin or self.room_id is None

    def sees(self, room_id: str | None) -> bool:
        return self.everything or room_id == self.room_id


FULL = HealthScope()


class LinkSource(Protocol):
    """The sync loop, or a fake in tests."""

    state: LinkState


def _last_seen(spec: str, last: dict[str, float]) -> float | None:
    """Latest delivery covered by a spec; `OWNER/*` covers all of the owner's repositories."""
    if not spec.endswith("/*"):
        return last.get(spec)
    owner = spec[:-1]
    return max((at for repo, at in last.items() if repo.startswith(owner)), default=None)


def _signature_facts(summary: IntakeSummary, scope: HealthScope) -> dict[str, Any]:
    """The count for everyone; where the last one came from and why only for admins."""
    return {
        "last_24h": summary.count,
        "last_at": summary.last_at,
        "last_reason": summary.last_reason if scope.everything else None,
        "last_remote": summary.last_remote if scope.everything else None,
        "hint": SECRET_HINT if summary.count else None,
    }


def _send_error_facts(summary: SendErrorSummary, scope: HealthScope) -> dict[str, Any]:
    """Totals for everyone; the latest error only to whom its room is visible."""
    own = summary.last_room is None or scope.sees(summary.last_room)
    return {
        "last_24h": summary.errors,
        "failed_24h": summary.failed,
        "last_error": summary.last_error if own else None,
        "last_room": summary.last_room if own else None,
        "latest_elsewhere": not own,
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

    async def snapshot(self, scope: HealthScope = FULL) -> dict[str, Any]:
        now = time.time()
        link: LinkState = self._link.state
        queue = await self._store.queue_stats(now)
        subs = await self._visible_subscriptions(scope)
        rooms: dict[str, list[str]] = defaultdict(list)
        public_only: dict[str, list[str]] = defaultdict(list)
        for sub in subs:
            rooms[sub.repo].append(sub.room_id)
            if not sub.trusted:
                public_only[sub.repo].append(sub.room_id)
        stale = queue.oldest_age_s is not None and queue.oldest_age_s > STALE_QUEUE_S
        signatures = await self._store.intake_summary(diagnostics.BAD_SIGNATURE, now - WINDOW_S)
        send_errors = await self._store.send_errors_since(now - WINDOW_S)
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
                if scope.sees(room)
            ],
            "repos": [{"repo": repo, "rooms": sorted(ids)} for repo, ids in sorted(rooms.items())],
            # The same shape, for the subscriptions that see public repositories only.
            "public_only": [
                {"repo": repo, "rooms": sorted(ids)} for repo, ids in sorted(public_only.items())
            ],
            "last_delivery": await self._last_delivery(scope, sorted(rooms), set(public_only)),
            "signature_failures": _signature_facts(signatures, scope),
            "send_errors": _send_error_facts(send_errors, scope),
        }

    async def _last_delivery(
        self, scope: HealthScope, specs: list[str], public_only: set[str]
    ) -> dict[str, float | None]:
        """The latest delivery per spec. A room's public-only subscription does not learn
        even when a private repository it covers had one; admins see every time."""
        every = await self._store.last_delivery_per_repo()
        hidden = set() if scope.everything else public_only
        public = await self._store.last_delivery_per_repo(public_only=True) if hidden else {}
        return {spec: _last_seen(spec, public if spec in hidden else every) for spec in specs}

    async def _visible_subscriptions(self, scope: HealthScope) -> list[Subscription]:
        if scope.everything:
            return await self._store.subscriptions()
        assert scope.room_id is not None
        return await self._store.subscriptions(scope.room_id)

    async def text(self, scope: HealthScope = FULL) -> str:
        snap = await self.snapshot(scope)
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
        lines += _subscription_lines(snap, scope, now)
        return "\n".join(lines)


def _subscription_lines(snap: dict[str, Any], scope: HealthScope, now: float) -> list[str]:
    """The last delivery per subscription: this room's, or every room's for an admin."""
    seen_at: dict[str, float | None] = snap["last_delivery"]
    lines = [
        f"• {spec}: last delivery {_ago(now - at if at else None)}" for spec, at in seen_at.items()
    ]
    if scope.everything:
        return lines
    if not lines:
        return ["This room has no subscriptions."]
    public_only = {entry["repo"] for entry in snap["public_only"]}
    marked = [
        line + " (public only)" if spec in public_only else line
        for spec, line in zip(seen_at, lines, strict=True)
    ]
    return ["This room's subscriptions:", *marked]


def _signature_line(facts: dict[str, Any], now: float) -> str:
    if not facts["last_24h"]:
        return "Signature failures (24 h): none"
    latest = (
        f"Signature failures (24 h): {facts['last_24h']}, latest {_ago(now - facts['last_at'])}"
    )
    if facts["last_reason"] is None:  # details are for admins
        return f"{latest} — {facts['hint']}"
    return (
        f"{latest} from {facts['last_remote'] or 'unknown'}: {facts['last_reason']}"
        f" — {facts['hint']}"
    )


def _send_errors_line(facts: dict[str, Any]) -> str:
    if not facts["last_24h"]:
        return "Send errors (24 h): none"
    if facts["last_error"]:
        latest = f"latest: {facts['last_error']} ({facts['last_room']})"
    elif facts["latest_elsewhere"]:
        latest = "the latest unresolved error is in another room"
    else:
        latest = "all retried successfully"
    return (
        f"Send errors (24 h): {facts['last_24h']} failed attempt(s), "
        f"{facts['failed_24h']} message(s) failed for good; {latest}"
    )
