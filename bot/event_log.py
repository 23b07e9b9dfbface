"""`forge-notifier events`: recent deliveries, for operators asking "did Gitea call us?".

Stored deliveries (with the rooms each was posted to) and intake log entries (refused
requests and duplicates) are merged by time, so a wrong secret shows up right where the
missing push would have been.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from core.diagnostics import IntakeEntry, LoggedDelivery
from core.store import Store

HEADERS = ("TIME (UTC)", "DELIVERY", "EVENT", "REPO", "RESULT", "ROOMS")
RESULT_WIDTH = 60


def _from_intake(entry: IntakeEntry) -> LoggedDelivery:
    detail = f"{entry.status} {entry.reason}" if entry.reason else str(entry.status)
    detail = f"{entry.count}x {detail}" if entry.count > 1 else detail
    if entry.remote:
        detail += f", from {entry.remote}"
    return LoggedDelivery(
        entry.at, entry.delivery_id or "-", entry.event or "-", entry.repo, entry.result, detail
    )


async def recent_events(store: Store, limit: int, repo: str | None = None) -> list[LoggedDelivery]:
    """The newest `limit` events, oldest first (as a log reads, the latest at the bottom)."""
    stored = await store.delivery_log(limit, repo)
    turned_away = [_from_intake(entry) for entry in await store.intake_log(limit, repo)]
    newest = sorted([*stored, *turned_away], key=lambda e: e.at, reverse=True)[:limit]
    return newest[::-1]


def _cells(event: LoggedDelivery) -> tuple[str, ...]:
    when = datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%d %H:%M:%S")
    result = f"{event.result}: {event.note}" if event.note else event.result
    if len(result) > RESULT_WIDTH:
        result = result[: RESULT_WIDTH - 1] + "…"
    rooms = ", ".join(f"{post.room_id} ({post.status})" for post in event.rooms) or "-"
    return when, event.delivery_id, event.event, event.repo or "-", result, rooms


def format_events(events: Sequence[LoggedDelivery]) -> list[str]:
    """Aligned columns; the rooms column last, as it is the one that can grow long."""
    rows = [HEADERS, *(_cells(event) for event in events)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS) - 1)]
    lines = []
    for *cells, rooms in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        lines.append("  ".join([*padded, rooms]))
    return lines
