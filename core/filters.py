"""Per-subscription filters: which of a repository's events a room wants.

`--branch GLOB` narrows branch events (pushes, branch creation and deletion) as Gitea's own
branch filter does; tag events are not branch events and pass. `--events CATEGORY,...`
narrows the categories; without it a subscription gets DEFAULT_CATEGORIES, chosen so a
room is not flooded (no comments, no PR-branch updates, no create/delete that the push
already announces). Before any of that, visibility: a private repository's events reach
only trusted subscriptions (see core/trust.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from core.events import CATEGORIES, DEFAULT_CATEGORIES, AnnouncedEvent, PushEvent, RefEvent
from core.records import Subscription


class FilterError(ValueError):
    """A filter a user typed that cannot work; the message says what would."""


def parse_events(text: str) -> str:
    """Validate `push,release,...` and return it canonical (sorted, deduplicated)."""
    kinds = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = sorted(kinds - set(CATEGORIES))
    if not kinds or unknown:
        known = ", ".join(CATEGORIES)
        raise FilterError(f"unknown event kind {', '.join(unknown) or '(none)'}; known: {known}")
    return ",".join(sorted(kinds))


def _branch_of(event: AnnouncedEvent) -> str | None:
    """The branch a branch event is about; None for events a branch filter leaves alone."""
    if isinstance(event, PushEvent) and not event.is_tag:
        return event.ref_name
    if isinstance(event, RefEvent) and event.ref_type == "branch":
        return event.ref_name
    return None


def visible_to(sub: Subscription, private: bool) -> bool:
    """Events of private (or unknown-visibility) repositories reach trusted subscriptions only."""
    return bool(sub.trusted) or not private


def wants(sub: Subscription, event: AnnouncedEvent) -> bool:
    if not visible_to(sub, event.private):
        return False
    categories = set(sub.events.split(",")) if sub.events else DEFAULT_CATEGORIES
    if event.category not in categories:
        return False
    branch = _branch_of(event)
    if sub.branch_glob and branch is not None:
        return fnmatchcase(branch, sub.branch_glob)
    return True


def rooms_wanting(subs: Iterable[Subscription], event: AnnouncedEvent) -> list[str]:
    """Each room once, if any of its subscriptions (repo or `OWNER/*`) wants the event."""
    return sorted({sub.room_id for sub in subs if wants(sub, event)})


def describe(sub: Subscription) -> str:
    branches = f"branch {sub.branch_glob}" if sub.branch_glob else "all branches"
    events = f"events {sub.events}" if sub.events else "default events"
    return f"{branches}, {events}"
