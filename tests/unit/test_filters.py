"""Per-subscription filters: branch globs narrow branch pushes, event kinds narrow kinds."""

from __future__ import annotations

import pytest

from bot.sample import sample_push
from core.events import AnnouncedEvent, PushEvent, parse_event
from core.filters import FilterError, describe, parse_events, rooms_wanting, wants
from core.records import Subscription


def sub(room: str = "!a:x", branch: str | None = None, events: str | None = None) -> Subscription:
    """Trusted: these tests are about filters, and their payloads do not say "public"."""
    return Subscription(room, "acme/widgets", branch, events, "@a:x", 0.0, trusted=True)


def push(ref: str) -> PushEvent:
    payload = sample_push() | {"ref": ref}
    return PushEvent.model_validate(payload)


@pytest.mark.parametrize(
    ("glob", "ref", "wanted"),
    [
        (None, "refs/heads/dev", True),
        ("main", "refs/heads/main", True),
        ("main", "refs/heads/dev", False),
        ("release/*", "refs/heads/release/1.2", True),
        ("release/*", "refs/heads/releases", False),
        ("Main", "refs/heads/main", False),  # Git branch names are case-sensitive
        ("main", "refs/tags/v1.0", True),  # a tag is not a branch: the filter leaves it be
    ],
)
def test_branch_glob(glob: str | None, ref: str, wanted: bool) -> None:
    assert wants(sub(branch=glob), push(ref)) is wanted


def test_event_kinds() -> None:
    assert wants(sub(events="push"), push("refs/heads/main"))
    assert not wants(sub(events="release,ci"), push("refs/heads/main"))


def _event(kind: str, **payload: object) -> AnnouncedEvent:
    base = {"repository": {"full_name": "acme/widgets"}, "sender": {"login": "alice"}}
    event = parse_event(kind, base | payload)
    assert event is not None
    return event


PR = {"action": "synchronized", "number": 7, "pull_request": {"number": 7, "title": "t"}}
COMMENT = {"action": "created", "issue": {"number": 1}, "comment": {"body": "hi"}}


@pytest.mark.parametrize(
    ("event", "by_default"),
    [
        (_event("pull_request", **PR), False),  # every push to a PR branch: opt-in
        (_event("pull_request", **(PR | {"action": "opened"})), True),
        (_event("issue_comment", **COMMENT), False),
        (_event("create", ref="feature", ref_type="branch"), False),  # the push announces it
        (_event("status", sha="abc", state="failure"), True),
        (_event("release", action="published", release={"tag_name": "v1"}), True),
    ],
)
def test_default_categories_keep_noise_out(event: AnnouncedEvent, by_default: bool) -> None:
    assert wants(sub(), event) is by_default
    assert wants(sub(events=event.category), event)


def test_branch_filter_covers_branch_creation_but_not_tags() -> None:
    only_main = sub(branch="main", events="create")
    assert not wants(only_main, _event("create", ref="feature", ref_type="branch"))
    assert wants(only_main, _event("create", ref="refs/heads/main", ref_type="branch"))
    assert wants(only_main, _event("create", ref="v1.0", ref_type="tag"))


def test_parse_events_canonicalises_and_rejects_unknown_kinds() -> None:
    assert parse_events(" PUSH,push ") == "push"
    with pytest.raises(FilterError, match="unknown event kind wiki; known: push, create"):
        parse_events("push,wiki")
    with pytest.raises(FilterError):
        parse_events(",")


def test_rooms_wanting_lists_each_room_once_if_any_subscription_wants() -> None:
    subs = [sub("!b:x", branch="main"), sub("!a:x", branch="dev"), sub("!a:x")]
    assert rooms_wanting(subs, push("refs/heads/main")) == ["!a:x", "!b:x"]
    assert rooms_wanting(subs[:2], push("refs/heads/dev")) == ["!a:x"]


def test_describe() -> None:
    assert describe(sub()) == "all branches, default events"
    assert describe(sub(branch="main", events="push")) == "branch main, events push"
