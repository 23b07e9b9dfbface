"""bot/commands.py through CommandRouter.answer(), with real permissions and a real Store."""

from __future__ import annotations

from typing import Any

import pytest
from nio import MatrixRoom, PowerLevelsEvent

from bot.command_registry import COMMANDS
from bot.commands import CommandContext, CommandRouter
from bot.health import HealthScope
from bot.permissions import PermissionChecker, creators_of, creators_outrank_power_levels
from core.records import NewDelivery
from core.store import Store
from core.trust import TrustPolicy
from tests.unit.routing import route_delivery

ROOM = "!room:example.org"
BOT = "@notifier:example.org"
CREATOR = "@creator:example.org"
MODERATOR = "@mod:example.org"
MEMBER = "@member:example.org"
ADMIN = "@admin:example.org"
WEBHOOK_URL = "https://notifier.example.org/webhook/gitea"


def create_event(version: str, sender: str = CREATOR, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.create",
        "sender": sender,
        "content": {"room_version": version, **content},
    }


def make_room(users: dict[str, int]) -> MatrixRoom:
    """A room as nio sees it after the power-levels state event arrived."""
    room = MatrixRoom(ROOM, BOT)
    room.handle_event(
        PowerLevelsEvent.from_dict(
            {
                "type": "m.room.power_levels",
                "event_id": "$pl",
                "sender": CREATOR,
                "origin_server_ts": 1,
                "state_key": "",
                "content": {"users": users, "users_default": 0},
            }
        )
    )
    return room


class CreateEvents:
    """The fake create-event fetcher: one create event per room id, counting fetches."""

    def __init__(self, events: dict[str, dict[str, Any]]) -> None:
        self.events = events
        self.fetches = 0

    async def __call__(self, room_id: str) -> dict[str, Any] | None:
        self.fetches += 1
        return self.events.get(room_id)


# The moderator is a trusted user (NOTIFIER_TRUSTED_USERS): these tests are about commands,
# not trust; tests/unit/test_trust.py covers the others.
TRUST = TrustPolicy.of([ADMIN], [MODERATOR])


def make_router(store: Store, create: dict[str, Any] | None) -> CommandRouter:
    fetcher = CreateEvents({ROOM: create} if create else {})
    permissions = PermissionChecker(50, [ADMIN], fetcher)

    async def health_text(scope: HealthScope) -> str:
        return f"all good for {scope.room_id} (admin: {scope.admin})"

    def context(room_id: str, sender: str) -> CommandContext:
        return CommandContext(room_id, sender, store, WEBHOOK_URL, health_text, trust=TRUST)

    async def reply(room_id: str, text: str) -> None:
        raise AssertionError("answer() must not reply by itself")

    async def claim(event_id: str, room_id: str) -> bool:
        return True

    return CommandRouter(BOT, permissions, context, reply, lambda ts: True, claim)


@pytest.fixture
def v12_router(store: Store) -> CommandRouter:
    return make_router(store, create_event("12"))


# The room as created by default on current Synapse (v12): the creator is not in `users`.
V12_ROOM_USERS = {MODERATOR: 50}


async def test_unknown_command_hints_at_help(v12_router: CommandRouter) -> None:
    answer = await v12_router.answer(make_room({}), MEMBER, "!frobnicate now")
    assert "!help" in answer
    assert "\n" not in answer


async def test_bare_bang_is_unknown_not_a_crash(v12_router: CommandRouter) -> None:
    assert "!help" in await v12_router.answer(make_room({}), MEMBER, "!")


async def test_subscribe_refused_below_the_power_level(
    v12_router: CommandRouter, store: Store
) -> None:
    answer = await v12_router.answer(make_room(V12_ROOM_USERS), MEMBER, "!subscribe acme/widgets")
    assert "needs power level 50" in answer
    assert "\n" not in answer
    assert await store.subscriptions(ROOM) == []


async def test_subscribe_by_moderator_confirms_with_webhook_url(
    v12_router: CommandRouter, store: Store
) -> None:
    answer = await v12_router.answer(
        make_room(V12_ROOM_USERS), MODERATOR, "!subscribe Acme/Widgets"
    )
    assert "acme/widgets" in answer
    assert WEBHOOK_URL in answer
    assert [s.repo for s in await store.subscriptions(ROOM)] == ["acme/widgets"]


async def test_subscribe_twice_says_already(v12_router: CommandRouter) -> None:
    room = make_room(V12_ROOM_USERS)
    await v12_router.answer(room, MODERATOR, "!subscribe acme/*")
    assert "already" in await v12_router.answer(room, MODERATOR, "!subscribe acme/*")


async def test_v12_creator_outside_power_levels_is_allowed(
    v12_router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    assert room.power_levels.get_user_level(CREATOR) == 0  # what nio 0.26 reports
    answer = await v12_router.answer(room, CREATOR, "!subscribe acme/widgets")
    assert WEBHOOK_URL in answer
    assert [s.created_by for s in await store.subscriptions(ROOM)] == [CREATOR]


async def test_v12_additional_creator_is_allowed(store: Store) -> None:
    router = make_router(store, create_event("12", additional_creators=[MEMBER]))
    answer = await router.answer(make_room({}), MEMBER, "!subscribe acme/widgets")
    assert WEBHOOK_URL in answer


async def test_v11_creator_without_power_is_refused(store: Store) -> None:
    router = make_router(store, create_event("11"))
    answer = await router.answer(make_room({}), CREATOR, "!subscribe acme/widgets")
    assert "needs power level 50" in answer
    assert await store.subscriptions(ROOM) == []


async def test_unknown_create_event_falls_back_to_power_levels(store: Store) -> None:
    router = make_router(store, None)
    answer = await router.answer(make_room({}), CREATOR, "!subscribe acme/widgets")
    assert "needs power level 50" in answer


async def test_admin_is_allowed_without_power(store: Store) -> None:
    router = make_router(store, create_event("11"))
    answer = await router.answer(make_room({}), ADMIN, "!subscribe acme/widgets")
    assert WEBHOOK_URL in answer


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("!subscribe", "Usage: !subscribe OWNER/NAME"),
        ("!subscribe not-a-repo", "Usage: !subscribe OWNER/NAME"),
        ("!subscribe a/b/c", "not OWNER/NAME or OWNER/*"),
        ("!subscribe acme/widgets extra", "Usage: !subscribe OWNER/NAME"),
        ("!subscribe acme/widgets --branch", "--branch needs a value"),
        ("!subscribe acme/widgets --colour red", "Unknown option --colour"),
        ("!subscribe acme/widgets --events pushes", "unknown event kind pushes"),
        ("!unsubscribe", "Usage: !unsubscribe OWNER/NAME"),
    ],
)
async def test_malformed_arguments_get_usage(
    v12_router: CommandRouter, store: Store, command: str, expected: str
) -> None:
    answer = await v12_router.answer(make_room(V12_ROOM_USERS), MODERATOR, command)
    assert expected in answer
    assert await store.subscriptions(ROOM) == []


async def test_subscriptions_lists_this_rooms_repos(
    v12_router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    assert "no subscriptions" in await v12_router.answer(room, MEMBER, "!subscriptions")
    await v12_router.answer(room, MODERATOR, "!subscribe acme/widgets")
    await v12_router.answer(room, MODERATOR, "!subscribe tools/*")
    await store.subscribe("!other:example.org", "secret/repo", MODERATOR)
    answer = await v12_router.answer(room, MEMBER, "!subscriptions")
    assert "acme/widgets" in answer
    assert "tools/*" in answer
    assert "secret/repo" not in answer


async def test_unsubscribe_not_subscribed_says_so(v12_router: CommandRouter) -> None:
    answer = await v12_router.answer(make_room(V12_ROOM_USERS), MODERATOR, "!unsubscribe acme/x")
    assert "not subscribed to acme/x" in answer


async def test_unsubscribe_removes(v12_router: CommandRouter, store: Store) -> None:
    room = make_room(V12_ROOM_USERS)
    await v12_router.answer(room, MODERATOR, "!subscribe acme/widgets")
    answer = await v12_router.answer(room, MODERATOR, "!unsubscribe ACME/widgets")
    assert answer == "Unsubscribed this room from acme/widgets."
    assert await store.subscriptions(ROOM) == []


async def test_unsubscribe_says_held_events_will_not_be_posted(
    v12_router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    await v12_router.answer(room, MODERATOR, "!subscribe acme/widgets")
    for n in range(2):
        new = NewDelivery(f"d{n}", "push", f"sha{n}", "acme/widgets", "{}", 1.0, "pending")
        assert await store.record_delivery(new)
    for delivery in await store.pending_deliveries():
        await route_delivery(store, delivery.id, [], "routed", None, (ROOM,), "acme/widgets")
    answer = await v12_router.answer(room, MODERATOR, "!unsubscribe acme/widgets")
    assert answer == (
        "Unsubscribed this room from acme/widgets."
        " 2 event(s) held back by the rate limit will not be posted."
    )
    assert await store.held_groups() == []


async def test_unsubscribe_needs_power_too(v12_router: CommandRouter, store: Store) -> None:
    await store.subscribe(ROOM, "acme/widgets", MODERATOR)
    answer = await v12_router.answer(make_room(V12_ROOM_USERS), MEMBER, "!unsubscribe acme/widgets")
    assert "needs power level 50" in answer
    assert len(await store.subscriptions(ROOM)) == 1


async def test_help_lists_every_registered_command(v12_router: CommandRouter) -> None:
    answer = await v12_router.answer(make_room({}), MEMBER, "!help")
    assert len(answer.splitlines()) == len(COMMANDS)
    for cmd in COMMANDS.values():
        assert cmd.usage in answer
    for name in ("subscribe", "unsubscribe", "subscriptions", "health", "help"):
        assert f"!{name}" in answer


async def test_health_is_open_to_anyone_and_scoped_to_the_asker(v12_router: CommandRouter) -> None:
    answer = await v12_router.answer(make_room({}), MEMBER, "!health")
    assert answer == f"all good for {ROOM} (admin: False)"
    answer = await v12_router.answer(make_room({}), ADMIN, "!health")
    assert answer == f"all good for {ROOM} (admin: True)"


async def test_command_names_are_case_insensitive(v12_router: CommandRouter) -> None:
    assert "no subscriptions" in await v12_router.answer(make_room({}), MEMBER, "!SUBSCRIPTIONS")


async def test_create_event_is_fetched_once_per_room(store: Store) -> None:
    fetcher = CreateEvents({ROOM: create_event("12")})
    checker = PermissionChecker(50, [], fetcher)
    room = make_room({})
    for _ in range(3):
        assert (await checker.check(room, CREATOR)).allowed
    assert fetcher.fetches == 1


@pytest.mark.parametrize(
    ("version", "outrank"),
    [("1", False), ("11", False), ("12", True), ("13", True), ("org.matrix.hydra.11", True)],
)
def test_creators_outrank_power_levels(version: str, outrank: bool) -> None:
    assert creators_outrank_power_levels(version) is outrank


def test_creators_of_includes_additional_creators() -> None:
    event = create_event("12", additional_creators=[MEMBER, 42])
    assert creators_of(event) == {CREATOR, MEMBER}


async def test_subscribe_with_branch_filter_per_contract(
    v12_router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    answer = await v12_router.answer(room, MODERATOR, "!subscribe acme/widgets --branch main")
    assert WEBHOOK_URL in answer
    (subscription,) = await store.subscriptions(ROOM)
    assert subscription.branch_glob == "main"


async def test_subscribe_again_updates_filters_and_lists_them(
    v12_router: CommandRouter, store: Store
) -> None:
    room = make_room(V12_ROOM_USERS)
    await v12_router.answer(room, MODERATOR, "!subscribe acme/widgets")
    answer = await v12_router.answer(
        room, MODERATOR, "!subscribe acme/widgets --branch=release/* --events push"
    )
    assert (
        answer == "Updated this room's subscription to acme/widgets: branch release/*, events push."
    )
    listing = await v12_router.answer(room, MEMBER, "!subscriptions")
    assert "acme/widgets — branch release/*, events push" in listing
