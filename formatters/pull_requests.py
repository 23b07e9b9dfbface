"""Pull requests and their reviews."""

from __future__ import annotations

from core.events import PullRequestEvent, ReviewEvent
from formatters.common import actor, headline, titled
from formatters.rendered import Rendered
from formatters.safe import clip, esc

# action → verb; anything else (edited, labelled, assigned, …) is not announced.
PR_VERBS = {
    "opened": "opened",
    "reopened": "reopened",
    "synchronized": "pushed to",
    "review_requested": "requested a review on",
}
REVIEW_VERBS = {
    "approved": "approved",
    "rejected": "requested changes on",
    "comment": "commented on",
}


def render_pull_request(event: PullRequestEvent) -> Rendered | None:
    pr = event.pull_request
    verb = PR_VERBS.get(event.action)
    if event.action == "closed":
        verb = "merged" if pr.merged else "closed"
    if verb is None:
        return None
    text, html = titled("PR", event.pr_number, pr.title, pr.html_url)
    branches = (
        f" ({clip(pr.head_ref)} → {clip(pr.base_ref)})"
        if event.action == "opened" and pr.base_ref
        else ""
    )
    if event.action == "review_requested" and event.requested_reviewer:
        verb = f"requested a review from {clip(event.requested_reviewer.display)} on"
    return headline(
        event,
        f"{actor(event)} {verb} {text}{branches}",
        f"{esc(actor(event))} {esc(verb)} {html}{esc(branches)}",
        pr.html_url,
    )


def render_review(event: ReviewEvent) -> Rendered:
    pr = event.pull_request
    verb = REVIEW_VERBS[event.verdict]
    text, html = titled("PR", event.pr_number, pr.title, pr.html_url)
    return headline(
        event,
        f"{actor(event)} {verb} {text}",
        f"{esc(actor(event))} {verb} {html}",
        pr.html_url,
        quote=event.review.content,
    )
