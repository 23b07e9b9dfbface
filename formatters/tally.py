"""What each announced event counts as in a coalesced message: `2 PRs opened`, `1 comment`."""

from __future__ import annotations

from collections.abc import Sequence

from core.events import (
    AnnouncedEvent,
    CommentEvent,
    IssueEvent,
    PullRequestEvent,
    RefEvent,
    ReleaseEvent,
    ReviewEvent,
    WorkflowJobEvent,
)
from formatters.common import plural

# (singular, plural) phrases; the count goes in front: `1 PR merged`, `3 PRs merged`.
Label = tuple[str, str]

PR_LABELS: dict[str, Label] = {
    "opened": ("PR opened", "PRs opened"),
    "reopened": ("PR reopened", "PRs reopened"),
    "merged": ("PR merged", "PRs merged"),
    "closed": ("PR closed", "PRs closed"),
    "synchronized": ("PR updated", "PRs updated"),
    "review_requested": ("review request", "review requests"),
}
REVIEW_LABELS: dict[str, Label] = {
    "approved": ("approval", "approvals"),
    "rejected": ("change request", "change requests"),
    "comment": ("review comment", "review comments"),
}
CI_FAILURE: Label = ("CI failure", "CI failures")


def label_of(event: AnnouncedEvent) -> Label:
    """The kind an event is counted as; CI events are only ever held when they failed."""
    if isinstance(event, PullRequestEvent):
        merged = event.action == "closed" and event.pull_request.merged
        return PR_LABELS.get("merged" if merged else event.action, ("PR event", "PR events"))
    if isinstance(event, ReviewEvent):
        return REVIEW_LABELS.get(event.verdict, ("review", "reviews"))
    if isinstance(event, IssueEvent):
        return (f"issue {event.action}", f"issues {event.action}")
    if isinstance(event, CommentEvent):
        return ("comment", "comments")
    if isinstance(event, ReleaseEvent):
        return (f"release {event.action}", f"releases {event.action}")
    if isinstance(event, RefEvent):
        kind = "tag" if event.ref_type == "tag" else "branch"
        verb = "deleted" if event.action == "delete" else "created"
        return (f"{kind} {verb}", f"{kind}{'s' if kind == 'tag' else 'es'} {verb}")
    if isinstance(event, WorkflowJobEvent):
        return ("failed CI job", "failed CI jobs")
    return CI_FAILURE


def tally(events: Sequence[AnnouncedEvent]) -> list[str]:
    """Exact counts per kind, in the order the kinds first appear: `['2 PRs opened', …]`."""
    counts: dict[Label, int] = {}
    for event in events:
        label = label_of(event)
        counts[label] = counts.get(label, 0) + 1
    return [plural(n, one, many) for (one, many), n in counts.items()]
