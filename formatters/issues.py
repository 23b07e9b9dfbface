"""Issues (opened, closed, reopened) and comments on issues and pull requests."""

from __future__ import annotations

from core.events import CommentEvent, IssueEvent
from formatters.common import actor, headline, titled
from formatters.rendered import Rendered
from formatters.safe import esc

ISSUE_VERBS = {"opened": "opened", "closed": "closed", "reopened": "reopened"}


def render_issue(event: IssueEvent) -> Rendered | None:
    verb = ISSUE_VERBS.get(event.action)
    if verb is None:
        return None
    issue = event.issue
    text, html = titled("issue", issue.number, issue.title, issue.html_url)
    who = actor(event)
    return headline(event, f"{who} {verb} {text}", f"{esc(who)} {verb} {html}", issue.html_url)


def render_comment(event: CommentEvent) -> Rendered | None:
    if event.action != "created":
        return None  # edits and deletions of comments are noise
    issue = event.issue
    label = "PR" if event.on_pull_request else "issue"
    url = event.comment.html_url or issue.html_url
    text, html = titled(label, issue.number, issue.title, url)
    return headline(
        event,
        f"{actor(event)} commented on {text}",
        f"{esc(actor(event))} commented on {html}",
        url,
        quote=event.comment.body,
    )
