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
from formatters.ci import render_status, render_workflow_job, render_workflow_run
from formatters.coalesced import render_pushes
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
    """Render an event, or None when no formatter handles its kind."""
    formatter = FORMATTERS.get(type(event))
    return formatter(event) if formatter else None


def render_held(events: Sequence[AnnouncedEvent]) -> Rendered | None:
    """One message for the events a rate window held back, in the order they came.

    A single held event is rendered as itself; pushes become one summary, and any other
    kind follows it rendered on its own, so nothing held is left out.
    """
    if len(events) == 1:
        return render(events[0])
    pushes = [event for event in events if isinstance(event, PushEvent)]
    parts = [render_pushes(pushes)] if pushes else []
    parts += [r for e in events if not isinstance(e, PushEvent) and (r := render(e))]
    if not parts:
        return None
    return Rendered("\n".join(p.body for p in parts), "".join(p.html for p in parts))


__all__ = ["FORMATTERS", "Rendered", "render", "render_held"]
