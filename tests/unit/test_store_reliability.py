"""Store operations behind recovery: retry-now after an outage, failures, room upgrades."""

from __future__ import annotations

from core.records import NewDelivery, NewMessage
from core.store import Store
from tests.unit.routing import route_delivery

OLD, NEW, OTHER = "!old:x", "!new:x", "!other:x"


async def queue(store: Store, *rooms: str, hold: tuple[str, ...] = ()) -> None:
    n = len(await store.recent_deliveries(1000))
    await store.record_delivery(
        NewDelivery(f"d{n}", "push", f"sha{n}", "acme/widgets", "{}", 1.0, "pending")
    )
    (delivery,) = await store.pending_deliveries()
    messages = [NewMessage(room, "acme/widgets", f"body {n}", "<p>x</p>") for room in rooms]
    await route_delivery(store, delivery.id, messages, "routed", None, hold, "acme/widgets", 10.0)


async def test_retry_now_skips_rows_waiting_out_a_rate_limit(store: Store) -> None:
    await queue(store, OLD, OTHER)
    backoff, limited = await store.due_messages(now=20.0)
    await store.mark_retry(backoff.id, 500.0, "network: ClientConnectorError")
    await store.mark_retry(limited.id, 500.0, "M_LIMIT_EXCEEDED: slow down")
    assert await store.retry_now(30.0) == 1
    assert [m.id for m in await store.due_messages(now=30.0)] == [backoff.id]


async def test_failures_by_room_reports_count_and_latest_reason(store: Store) -> None:
    await queue(store, OLD)
    await queue(store, OLD)
    for message_id, reason in ((1, "M_FORBIDDEN: not in room"), (2, "M_FORBIDDEN: kicked")):
        await store.mark_failed(message_id, reason)
    assert await store.failures_by_room() == [(OLD, 2, "M_FORBIDDEN: kicked")]
    assert (await store.queue_stats(now=20.0)).failed == 2


async def test_move_room_carries_subscriptions_held_events_and_unsent_messages(
    store: Store,
) -> None:
    await store.subscribe(OLD, "acme/widgets", "@a:x")
    await store.subscribe(OLD, "acme/gadgets", "@a:x")
    await store.subscribe(NEW, "acme/gadgets", "@b:x", branch_glob="main")
    await queue(store, OLD)
    (sent,) = await store.due_messages(now=20.0)
    await store.mark_sent(sent.id, "$sent", 10.0)  # the pair's window starts at 10
    await queue(store, OLD)
    await queue(store, hold=(OLD,))
    assert await store.move_room(OLD, NEW) == 1
    subs = {(s.room_id, s.repo, s.branch_glob) for s in await store.subscriptions()}
    assert subs == {(NEW, "acme/widgets", None), (NEW, "acme/gadgets", "main")}
    assert [m.room_id for m in await store.due_messages(now=20.0)] == [NEW]
    assert [(g.room_id, g.count) for g in await store.held_groups()] == [(NEW, 1)]
    state = (await store.pair_states([(NEW, "acme/widgets")]))[NEW, "acme/widgets"]
    assert (state.last_sent_at, state.holding, state.queued) == (10.0, True, True)
    assert await store.move_room(OLD, NEW) == 0  # a tombstone seen again changes nothing
