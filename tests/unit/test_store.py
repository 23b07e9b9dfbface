"""core/store.py on a real SQLite file under tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from core.migrations import MIGRATIONS
from core.records import NewDelivery, NewMessage
from core.repo_spec import normalise_spec
from core.store import Store, SubscribeResult
from tests.unit.routing import route_delivery

ROOM_A = "!a:example.org"
ROOM_B = "!b:example.org"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "notifier.sqlite3"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = Store(db_path)
    await opened.open()
    yield opened
    await opened.close()


def delivery(
    delivery_id: str = "d1",
    event: str = "push",
    body_sha: str = "sha-1",
    received_at: float = 100.0,
) -> NewDelivery:
    return NewDelivery(
        delivery_id=delivery_id,
        event=event,
        body_sha256=body_sha,
        repo="acme/widgets",
        payload="{}",
        received_at=received_at,
        status="pending",
    )


async def pending_row(store: Store, new: NewDelivery) -> int:
    assert await store.record_delivery(new)
    rows = {d.delivery_id: d.id for d in await store.pending_deliveries()}
    return rows[new.delivery_id]


async def queue(store: Store, *rooms_and_bodies: tuple[str, str], did: str = "d1") -> None:
    row = await pending_row(store, delivery(did, body_sha=f"sha-{did}"))
    messages = [
        NewMessage(room, "acme/widgets", body, f"<p>{body}</p>") for room, body in rooms_and_bodies
    ]
    await route_delivery(store, row, messages, "routed", f"{len(messages)} room(s)")


async def pragma(path: Path, name: str) -> object:
    async with aiosqlite.connect(path) as db, db.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


# --- schema ----------------------------------------------------------------------------------


async def test_open_twice_is_idempotent_and_uses_wal(db_path: Path) -> None:
    for _ in range(2):
        store = Store(db_path)
        await store.open()
        await store.close()
    assert await pragma(db_path, "user_version") == len(MIGRATIONS)
    assert await pragma(db_path, "journal_mode") == "wal"


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    first = Store(db_path)
    await first.open()
    await first.subscribe(ROOM_A, "acme/widgets", "@alice:example.org")
    await first.record_delivery(delivery())
    await first.close()
    second = Store(db_path)
    await second.open()
    try:
        assert [s.repo for s in await second.subscriptions(ROOM_A)] == ["acme/widgets"]
        assert [d.delivery_id for d in await second.pending_deliveries()] == ["d1"]
        assert not await second.record_delivery(delivery())
    finally:
        await second.close()


async def test_closed_store_refuses_work(db_path: Path) -> None:
    store = Store(db_path)
    with pytest.raises(RuntimeError, match="not open"):
        await store.subscriptions()


# --- inbox -----------------------------------------------------------------------------------


async def test_record_delivery_dedups_by_delivery_id(store: Store) -> None:
    assert await store.record_delivery(delivery("d1", body_sha="x"))
    assert not await store.record_delivery(delivery("d1", body_sha="y"))


async def test_record_delivery_dedups_a_replay_by_body(store: Store) -> None:
    assert await store.record_delivery(delivery("d1", body_sha="same"))
    assert not await store.record_delivery(delivery("d2-replay", body_sha="same"))
    assert [d.delivery_id for d in await store.pending_deliveries()] == ["d1"]


async def test_same_body_under_another_event_is_new(store: Store) -> None:
    assert await store.record_delivery(delivery("d1", event="push", body_sha="same"))
    assert await store.record_delivery(delivery("d2", event="create", body_sha="same"))


# --- subscriptions ---------------------------------------------------------------------------


async def test_subscribe_and_unsubscribe_are_idempotent(store: Store) -> None:
    added = await store.subscribe(ROOM_A, "acme/widgets", "@alice:example.org")
    again = await store.subscribe(ROOM_A, "acme/widgets", "@bob:example.org")
    assert (added, again) == (SubscribeResult.ADDED, SubscribeResult.UNCHANGED)
    assert [s.created_by for s in await store.subscriptions(ROOM_A)] == ["@alice:example.org"]
    assert await store.unsubscribe(ROOM_A, "acme/widgets")
    assert not await store.unsubscribe(ROOM_A, "acme/widgets")
    assert await store.subscriptions(ROOM_A) == []


async def test_subscribe_again_with_filters_updates_them(store: Store) -> None:
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    result = await store.subscribe(ROOM_A, "acme/widgets", "@b:x", "release/*", "push")
    assert result is SubscribeResult.UPDATED
    (sub,) = await store.subscriptions(ROOM_A)
    # The row records the author of its current terms: its trust is that author's.
    assert (sub.branch_glob, sub.events, sub.created_by) == ("release/*", "push", "@b:x")


async def rooms_for_repo(store: Store, repo: str) -> list[str]:
    return sorted({s.room_id for s in (await store.subscriptions_for_repos([repo]))[repo]})


async def test_subscriptions_per_room_and_all(store: Store) -> None:
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await store.subscribe(ROOM_B, "acme/*", "@b:x")
    assert [s.repo for s in await store.subscriptions(ROOM_B)] == ["acme/*"]
    assert [(s.room_id, s.repo) for s in await store.subscriptions()] == [
        (ROOM_B, "acme/*"),
        (ROOM_A, "acme/widgets"),
    ]


async def test_rooms_for_repo_exact_and_owner_wildcard(store: Store) -> None:
    await store.subscribe(ROOM_A, normalise_spec("Acme/Widgets"), "@a:x")
    await store.subscribe(ROOM_B, normalise_spec("ACME/*"), "@b:x")
    await store.subscribe("!c:x", normalise_spec("other/widgets"), "@c:x")
    await store.subscribe("!d:x", normalise_spec("acme/gadgets"), "@d:x")
    assert await rooms_for_repo(store, "acme/widgets") == [ROOM_A, ROOM_B]
    assert await rooms_for_repo(store, "ACME/WIDGETS") == [ROOM_A, ROOM_B]
    assert await rooms_for_repo(store, "acme/sprockets") == [ROOM_B]
    assert await rooms_for_repo(store, "acmex/widgets") == []


async def test_rooms_for_repo_lists_a_room_once(store: Store) -> None:
    await store.subscribe(ROOM_A, "acme/widgets", "@a:x")
    await store.subscribe(ROOM_A, "acme/*", "@a:x")
    assert await rooms_for_repo(store, "acme/widgets") == [ROOM_A]


# --- outbox ----------------------------------------------------------------------------------


async def test_route_delivery_queues_one_row_per_room(store: Store) -> None:
    await queue(store, (ROOM_A, "hello"), (ROOM_B, "hello"))
    due = await store.due_messages(now=1e12)
    assert sorted(m.room_id for m in due) == [ROOM_A, ROOM_B]
    assert len({m.txn_id for m in due}) == 2
    assert all(m.attempts == 0 for m in due)
    assert await store.pending_deliveries() == []


async def test_route_delivery_is_atomic(store: Store) -> None:
    row = await pending_row(store, delivery())
    broken = NewMessage(ROOM_B, None, "b", "b")  # type: ignore[arg-type]
    bad = [NewMessage(ROOM_A, "acme/widgets", "a", "a"), broken]
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        await route_delivery(store, row, bad, "routed", None)
    assert await store.due_messages(now=1e12) == []
    assert [d.id for d in await store.pending_deliveries()] == [row]


async def test_due_messages_oldest_per_room_only(store: Store) -> None:
    await queue(store, (ROOM_A, "a1"), (ROOM_B, "b1"), (ROOM_A, "a2"))
    assert [m.body for m in await store.due_messages(now=1e12)] == ["a1", "b1"]


async def test_a_room_in_backoff_holds_its_later_rows(store: Store) -> None:
    await queue(store, (ROOM_A, "a1"), (ROOM_A, "a2"), (ROOM_B, "b1"))
    first = (await store.due_messages(now=1e12))[0]
    await store.mark_retry(first.id, retry_at=2e12, error="502")
    assert [m.body for m in await store.due_messages(now=1e12)] == ["b1"]
    retried = await store.due_messages(now=2e12)
    assert [(m.body, m.attempts) for m in retried] == [("a1", 1), ("b1", 0)]
    assert await store.next_due_at() is not None


async def test_mark_sent_and_failed_release_the_room(store: Store) -> None:
    await queue(store, (ROOM_A, "a1"), (ROOM_A, "a2"), (ROOM_A, "a3"))
    a1 = (await store.due_messages(now=1e12))[0]
    await store.mark_sent(a1.id, "$event1")
    a2 = (await store.due_messages(now=1e12))[0]
    assert a2.body == "a2"
    await store.mark_failed(a2.id, "M_FORBIDDEN")
    assert [m.body for m in await store.due_messages(now=1e12)] == ["a3"]
    assert (await store.queue_stats(now=1e12)).failed == 1


async def test_nothing_due_when_all_sent(store: Store) -> None:
    await queue(store, (ROOM_A, "a1"))
    (message,) = await store.due_messages(now=1e12)
    await store.mark_sent(message.id, "$e")
    assert await store.due_messages(now=1e12) == []
    assert await store.next_due_at() is None


# --- health ----------------------------------------------------------------------------------


async def test_queue_stats_counts_deliveries_and_messages(store: Store) -> None:
    await queue(store, (ROOM_A, "a1"), (ROOM_B, "b1"), did="routed")
    await store.record_delivery(delivery("waiting", body_sha="w", received_at=200.0))
    stats = await store.queue_stats(now=250.0)
    assert stats.pending == 3
    assert stats.oldest_age_s == pytest.approx(50.0)
    assert stats.failed == 0


async def test_queue_stats_when_idle(store: Store) -> None:
    stats = await store.queue_stats(now=250.0)
    assert (stats.pending, stats.oldest_age_s, stats.failed) == (0, None, 0)


async def test_rooms_for_repo_matches_a_mixed_case_subscription(store: Store) -> None:
    await store.subscribe(ROOM_A, "Acme/Widgets", "@a:x")
    assert await rooms_for_repo(store, "Acme/Widgets") == [ROOM_A]
