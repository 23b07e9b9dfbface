"""Which event and which delivery a request is, across Gitea, Forgejo, Gogs and GitHub headers."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Fine-grained names first: Gitea's X-Gitea-Event says "pull_request" for a review,
# X-Gitea-Event-Type says "pull_request_approved".
EVENT_HEADERS = (
    "X-Gitea-Event-Type",
    "X-Forgejo-Event-Type",
    "X-Gitea-Event",
    "X-Forgejo-Event",
    "X-Gogs-Event",
    "X-GitHub-Event",
)
DELIVERY_HEADERS = (
    "X-Gitea-Delivery",
    "X-Forgejo-Delivery",
    "X-Gogs-Delivery",
    "X-GitHub-Delivery",
)
# Gitea's delivery ids are UUIDs (36 characters) and its longest event type is under 40:
# anything far longer is not a forge, and would be stored and shown in every health view.
MAX_DELIVERY_ID = 128
MAX_EVENT_HEADER = 64
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")


class HeaderError(ValueError):
    """An event or delivery header that no forge would send (it is not signed, so check it)."""


def _first(headers: Mapping[str, str], names: tuple[str, ...], limit: int) -> str | None:
    for name in names:
        value = headers.get(name, "").strip()
        if not value:
            continue
        if len(value) > limit:
            raise HeaderError(f"{name} header longer than {limit} characters")
        if not _PRINTABLE_ASCII.match(value):
            raise HeaderError(f"invalid {name} header")
        return value
    return None


def event_kind(headers: Mapping[str, str]) -> str | None:
    value = _first(headers, EVENT_HEADERS, MAX_EVENT_HEADER)
    return value.lower() if value else None


def delivery_id(headers: Mapping[str, str]) -> str | None:
    return _first(headers, DELIVERY_HEADERS, MAX_DELIVERY_ID)
