"""Pure rendering of forge events: event in, `Rendered(body, html)` out, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.events import (
    AnnouncedEvent,
    CommentEvent,
    IssueEvent,
    PullRequestEvent,
    PushEvent,
    RefEvent,
    ReleaseEvent,
    ReviewEvent,
    StatusEvent,
    WorkflowJobEvent,
    WorkflowRunEvent,
)
from formatters.budget import fit
from formatters.ci import render_status, render_workflow_job, render_workflow_run
from formatters.coalesced import render_coalesced
from formatters.issues import render_comment, render_issue
from formatters.pull_requests import render_pull_request, render_review
from formatters.push import render_push
from formatters.refs import render_ref
from formatters.releases import render_release
from formatters.rendered import Rendered

# Event model → formatter. A formatter returns None for actions it does not announce
# (an edited issue, a green CI run): "unhandled", never an error.
FORMATTERS: dict[type[Any], Callable[[Any], Rendered | None]] = {
    PushEvent: render_push,
    RefEvent: render_ref,
    ReleaseEvent: render_release,
    PullRequestEvent: render_pull_request,
    ReviewEvent: render_review,
    IssueEvent: render_issue,
    CommentEvent: render_comment,
    StatusEvent: render_status,
    WorkflowRunEvent: render_workflow_run,
    WorkflowJobEvent: render_workflow_job,
}


def render(event: AnnouncedEvent) -> Rendered | None:
    """Render an event, or None when no formatter handles its kind; always within budget."""
    formatter = FORMATTERS.get(type(event))
    rendered = formatter(event) if formatter else None
    return fit(rendered) if rendered is not None else None


def render_held(events: Sequence[AnnouncedEvent]) -> Rendered | None:
    """One message for the events a rate window held back, in the order they came.

    A single held event is rendered as itself; more become one message that counts every
    kind exactly and details what fits (formatters.coalesced).
    """
    if len(events) == 1:
        return render(events[0])
    return render_coalesced(events, render)


__all__ = ["FORMATTERS", "Rendered", "render", "render_held"]
