"""Building blocks shared by the webhook payload models: users, repositories, commits.

Models ignore unknown fields (forges add fields between releases), turn the `null`s some
forges send into empty values, and refuse text SQLite cannot store.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

ZERO_SHA = re.compile(r"^0+$")
REPO_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def none_as_empty_list(value: Any) -> Any:
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


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ForgeUser(Model):
    login: Text = ""
    username: Text = ""
    full_name: Text = ""

    @property
    def display(self) -> str:
        """The forge login is what teammates recognise; fall back to whatever is set."""
        return self.login or self.username or self.full_name or "someone"


class CommitAuthor(Model):
    name: Text = ""
    username: Text = ""


class Commit(Model):
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


def _bool_or_unknown(value: Any) -> bool | None:
    """Visibility flags count only as real JSON booleans; anything else is unknown."""
    return value if isinstance(value, bool) else None


def _object_or_none(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


Flag = Annotated[bool | None, BeforeValidator(_bool_or_unknown)]
PUBLIC_OWNER_VISIBILITY = ("", "public")


class Repository(Model):
    """Visibility fields are read leniently: an odd value makes the repository private,
    never the delivery invalid."""

    full_name: str = Field(pattern=REPO_NAME.pattern)
    html_url: Text = ""
    private: Flag = None
    internal: Flag = None  # Gitea/Forgejo "internal": visible to every signed-in user
    owner: Annotated[dict[str, Any] | None, BeforeValidator(_object_or_none)] = None

    @property
    def is_public(self) -> bool:
        """Public only when the forge says so: `private: false`, not internal, and an owner
        whose visibility (Gitea's `limited`/`private` organisations hide their repositories
        too) is public or not stated. Unknown counts as private."""
        owner_visibility = (self.owner or {}).get("visibility") or ""
        return (
            self.private is False
            and self.internal is not True
            and owner_visibility in PUBLIC_OWNER_VISIBILITY
        )


class EventBase(Model):
    """What every announced event has: its repository and who caused it."""

    repository: Repository
    sender: ForgeUser | None = None

    @property
    def repo(self) -> str:
        return self.repository.full_name

    @property
    def private(self) -> bool:
        """Only trusted subscriptions see it (unknown visibility is private)."""
        return not self.repository.is_public

    @property
    def actor(self) -> str:
        return self.sender.display if self.sender else "someone"
