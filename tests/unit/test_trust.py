"""Private stays private: who is trusted, what counts as public, and what a subscription's
trust does to routing, to `!subscribe` and to `!subscriptions`."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.commands import CommandContext, CommandRouter, subscribe
from bot.health import HealthScope
from bot.sample import sample_push
from core.events import PushEvent, parse_event, private_of
from core.filters import rooms_wanting, wants
from core.migrations import MIGRATIONS, TRUST_VERSION
from core.records import Subscription
from core.store import Store, SubscribeResult
from core.trust import TrustPolicy
from tests.unit.test_commands import (
    ADMIN,
    CREATOR,
    MEMBER,
    MODERATOR,
    ROOM,
    TRUST,
    V12_ROOM_USERS,
    create_event,
    make_room,
    make_router,
)


def push_payload(private: Any = "absent", **repository: Any) -> dict[str, Any]:
    payload = sample_push(private=None)
    if private != "absent":
        payload["repository"]["private"] = private
    payload["repository"].update(repository)
    return payload


def push_event(private: Any = "absent", **repository: Any) -> PushEvent:
    event = parse_event("push", push_payload(private, **repository))
    assert isinstance(event, PushEvent)
    return event


def sub(room: str, trusted: bool) -> Subscription:
    return Subscription(room, "acme/widgets", None, None, "@a:x", 0.0, trusted=trusted)


# --- who is trusted ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "trusted"),
    [
        ("@admin:example.org", True),  # admins are trusted whatever the list says
        ("@carol:example.org", True),  # named exactly
        ("@dave:corp.example", True),  # by glob
        ("@dave:evil.example", False),
        ("@carol:example.org.evil", False),  # an exact entry is not a prefix
        ("@Carol:example.org", False),  # MXIDs are case-sensitive
        ("@ops-1:example.org", True),  # `?` and `[...]` globs
        ("@ops-x:example.org", False),
    ],
)
def test_trusted_users_are_admins_exact_mxids_and_globs(user: str, trusted: bool) -> None:
    policy = TrustPolicy.of(
        ["@admin:example.org"], ["@carol:example.org", "@*:corp.example", "@ops-[0-9]:*"]
    )
    assert policy.is_trusted(user) is trusted


def test_only_admins_are_admins_and_the_empty_policy_trusts_nobody() -> None:
    policy = TrustPolicy.of(["@admin:x"], ["@*:x"])
    assert policy.is_admin("@admin:x")
    assert not policy.is_admin("@carol:x")
    assert policy.is_trusted("@carol:x")
    assert not TrustPolicy().is_trusted("@anyone:x")


# --- what counts as public -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("private", "repository", "is_private"),
    [
        (False, {}, False),
        (True, {}, True),
        ("absent", {}, True),  # unknown visibility is private
        (None, {}, True),
        ("false", {}, True),  # only a real JSON boolean counts
        (False, {"internal": True}, True),  # Gitea/Forgejo internal: any signed-in user
        (False, {"owner": {"login": "acme", "visibility": "limited"}}, True),
        (False, {"owner": {"login": "acme", "visibility": "private"}}, True),
        (False, {"owner": {"login": "acme", "visibility": "public"}}, False),
        (False, {"owner": "acme"}, False),  # an odd owner does not make the payload invalid
    ],
)
def test_visibility_comes_from_the_payload_and_unknown_is_private(
    private: Any, repository: dict[str, Any], is_private: bool
) -> None:
    assert push_event(private, **repository).private is is_private
    assert private_of(push_payload(private, **repository)) is is_private


def test_private_of_a_payload_without_repository_is_private() -> None:
    assert private_of({"zen": "hello"}) is True
    assert private_of("not an object") is True


def test_corpus_payloads_keep_the_forges_visibility(payloads_dir: Path) -> None:
    """Every Gitea/Forgejo/Gogs capture with `repository.private` reads as the forge says."""
    checked = 0
    paths = [p for forge in ("gitea", "forgejo", "gogs") for p in payloads_dir.glob(f"{forge}/*")]
    for path in sorted(paths):
        payload = json.loads(path.read_text())
        repository = payload.get("repository") or {}
        if repository.get("private") is True:
            assert private_of(payload), path.name
            checked += 1
        elif repository.get("private") is False and not repository.get("internal"):
            assert not private_of(payload), path.name
            checked += 1
    assert checked >= 90  # of 110 captures; the rest do not say


# --- routing -------------------------------------------------------------------------------


def test_private_event_reaches_trusted_subscriptions_only() -> None:
    private, public = push_event(True), push_event(False)
    assert wants(sub("!t:x", trusted=True), private)
    assert not wants(sub("!u:x", trusted=False), private)
    assert wants(sub("!u:x", trusted=False), public)
    subs = [sub("!u:x", trusted=False), sub("!t:x", trusted=True)]
    assert rooms_wanting(subs, private) == ["!t:x"]
    assert rooms_wanting(subs, public) == ["!t:x", "!u:x"]
    assert rooms_wanting(subs, push_event()) == ["!t:x"]  # unknown visibility


# --- the store's rule for trust on re-subscribe --------------------------------------------


async def test_trust_is_recorded_and_upgraded_by_a_trusted_resubscribe(store: Store) -> None:
    assert await store.subscribe(ROOM, "acme/widgets", MEMBER) is SubscribeResult.ADDED
    (row,) = await store.subscriptions(ROOM)
    assert row.trusted is False
    # Same filters, but a trusted author: an upgrade, not "unchanged".
    result = await store.subscribe(ROOM, "acme/widgets", ADMIN, trusted=True)
    assert result is SubscribeResult.UPDATED
    (row,) = await store.subscriptions(ROOM)
    assert (row.trusted, row.created_by) == (True, ADMIN)
    assert await store.subscribe(ROOM, "acme/widgets", ADMIN, trusted=True) is (
        SubscribeResult.UNCHANGED
    )


async def test_untrusted_resubscribe_keeps_trust_only_when_nothing_changes(store: Store) -> None:
    await store.subscribe(ROOM, "acme/widgets", ADMIN, trusted=True)
    assert await store.subscribe(ROOM, "acme/widgets", MEMBER) is SubscribeResult.UNCHANGED
    (row,) = await store.subscriptions(ROOM)
    assert (row.trusted, row.created_by) == (True, ADMIN)
    result = await store.subscribe(ROOM, "acme/widgets", MEMBER, "main")
    assert result is SubscribeResult.UPDATED
    (row,) = await store.subscriptions(ROOM)
    assert (row.trusted, row.created_by, row.branch_glob) == (False, MEMBER, "main")
    (covering,) = (await store.subscriptions_for_repos(["acme/widgets"]))["acme/widgets"]
    assert covering.trusted is False


async def test_trust_lent_by_an_author_taken_off_the_lists_is_revoked_at_start(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    await store.subscribe("!one:x", "acme/*", "@gone:x", trusted=True)
    await store.subscribe("!one:x", "hr/*", "@gone:x", trusted=True)
    await store.subscribe("!two:x", "acme/*", "@stays:x", trusted=True)
    await store.subscribe("!three:x", "acme/*", "@never:x")
    policy = TrustPolicy.of(["@stays:x"])
    with caplog.at_level(logging.WARNING, logger="core.store"):
        assert await store.revoke_trust(policy.is_trusted) == {"!one:x": 2}
    trusted = {(s.room_id, s.repo): s.trusted for s in await store.subscriptions()}
    assert trusted == {
        ("!one:x", "acme/*"): False,
        ("!one:x", "hr/*"): False,
        ("!two:x", "acme/*"): True,
        ("!three:x", "acme/*"): False,
    }
    (line,) = [r.getMessage() for r in caplog.records if "no longer in" in r.message]
    assert line.startswith("room !one:x: 2 subscription(s) now see public repositories only")
    assert await store.revoke_trust(policy.is_trusted) == {}  # nothing left to revoke


# --- the migration that introduced trust ---------------------------------------------------


def _database_before_trust(path: Path) -> None:
    """A database as the previous release left it, with two rooms' subscriptions."""
    with sqlite3.connect(path) as db:
        for script in MIGRATIONS[: TRUST_VERSION - 1]:
            db.executescript(script)
        db.executemany(
            "INSERT INTO subscriptions (room_id, repo, created_by, created_at)"
            " VALUES (?, ?, '@a:x', 0)",
            [("!one:x", "acme/widgets"), ("!one:x", "acme/*"), ("!two:x", "tools/*")],
        )
        db.execute(f"PRAGMA user_version={TRUST_VERSION - 1}")


async def test_migration_makes_old_rows_public_only_and_logs_once_per_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db.sqlite3"
    _database_before_trust(path)
    store = Store(path)
    with caplog.at_level(logging.WARNING, logger="core.store"):
        await store.open()
    try:
        assert [s.trusted for s in await store.subscriptions()] == [False, False, False]
    finally:
        await store.close()
    lines = [r.getMessage() for r in caplog.records if "public repositories only" in r.message]
    assert lines == [
        "room !one:x: 2 subscription(s) now see public repositories only; an admin's"
        " !subscribe there makes them trusted again",
        "room !two:x: 1 subscription(s) now see public repositories only; an admin's"
        " !subscribe there makes them trusted again",
    ]
    caplog.clear()
    reopened = Store(path)
    with caplog.at_level(logging.WARNING, logger="core.store"):
        await reopened.open()
    await reopened.close()
    assert not [r for r in caplog.records if "public repositories only" in r.message]


# --- the commands --------------------------------------------------------------------------


@pytest.fixture
def router(store: Store) -> CommandRouter:
    """MODERATOR is in NOTIFIER_TRUSTED_USERS, ADMIN in NOTIFIER_ADMINS; CREATOR (the v12
    room's creator, allowed to command) is neither."""
    return make_router(store, create_event("12"))


async def test_untrusted_subscribe_says_public_only_in_one_line(
    router: CommandRouter, store: Store
) -> None:
    answer = await router.answer(make_room(V12_ROOM_USERS), CREATOR, "!subscribe acme/*")
    first, note = answer.split("\n")
    assert first.startswith("Subscribed this room to acme/* (all branches, default events).")
    assert note.startswith("This room will see public repositories only")
    assert "An admin re-running this !subscribe" in note
    assert "NOTIFIER_TRUSTED_USERS" in note
    (row,) = await store.subscriptions(ROOM)
    assert row.trusted is False


async def test_trusted_subscribe_says_nothing_about_trust(
    router: CommandRouter, store: Store
) -> None:
    answer = await router.answer(make_room(V12_ROOM_USERS), MODERATOR, "!subscribe acme/*")
    assert "public" not in answer
    assert "\n" not in answer
    assert [s.trusted for s in await store.subscriptions(ROOM)] == [True]


async def test_subscriptions_marks_public_only_rows(router: CommandRouter) -> None:
    room = make_room(V12_ROOM_USERS)
    await router.answer(room, CREATOR, "!subscribe acme/*")
    await router.answer(room, MODERATOR, "!subscribe tools/hammer")
    lines = (await router.answer(room, MEMBER, "!subscriptions")).splitlines()
    public_only = "• acme/* — all branches, default events, public only (added "
    trusted = "• tools/hammer — all branches, default events (added "
    assert sum(line.startswith(public_only) for line in lines) == 1
    assert sum(line.startswith(trusted) for line in lines) == 1


async def test_admin_resubscribe_upgrades_with_the_same_filters(
    router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    await router.answer(room, CREATOR, "!subscribe acme/* --events push")
    answer = await router.answer(room, ADMIN, "!subscribe acme/* --events push")
    assert answer == "This room's subscription to acme/* now includes private repositories."
    (row,) = await store.subscriptions(ROOM)
    assert (row.trusted, row.created_by) == (True, ADMIN)
    assert "public only" not in await router.answer(room, MEMBER, "!subscriptions")


async def test_untrusted_change_of_a_trusted_subscription_says_it_became_public_only(
    router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    await router.answer(room, ADMIN, "!subscribe acme/*")
    same = await router.answer(room, CREATOR, "!subscribe acme/*")
    assert same == "This room is already subscribed to acme/* (all branches, default events)."
    changed = await router.answer(room, CREATOR, "!subscribe acme/* --branch main")
    first, note = changed.split("\n")
    assert first == "Updated this room's subscription to acme/*: branch main, default events."
    assert note.startswith("Your change made this subscription public only")
    assert [s.trusted for s in await store.subscriptions(ROOM)] == [False]


async def test_only_trusted_subscribers_hear_what_gitea_knows_of_the_repository(
    store: Store,
) -> None:
    """The webhook note asks Gitea with the operator's token: it would reveal whether a
    private repository exists and is hooked up."""
    asked: list[str] = []

    async def note(spec: str) -> str:
        asked.append(spec)
        return "Gitea already sends this repository's events here."

    async def health_text(scope: HealthScope) -> str:
        return ""

    def context(sender: str) -> CommandContext:
        return CommandContext(
            ROOM, sender, store, "https://n/webhook/gitea", health_text, note, TRUST
        )

    untrusted = await subscribe(context(CREATOR), ["hr/payroll"])
    assert "Gitea already" not in untrusted
    trusted = await subscribe(context(MODERATOR), ["acme/widgets"])
    assert "Gitea already sends this repository's events here." in trusted
    assert asked == ["acme/widgets"]
