"""The dispatcher on a real store with a fake clock: route, hold, coalesce, release."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Literal

import pytest

from bot.dispatcher import Dispatcher
from bot.sample import sample_push
from core.records import NewDelivery, OutboxMessage
from core.store import Store
from core.wakeup import Wakeup

ROOM_A, ROOM_B = "!a:x", "!b:x"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def accept(store: Store, repo: str, n: int, commits: int = 1, branch: str = "main") -> None:
    payload = json.dumps(
        sample_push(repo, message=f"{repo} change {n}", commits=commits, branch=branch)
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    await store.record_delivery(
        NewDelivery(f"{repo}-{n}", "push", digest, repo, payload, 0.0, "pending")
    )


async def queued(store: Store, clock: Clock) -> list[OutboxMessage]:
    """Every pending outbox row, oldest first, whatever its room; sent at `clock`'s time."""
    messages: list[OutboxMessage] = []
    while due := await store.due_messages(now=1e12):
        for message in due:
            messages.append(message)
            await store.mark_sent(message.id, f"$e{message.id}", clock())
    return sorted(messages, key=lambda m: m.id)


async def test_burst_makes_one_message_now_and_one_coalesced_later(store: Store) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=3.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    for n in range(20):
        await accept(store, "acme/widgets", n, commits=1 + n % 2)
        await dispatcher.route_pending()
        clock.now += 0.1
    assert await dispatcher.release_due() is None  # the first is not sent yet: no window
    clock.now = 1002.0
    first = await queued(store, clock)  # sent at 1002: its window ends at 1005
    assert len(first) == 1
    assert first[0].body.startswith("[acme/widgets] alice pushed 1 commit to main")

    clock.now = 1004.5
    assert await dispatcher.release_due() == pytest.approx(1005.0)
    assert await queued(store, clock) == []
    clock.now = 1005.0
    assert await dispatcher.release_due() is None
    (summary,) = await queued(store, clock)
    commits = sum(1 + n % 2 for n in range(1, 20))
    assert summary.body.startswith(f"[acme/widgets] 19 pushes ({commits} commits) to main by alice")
    assert await store.held_groups() == []


async def test_pairs_are_limited_independently(store: Store) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/*", "@a:x")
    await store.subscribe(ROOM_B, "acme/widgets", "@b:x")
    for n in range(3):
        await accept(store, "acme/widgets", n)
        await accept(store, "acme/gadgets", n)
    await dispatcher.route_pending()
    sent = [(m.room_id, m.repo) for m in await queued(store, clock)]
    assert sorted(sent) == [
        (ROOM_A, "acme/gadgets"),
        (ROOM_A, "acme/widgets"),
        (ROOM_B, "acme/widgets"),
    ]
    groups = {(g.room_id, g.repo, g.count) for g in await store.held_groups()}
    assert groups == {
        (ROOM_A, "acme/widgets", 2),
        (ROOM_A, "acme/gadgets", 2),
        (ROOM_B, "acme/widgets", 2),
    }


async def test_a_single_held_push_is_released_as_a_normal_message(store: Store) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await accept(store, "acme/widgets", 1)
    await accept(store, "acme/widgets", 2, commits=2)
    await dispatcher.route_pending()
    await queued(store, clock)
    clock.now = 1060.0
    await dispatcher.release_due()
    (message,) = await queued(store, clock)
    assert message.body.startswith("[acme/widgets] alice pushed 2 commits to main")


async def test_held_events_survive_a_restart(store: Store, tmp_path: Path) -> None:
    clock = Clock(1000.0)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    for n in range(3):
        await accept(store, "acme/widgets", n)
    await Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock).route_pending()
    await store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    await reopened.open()
    try:
        clock.now = 2000.0
        dispatcher = Dispatcher(reopened, Wakeup(), Wakeup(), 60.0, clock=clock)
        await dispatcher.release_due()
        bodies = [m.body.split("\n")[0] for m in await queued(reopened, clock)]
        clock.now = 2060.0
        await dispatcher.release_due()
        bodies += [m.body.split("\n")[0] for m in await queued(reopened, clock)]
        assert bodies == [
            "[acme/widgets] alice pushed 1 commit to main",
            "[acme/widgets] 2 pushes (2 commits) to main by alice",
        ]
    finally:
        await reopened.close()


async def test_rate_limit_zero_sends_everything(store: Store) -> None:
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    for n in range(5):
        await accept(store, "acme/widgets", n)
    assert await dispatcher.route_pending() == 5
    assert await store.held_groups() == []


async def test_unsubscribed_repo_is_closed_without_messages(store: Store) -> None:
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60, clock=Clock(1.0))
    await accept(store, "nobody/listens", 1)
    assert await dispatcher.route_pending() == 0
    assert await store.pending_deliveries() == []
    (delivery,) = await store.recent_deliveries()
    assert delivery.status == "unrouted"


DAY = 86400.0


async def test_retention_forgets_old_finished_rows_but_keeps_dedup_keys_until_then(
    store: Store,
) -> None:
    clock = Clock(100 * DAY)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), 60.0, retention_s=7 * DAY, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await accept(store, "acme/widgets", 1)  # received_at 0.0: long past retention
    await accept(store, "acme/widgets", 2)
    await dispatcher.route_pending()  # 1 sent now, 2 held
    await queued(store, clock)

    await dispatcher.prune_if_due()
    recorded = {d.delivery_id: d.status for d in await store.recent_deliveries()}
    assert recorded == {"acme/widgets-2": "routed"}  # held for its window: kept
    (held,) = await store.held_groups()
    assert held.count == 1


async def test_a_replay_within_retention_is_still_a_duplicate(store: Store) -> None:
    clock = Clock(6 * DAY)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), 0, retention_s=7 * DAY, clock=clock)
    await accept(store, "acme/widgets", 1)
    await dispatcher.route_pending()
    await dispatcher.prune_if_due()
    payload = json.dumps(sample_push("acme/widgets", message="acme/widgets change 1"))
    digest = hashlib.sha256(payload.encode()).hexdigest()
    replay = NewDelivery("new-id", "push", digest, "acme/widgets", payload, 6 * DAY, "pending")
    assert not await store.record_delivery(replay)


async def test_the_window_starts_when_the_message_is_sent_not_when_it_is_queued(
    store: Store,
) -> None:
    """A sender backlog (or a homeserver outage) must not let one repository's messages
    reach the room closer together than the window once it drains."""
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=5.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await accept(store, "acme/widgets", 1)
    await dispatcher.route_pending()
    clock.now = 1010.0  # the first message is still unsent, long after its window
    await accept(store, "acme/widgets", 2)
    await dispatcher.route_pending()
    assert await dispatcher.release_due() is None  # held: the pair's message is queued
    (first,) = await queued(store, clock)  # the homeserver answers at last, at 1010
    clock.now = 1012.0
    assert await dispatcher.release_due() == pytest.approx(1015.0)
    clock.now = 1015.0
    await dispatcher.release_due()
    (second,) = await queued(store, clock)
    assert first.body.startswith("[acme/widgets] alice pushed 1 commit to main")
    assert "acme/widgets change 2" in second.body


async def test_a_message_failing_for_good_releases_the_held_ones(store: Store) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=5.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    for n in (1, 2):
        await accept(store, "acme/widgets", n)
    await dispatcher.route_pending()
    (doomed,) = await store.due_messages(now=1e12)
    await store.mark_failed(doomed.id, "M_FORBIDDEN: kicked")
    await dispatcher.release_due()
    (released,) = await queued(store, clock)
    assert "acme/widgets change 2" in released.body


async def test_a_batch_routes_many_deliveries_of_one_pair_in_order(store: Store) -> None:
    """One batch, one transaction: the first of the pair goes, the rest are held behind it,
    and another repository in the same batch is limited on its own."""
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=5.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/*", "@a:x")
    for n in range(30):
        await accept(store, "acme/widgets" if n % 3 else "acme/gadgets", n)
    assert await dispatcher.route_pending() == 2
    sent = await queued(store, clock)
    assert [m.repo for m in sent] == ["acme/gadgets", "acme/widgets"]
    held = {(g.repo, g.count) for g in await store.held_groups()}
    assert held == {("acme/gadgets", 9), ("acme/widgets", 19)}
    statuses = {d.status for d in await store.recent_deliveries(limit=100)}
    assert statuses == {"routed"}


async def test_deliveries_nobody_subscribed_to_are_closed_without_being_parsed(
    store: Store,
) -> None:
    """An org-wide webhook brings every repository; only subscribed ones cost a parse."""
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    unreadable = NewDelivery("d1", "push", "sha", "nobody/listens", "not json", 0.0, "pending")
    await store.record_delivery(unreadable)
    assert await dispatcher.route_pending() == 0
    (logged,) = await store.delivery_log(5)
    assert (logged.result, logged.note) == ("unrouted", "no room subscribed")


async def test_one_repository_spelled_two_ways_in_one_batch_is_one_pair(store: Store) -> None:
    """Forge names are case-insensitive (a case-only rename): one window, no crash."""
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await accept(store, "Acme/Widgets", 1)
    await accept(store, "acme/widgets", 2)
    assert await dispatcher.route_pending() == 1
    assert await store.pending_deliveries() == []
    (held,) = await store.held_groups()
    assert held.count == 1


async def test_a_batch_failing_on_a_bug_is_routed_one_by_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the delivery that trips the bug is closed; routing never stops on one."""
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    for n in range(3):
        await accept(store, "acme/widgets", n)
    poisoned = (await store.pending_deliveries())[1].id
    real_decide = dispatcher._decide

    def decide(row: int, *args: object) -> object:
        if row == poisoned:
            raise KeyError("a bug")
        return real_decide(row, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(dispatcher, "_decide", decide)
    assert await dispatcher.route_pending() == 2
    statuses = {d.delivery_id: d.status for d in await store.recent_deliveries()}
    assert statuses == {
        "acme/widgets-0": "routed",
        "acme/widgets-1": "failed",
        "acme/widgets-2": "routed",
    }


class WatchedLock(asyncio.Lock):
    """An asyncio.Lock that says when someone had to queue for it."""

    def __init__(self) -> None:
        super().__init__()
        self.contended = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.contended.set()
        return await super().acquire()


async def test_a_room_upgrade_waits_for_the_routing_decision_in_progress(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscriptions read, then the room upgraded, then the messages written: without the
    routing lock they would land in the old room."""
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await accept(store, "acme/widgets", 1)
    reading, go_on = asyncio.Event(), asyncio.Event()
    real_pair_states = store.pair_states

    async def slow_pair_states(pairs: object) -> object:
        reading.set()
        await go_on.wait()
        return await real_pair_states(pairs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "pair_states", slow_pair_states)
    lock = WatchedLock()
    monkeypatch.setattr(store, "_routing_lock", lock)
    routing = asyncio.create_task(dispatcher.route_pending())
    await reading.wait()
    upgrade = asyncio.create_task(store.move_room(ROOM_A, ROOM_B))
    waiting = asyncio.create_task(lock.contended.wait())
    # Either the upgrade queues for the lock the routing holds, or it runs to the end
    # without it (the bug): whichever happens first, no sleep decides.
    first, _ = await asyncio.wait({upgrade, waiting}, return_when=asyncio.FIRST_COMPLETED)
    assert first == {waiting}, "the room upgrade did not wait for the routing decision"
    assert not upgrade.done()
    go_on.set()
    assert await routing == 1
    assert await upgrade == 1
    (message,) = await store.due_messages(now=1e12)
    assert message.room_id == ROOM_B


async def test_unsubscribe_stops_what_was_held_unless_another_subscription_covers_it(
    store: Store,
) -> None:
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await store.subscribe(ROOM_A, "acme/gadgets", "@a:x")
    await store.subscribe(ROOM_A, "acme/*", "@a:x")
    await store.subscribe(ROOM_B, "acme/widgets", "@b:x")
    for n in range(3):
        await accept(store, "acme/widgets", n)
        await accept(store, "acme/gadgets", n)
    await dispatcher.route_pending()
    await queued(store, clock)

    result = await store.unsubscribe(ROOM_A, "acme/gadgets")  # acme/* still covers it
    assert result is not None and result.dropped_held == 0
    result = await store.unsubscribe(ROOM_A, "acme/*")  # acme/widgets still covers that one
    assert result is not None and result.dropped_held == 2  # the gadgets events
    result = await store.unsubscribe(ROOM_A, "acme/widgets")
    assert result is not None and result.dropped_held == 2
    assert await store.unsubscribe(ROOM_A, "acme/widgets") is None

    clock.now = 2000.0
    await dispatcher.release_due()
    assert [(m.room_id, m.repo) for m in await queued(store, clock)] == [(ROOM_B, "acme/widgets")]
