"""CommandRouter.on_message, the way nio calls it: each command runs at most once, senders
are rate-limited, and no reply outgrows what the homeserver accepts."""

from __future__ import annotations

from typing import Any

import pytest
from nio import MatrixRoom, RoomMessageText

from bot.command_limit import (
    COMMANDS_PER_WINDOW,
    MAX_REPLY_BYTES,
    WINDOW_S,
    CommandRateLimit,
    SenderWindow,
    Verdict,
    cap_reply,
    decide,
)
from bot.commands import CommandContext, CommandRouter
from bot.handled_commands import HandledCommands
from bot.health import HealthScope
from bot.permissions import PermissionChecker
from core.store import Store
from tests.unit.test_commands import ADMIN, BOT, ROOM, WEBHOOK_URL, make_room

ALICE = "@alice:example.org"
BOB = "@bob:example.org"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Replies(list[tuple[str, str]]):
    async def __call__(self, room_id: str, text: str) -> None:
        self.append((room_id, text))


def router_on(
    store: Store, replies: Replies, clock: Clock | None = None, answers: bool = True
) -> CommandRouter:
    """A router as app.py wires it: the store's handled-command record, admins allowed."""

    async def no_create_event(room_id: str) -> dict[str, Any] | None:
        return None

    async def health_text(_: HealthScope) -> str:
        return "all good"

    def context(room_id: str, sender: str) -> CommandContext:
        return CommandContext(room_id, sender, store, WEBHOOK_URL, health_text)

    handled = HandledCommands(store)
    limit = CommandRateLimit(clock=clock or Clock())
    permissions = PermissionChecker(50, [ADMIN], no_create_event)
    return CommandRouter(
        BOT, permissions, context, replies, lambda ts: answers, handled.claim, limit
    )


def message(body: str, sender: str = ADMIN, event_id: str = "$cmd1") -> RoomMessageText:
    return RoomMessageText.from_dict(  # type: ignore[return-value]
        {
            "type": "m.room.message",
            "event_id": event_id,
            "sender": sender,
            "origin_server_ts": 1_700_000_000_000,
            "content": {"msgtype": "m.text", "body": body},
        }
    )


@pytest.fixture
def room() -> MatrixRoom:
    return make_room({})


async def test_a_command_seen_again_is_neither_answered_nor_run_again(
    store: Store, room: MatrixRoom
) -> None:
    """The replay after a quick restart: a new router (a new process) on the same store."""
    replies = Replies()
    await router_on(store, replies).on_message(room, message("!subscribe acme/widgets"))
    await store.unsubscribe(ROOM, "acme/widgets")  # so a second run would show
    await router_on(store, replies).on_message(room, message("!subscribe acme/widgets"))
    assert len(replies) == 1 and "Subscribed" in replies[0][1]
    assert await store.subscriptions(ROOM) == []  # not subscribed again by the replay


async def test_another_event_with_the_same_text_is_a_new_command(
    store: Store, room: MatrixRoom
) -> None:
    replies = Replies()
    router = router_on(store, replies)
    await router.on_message(room, message("!help", event_id="$one"))
    await router.on_message(room, message("!help", event_id="$two"))
    assert len(replies) == 2


async def test_history_is_neither_answered_nor_recorded(store: Store, room: MatrixRoom) -> None:
    replies = Replies()
    await router_on(store, replies, answers=False).on_message(room, message("!help"))
    assert replies == []
    assert await store.claim_command("$cmd1", ROOM, 0.0)  # still unclaimed


async def test_a_sender_over_the_limit_is_told_once_then_silenced(
    store: Store, room: MatrixRoom
) -> None:
    clock = Clock()
    replies = Replies()
    router = router_on(store, replies, clock)
    for n in range(COMMANDS_PER_WINDOW + 5):
        await router.on_message(room, message("!help", ALICE, f"$a{n}"))
    await router.on_message(room, message("!help", BOB, "$b0"))  # others are not held up
    texts = [text for _, text in replies]
    assert len(texts) == COMMANDS_PER_WINDOW + 2
    assert texts[COMMANDS_PER_WINDOW].startswith("Slow down")
    assert sum(t.startswith("Slow down") for t in texts) == 1
    assert "!subscribe" in texts[-1]  # Bob's help
    clock.now += WINDOW_S
    await router.on_message(room, message("!help", ALICE, "$a-later"))
    assert "!subscribe" in replies[-1][1]  # answered again once the window has room


def test_decide_counts_only_answered_commands_in_the_window() -> None:
    window = SenderWindow(tuple(float(t) for t in range(10)))
    verdict, window = decide(window, 10.0, limit=10, window_s=60.0)
    assert (verdict, window.warned) == (Verdict.SLOW_DOWN, True)
    verdict, window = decide(window, 11.0, limit=10, window_s=60.0)
    assert verdict is Verdict.SILENT
    verdict, window = decide(window, 60.5, limit=10, window_s=60.0)  # t=0 left the window
    assert (verdict, window.warned, len(window.times)) == (Verdict.ANSWER, False, 10)


def test_memory_is_bounded_under_many_senders() -> None:
    limit = CommandRateLimit(clock=Clock(), max_senders=100)
    for n in range(1000):
        limit.check(f"@u{n}:example.org")
    assert len(limit) == 100


@pytest.mark.parametrize(
    "body",
    [
        "!subscribe " + "a" * 60_000,
        "!subscribe acme/widgets --branch " + "b" * 60_000,
        "!unsubscribe " + "x/" + "y" * 60_000,
        "!" + "z" * 60_000,
    ],
    ids=["spec", "option-value", "unsubscribe", "command-name"],
)
async def test_a_60kb_argument_still_gets_its_one_line_answer(
    store: Store, room: MatrixRoom, body: str
) -> None:
    replies = Replies()
    await router_on(store, replies).on_message(room, message(body))
    ((_, text),) = replies
    assert len(text.encode()) < 1000
    assert "\n" not in text
    assert "a" * 101 not in text and "y" * 101 not in text and "z" * 101 not in text


def test_cap_reply_cuts_at_a_character_and_says_so() -> None:
    text = "é" * 10_000  # two bytes each
    capped = cap_reply(text)
    assert len(capped.encode()) <= MAX_REPLY_BYTES
    assert capped.endswith(f"(reply cut at {MAX_REPLY_BYTES:,} bytes)")
    assert cap_reply("short") == "short"


async def test_every_reply_is_capped(store: Store, room: MatrixRoom) -> None:
    replies = Replies()
    router = router_on(store, replies)

    async def long_health(_: HealthScope) -> str:
        return "line\n" * 10_000

    router._make_context = lambda room_id, sender: CommandContext(  # type: ignore[method-assign]
        room_id, sender, store, WEBHOOK_URL, long_health
    )
    await router.on_message(room, message("!health"))
    ((_, text),) = replies
    assert len(text.encode()) <= MAX_REPLY_BYTES


async def test_handled_ids_are_forgotten_by_the_retention_prune(store: Store) -> None:
    for n in range(25):
        assert await store.claim_command(f"$old{n}", ROOM, 100.0)
    assert await store.claim_command("$recent", ROOM, 10_000.0)
    await store.prune(older_than=5_000.0, batch=10)
    assert not await store.claim_command("$recent", ROOM, 10_001.0)  # kept: still handled
    assert await store.claim_command("$old0", ROOM, 10_001.0)  # forgotten
