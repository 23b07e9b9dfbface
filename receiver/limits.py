"""Length caps on the names a verified payload carries, checked before it is stored.

A signed payload is trusted to come from the forge, not to be sane: a 1 MB repository name
or ref would be stored, fail for good at the homeserver (too large for an event) and slow
every view that lists it. Gitea caps owner and repository names at 40 and 100 characters;
git refs may be long, but 1 KiB is far beyond any real branch or tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.events import (
    AnnouncedEvent,
    PullRequestEvent,
    PushEvent,
    RefEvent,
    ReviewEvent,
    WorkflowJobEvent,
    WorkflowRunEvent,
)

MAX_REPO_NAME = 256
MAX_REF = 1024


def oversized_field(event: AnnouncedEvent | None, payload: Any) -> str | None:
    """The first field over its cap, as `name longer than N characters`; None when all fit."""
    for name, value, limit in _capped_fields(event, payload):
        if len(value) > limit:
            return f"{name} longer than {limit} characters"
    return None


def _capped_fields(event: AnnouncedEvent | None, payload: Any) -> Iterator[tuple[str, str, int]]:
    yield "repository.full_name", _full_name(payload), MAX_REPO_NAME
    if isinstance(event, PushEvent | RefEvent):
        yield "ref", event.ref, MAX_REF
    if isinstance(event, PullRequestEvent | ReviewEvent):
        yield "pull_request.base.ref", event.pull_request.base_ref, MAX_REF
        yield "pull_request.head.ref", event.pull_request.head_ref, MAX_REF
    if isinstance(event, WorkflowRunEvent):
        yield "workflow_run.head_branch", event.workflow_run.head_branch, MAX_REF
    if isinstance(event, WorkflowJobEvent):
        yield "workflow_job.head_branch", event.workflow_job.head_branch, MAX_REF


def _full_name(payload: Any) -> str:
    """Read from the raw payload: also for kinds not announced, which are stored too."""
    repository = payload.get("repository") if isinstance(payload, dict) else None
    name = repository.get("full_name") if isinstance(repository, dict) else None
    return name if isinstance(name, str) else ""
