"""Typed models of the Gitea/Forgejo/Gogs webhook payloads the daemon announces.

The receiver validates with them before answering 2xx (so a malformed payload is a 400,
not a crash later), and the dispatcher parses the stored body again to render it. Each
event has a `category`, the name users filter on with `!subscribe --events`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, ValidationError

from core.payload_parts import (
    ZERO_SHA,
    Commit,
    EventBase,
    ForgeUser,
    Model,
    Name,
    PayloadError,
    Repository,
    Text,
    none_as_empty_list,
)

__all__ = ["Commit", "ForgeUser", "PayloadError", "Repository"]


def short_ref(ref: str) -> str:
    """`refs/heads/main` → `main`: Gitea sends short refs in create/delete, Forgejo full ones."""
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref


class PushEvent(EventBase):
    """`push`: `commits` is newest-first, cut to 5 by Gitea; `total_commits` is the real count."""

    ref: Name
    before: Text = ""
    after: Text = ""
    compare_url: Text = ""
    commits: Annotated[list[Commit], BeforeValidator(none_as_empty_list)] = Field(
        default_factory=list
    )
    total_commits: int | None = Field(default=None, ge=0)
    pusher: ForgeUser | None = None

    category: ClassVar[str] = "push"

    @property
    def actor(self) -> str:
        user = self.pusher or self.sender
        return user.display if user else "someone"

    @property
    def commit_count(self) -> int:
        """Older Gitea and Gogs send no `total_commits`; then the list is all there is."""
        return self.total_commits if self.total_commits is not None else len(self.commits)

    @property
    def is_tag(self) -> bool:
        return self.ref.startswith("refs/tags/")

    @property
    def ref_name(self) -> str:
        return short_ref(self.ref)

    @property
    def created(self) -> bool:
        return bool(ZERO_SHA.match(self.before))

    @property
    def deleted(self) -> bool:
        return bool(ZERO_SHA.match(self.after))

    @property
    def is_test_delivery(self) -> bool:
        """Gitea's "Test Delivery" button: `before == after` and one fake commit."""
        return bool(self.before) and self.before == self.after and len(self.commits) <= 1


class RefEvent(EventBase):
    """`create` / `delete` of a branch or tag."""

    ref: Name
    ref_type: Text = "branch"
    action: str = "create"  # set by parse_event from the event kind, not by the forge

    @property
    def category(self) -> str:
        return self.action

    @property
    def ref_name(self) -> str:
        return short_ref(self.ref)


class Release(Model):
    tag_name: Text = ""
    name: Text = ""
    html_url: Text = ""
    draft: bool = False
    prerelease: bool = False


class ReleaseEvent(EventBase):
    action: Text = ""
    release: Release

    category: ClassVar[str] = "release"


class PullRequest(Model):
    number: int | None = None  # some forges put it only at the top level
    title: Text = ""
    html_url: Text = ""
    merged: bool | None = False
    head: dict[str, Any] | None = None
    base: dict[str, Any] | None = None

    @property
    def base_ref(self) -> str:
        return str((self.base or {}).get("ref") or "")

    @property
    def head_ref(self) -> str:
        return str((self.head or {}).get("ref") or "")


class _PullRequestEventBase(EventBase):
    action: Text = ""
    number: int | None = None
    pull_request: PullRequest

    @property
    def pr_number(self) -> int | None:
        return self.pull_request.number or self.number


class PullRequestEvent(_PullRequestEventBase):
    requested_reviewer: ForgeUser | None = None

    @property
    def category(self) -> str:
        """Every push to a PR's branch is a `synchronized`: a category of its own."""
        return "pull_request_sync" if self.action == "synchronized" else "pull_request"


class Review(Model):
    type: Text = ""
    content: Text = ""


class ReviewEvent(_PullRequestEventBase):
    review: Review
    kind: str = ""  # the event kind it came as, when the review type is missing

    category: ClassVar[str] = "review"

    @property
    def verdict(self) -> str:
        """approved / rejected / comment, from the review's type or else the event kind."""
        source = self.review.type or self.kind
        for verdict in ("approved", "rejected"):
            if verdict in source:
                return verdict
        return "comment"


class Issue(Model):
    number: int
    title: Text = ""
    html_url: Text = ""
    state: Text = ""
    pull_request: dict[str, Any] | None = None


class IssueEvent(EventBase):
    action: Text = ""
    issue: Issue

    category: ClassVar[str] = "issues"


class Comment(Model):
    body: Text = ""
    html_url: Text = ""


class CommentEvent(EventBase):
    action: Text = ""
    issue: Issue
    comment: Comment
    is_pull: bool | None = None

    category: ClassVar[str] = "comment"

    @property
    def on_pull_request(self) -> bool:
        return bool(self.is_pull) or self.issue.pull_request is not None


class StatusEvent(EventBase):
    """A commit status (`status`), as external CI systems report them."""

    sha: Name
    state: Text = ""
    context: Text = ""
    description: Text = ""
    target_url: Text = ""
    branches: Annotated[list[dict[str, Any]], BeforeValidator(none_as_empty_list)] = Field(
        default_factory=list
    )

    category: ClassVar[str] = "ci"


class WorkflowRun(Model):
    name: Text = ""
    display_title: Text = ""
    head_branch: Text = ""
    head_sha: Text = ""
    status: Text = ""
    conclusion: Text = ""
    html_url: Text = ""
    run_number: int | None = None


class WorkflowRunEvent(EventBase):
    """Gitea Actions (`workflow_run`): one message when a run completes unsuccessfully."""

    action: Text = ""
    workflow_run: WorkflowRun

    category: ClassVar[str] = "ci"


class WorkflowJobEvent(EventBase):
    """Gitea Actions (`workflow_job`): a category of its own, off by default (runs suffice)."""

    action: Text = ""
    workflow_job: WorkflowRun

    category: ClassVar[str] = "ci_job"


AnnouncedEvent = (
    PushEvent
    | RefEvent
    | ReleaseEvent
    | PullRequestEvent
    | ReviewEvent
    | IssueEvent
    | CommentEvent
    | StatusEvent
    | WorkflowRunEvent
    | WorkflowJobEvent
)

_REVIEW_KINDS = (
    "pull_request_review_approved",
    "pull_request_review_rejected",
    "pull_request_review_comment",
    "pull_request_approved",
    "pull_request_rejected",
    "pull_request_review",
)

# Event kind (X-Gitea-Event-Type, else X-Gitea-Event / X-Gogs-Event / ...) → payload model.
ANNOUNCED_KINDS: dict[str, type[AnnouncedEvent]] = {
    "push": PushEvent,
    "create": RefEvent,
    "delete": RefEvent,
    "release": ReleaseEvent,
    "pull_request": PullRequestEvent,
    "pull_request_sync": PullRequestEvent,
    "pull_request_review_request": PullRequestEvent,
    **dict.fromkeys(_REVIEW_KINDS, ReviewEvent),
    "issues": IssueEvent,
    "issue_comment": CommentEvent,
    "pull_request_comment": CommentEvent,  # a review comment when the payload has a review
    "status": StatusEvent,
    "workflow_run": WorkflowRunEvent,
    "workflow_job": WorkflowJobEvent,
}

# What users name in `--events`; a subscription without --events gets DEFAULT_CATEGORIES.
CATEGORIES = (
    "push", "create", "delete", "release", "pull_request", "pull_request_sync", "review",
    "issues", "comment", "ci", "ci_job",
)  # fmt: skip
DEFAULT_CATEGORIES = frozenset({"push", "release", "pull_request", "review", "issues", "ci"})


class _AnyRepoPayload(Model):
    repository: Repository | None = None


def parse_event(kind: str, payload: Any) -> AnnouncedEvent | None:
    """Validate a decoded payload of `kind`; None for kinds the daemon does not announce.

    Raises PayloadError naming the first offending field (never echoing its value).
    """
    if not isinstance(payload, dict):
        raise PayloadError("payload must be a JSON object")
    model = ANNOUNCED_KINDS.get(kind)
    if model is CommentEvent and "review" in payload and "comment" not in payload:
        model = ReviewEvent  # X-Gitea-Event: pull_request_comment is a review comment
    if model is None:
        return None
    extra = {"action": kind} if model is RefEvent else {}
    extra |= {"kind": kind} if model is ReviewEvent else {}
    try:
        return model.model_validate(payload | extra)
    except ValidationError as exc:
        raise PayloadError(f"not a Gitea {kind} payload: {_first_problem(exc)}") from None


def repo_of(payload: Any) -> str | None:
    """Best-effort repository name of any payload, for recording ignored events."""
    try:
        parsed = _AnyRepoPayload.model_validate(payload)
    except ValidationError:
        return None
    return parsed.repository.full_name if parsed.repository else None


def private_of(payload: Any) -> bool:
    """Visibility of any payload's repository, for recording ignored events; unknown = private."""
    try:
        parsed = _AnyRepoPayload.model_validate(payload)
    except ValidationError:
        return True
    return parsed.repository is None or not parsed.repository.is_public


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg'].lower()}"
