"""Per-subscription filters: which of a repository's events a room wants.

`--branch GLOB` narrows branch pushes (as Gitea's own branch filter does; tag pushes are not
branch events and pass), `--events KIND,...` narrows the kinds. No filter means everything
the daemon announces.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from core.events import ANNOUNCED_KINDS, AnnouncedEvent, PushEvent
from core.records import Subscription


class FilterError(ValueError):
    """A filter a user typed that cannot work; the message says what would."""


def parse_events(text: str) -> str:
    """Validate `push,release,...` and return it canonical (sorted, deduplicated)."""
    kinds = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(kinds - ANNOUNCED_KINDS.keys())
    if not kinds or unknown:
        known = ", ".join(sorted(ANNOUNCED_KINDS))
        raise FilterError(f"unknown event kind {', '.join(unknown) or '(none)'}; known: {known}")
    return ",".join(sorted(kinds))


def wants(sub: Subscription, event: AnnouncedEvent) -> bool:
    if sub.events and event.kind not in sub.events.split(","):
        return False
    if sub.branch_glob and isinstance(event, PushEvent) and not event.is_tag:
        return fnmatchcase(event.ref_name, sub.branch_glob)
    return True


def rooms_wanting(subs: Iterable[Subscription], event: AnnouncedEvent) -> list[str]:
    """Each room once, if any of its subscriptions (repo or `OWNER/*`) wants the event."""
    return sorted({sub.room_id for sub in subs if wants(sub, event)})


def describe(sub: Subscription) -> str:
    parts = [
        f"branch {sub.branch_glob}" if sub.branch_glob else "all branches",
        f"events {sub.events}" if sub.events else "all events",
    ]
    return ", ".join(parts)
