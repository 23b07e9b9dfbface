"""Typed models of the Gitea/Forgejo/Gogs webhook payloads the daemon announces.

The receiver validates with them before answering 2xx (so a malformed payload is a 400,
not a crash later), and the dispatcher parses the stored body again to render it.
Models ignore unknown fields: forges add fields between releases.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

ZERO_SHA = re.compile(r"^0+$")
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def _none_to_empty_list(value: Any) -> Any:
    """Gogs and some Gitea versions send `null` where a list is meant."""
    return [] if value is None else value


def _none_to_empty_str(value: Any) -> Any:
    return "" if value is None else value


def _encodable(value: str) -> str:
    """JSON may carry lone surrogates (`\\ud800`) that no forge sends and SQLite rejects."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains invalid unicode") from None
    return value


Text = Annotated[str, BeforeValidator(_none_to_empty_str), AfterValidator(_encodable)]
Name = Annotated[str, Field(min_length=1), AfterValidator(_encodable)]


class PayloadError(ValueError):
    """The body is JSON but not a payload of the announced kind; the message is short and safe."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ForgeUser(_Model):
    login: Text = ""
    username: Text = ""
    full_name: Text = ""

    @property
    def display(self) -> str:
        """The forge login is what teammates recognise; fall back to whatever is set."""
        return self.login or self.username or self.full_name or "someone"


class CommitAuthor(_Model):
    name: Text = ""
    username: Text = ""


class Commit(_Model):
    id: Name
    message: Text = ""
    url: Text = ""
    author: CommitAuthor = CommitAuthor()

    @property
    def short_id(self) -> str:
        return self.id[:7]

    @property
    def title(self) -> str:
        """First line of the message: multi-line messages make notices unreadable."""
        return self.message.strip().splitlines()[0] if self.message.strip() else ""


class Repository(_Model):
    full_name: str = Field(pattern=REPO_NAME.pattern)
    html_url: Text = ""


class PushEvent(_Model):
    """`push`: `commits` is newest-first, cut to 5 by Gitea; `total_commits` is the real count."""

    kind: ClassVar[str] = "push"

    ref: Name
    before: Text = ""
    after: Text = ""
    compare_url: Text = ""
    commits: Annotated[list[Commit], BeforeValidator(_none_to_empty_list)] = []
    total_commits: int | None = Field(default=None, ge=0)
    repository: Repository
    pusher: ForgeUser | None = None
    sender: ForgeUser | None = None

    @property
    def repo(self) -> str:
        return self.repository.full_name

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
        for prefix in ("refs/heads/", "refs/tags/"):
            if self.ref.startswith(prefix):
                return self.ref[len(prefix) :]
        return self.ref

    @property
    def created(self) -> bool:
        return bool(ZERO_SHA.match(self.before))

    @property
    def deleted(self) -> bool:
        return bool(ZERO_SHA.match(self.after))


AnnouncedEvent = PushEvent

# Event kind (as named by X-Gitea-Event-Type / X-Gitea-Event) → payload model.
ANNOUNCED_KINDS: dict[str, type[AnnouncedEvent]] = {
    "push": PushEvent,
}


class _AnyRepoPayload(_Model):
    repository: Repository | None = None


def parse_event(kind: str, payload: Any) -> AnnouncedEvent | None:
    """Validate a decoded payload of `kind`; None for kinds the daemon does not announce.

    Raises PayloadError naming the first offending field (never echoing its value).
    """
    if not isinstance(payload, dict):
        raise PayloadError("payload must be a JSON object")
    model = ANNOUNCED_KINDS.get(kind)
    if model is None:
        return None
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise PayloadError(f"not a Gitea {kind} payload: {_first_problem(exc)}") from None


def repo_of(payload: Any) -> str | None:
    """Best-effort repository name of any payload, for recording ignored events."""
    try:
        parsed = _AnyRepoPayload.model_validate(payload)
    except ValidationError:
        return None
    return parsed.repository.full_name if parsed.repository else None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg'].lower()}"
