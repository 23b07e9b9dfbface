"""Retention that never stalls: prune in short transactions that let the intake in between,
payloads dropped once finished (dedup and `events` still work), indexed name lookups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiosqlite
import pytest

from core.records import NewDelivery, NewMessage
from core.store import PRUNE_BATCH, Store
from tests.unit.routing import route_delivery

OLD, NOW = 1_000.0, 1_000_000.0
ROOM = "!room:x"


class TransactionLog:
    """Counts the store's write transactions and the rows each one changed."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.changes: list[int] = []
        self.first_done = asyncio.Event()
        original = store._transaction

        @asynccontextmanager
        async def counted() -> AsyncIterator[aiosqlite.Connection]:
            async with original() as conn:
                before = conn.total_changes
                yield conn
                self.changes.append(conn.total_changes - before)
            self.first_done.set()

        monkeypatch.setattr(store, "_transaction", counted)


async def _old_finished_deliveries(store: Store, count: int) -> None:
    rows = [
        (f"old-{n}", "push", f"sha-{n}", "acme/widgets", '{"x": 1}', OLD, "routed", None, 0)
        for n in range(count)
    ]
    async with store._transaction() as conn:
        await conn.executemany(
            "INSERT INTO deliveries (delivery_id, event, body_sha256, repo, payload,"
            " received_at, status, note, private) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def _delivery(store: Store, name: str, at: float = OLD) -> int:
    delivery = NewDelivery(name, "push", f"sha-{name}", "acme/widgets", '{"p": 1}', at, "pending")
    assert await store.record_delivery(delivery)
    (row,) = await store._fetchall("SELECT id FROM deliveries WHERE delivery_id = ?", (name,))
    return int(row[0])


async def test_pruning_50000_rows_takes_many_small_transactions(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _old_finished_deliveries(store, 50_000)
    pending = await _delivery(store, "pending")
    held = await _delivery(store, "held")
    await route_delivery(store, held, [], "held", None, hold=[ROOM], repo="acme/widgets", now=OLD)
    transactions = TransactionLog(store, monkeypatch)
    messages, deliveries = await store.prune(older_than=NOW)
    assert (messages, deliveries) == (0, 50_000)
    assert len(transactions.changes) >= 50_000 // PRUNE_BATCH >= 25
    assert max(transactions.changes) <= PRUNE_BATCH
    left = await store._fetchall("SELECT id, payload FROM deliveries ORDER BY id")
    assert [tuple(row) for row in left] == [(pending, '{"p": 1}'), (held, '{"p": 1}')]


async def test_a_webhook_gets_in_between_two_prune_batches(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intake waits for one batch, not for the prune: it commits while the prune,
    which needs dozens of transactions, is still running."""
    await _old_finished_deliveries(store, 20 * PRUNE_BATCH)
    transactions = TransactionLog(store, monkeypatch)
    prune = asyncio.create_task(store.prune(older_than=NOW))
    await transactions.first_done.wait()
    await _delivery(store, "during-prune", at=NOW)
    done_before_intake = len(transactions.changes)
    assert not prune.done()
    assert done_before_intake <= 3  # it waited for the batch in progress, at most
    assert await prune == (0, 20 * PRUNE_BATCH)


async def test_finished_deliveries_lose_their_payload_but_not_their_identity(
    store: Store,
) -> None:
    sent = await _delivery(store, "sent")
    message_b = NewMessage(ROOM, "acme/widgets", "b", "<p>b</p>")
    await route_delivery(store, sent, [message_b], "routed", None, now=OLD)
    (message,) = await store.due_messages(now=NOW)
    await store.mark_sent(message.id, "$event")
    unsent = await _delivery(store, "unsent")
    message_c = NewMessage(ROOM, "acme/widgets", "c", "<p>c</p>")
    await route_delivery(store, unsent, [message_c], "routed", None, now=OLD)
    held = await _delivery(store, "held")
    await route_delivery(store, held, [], "held", None, hold=[ROOM], repo="acme/widgets")
    closed = await _delivery(store, "no-subscriber")
    await route_delivery(store, closed, [], "unrouted", None)
    pending = await _delivery(store, "pending")

    await store.prune(older_than=0.0)  # nothing is old: only payloads go

    rows = await store._fetchall("SELECT id, payload FROM deliveries")
    payloads = {row[0]: row[1] for row in rows}
    assert payloads == {
        sent: "",
        unsent: '{"p": 1}',  # its message may still be re-rendered
        held: '{"p": 1}',  # the coalesced message is built from it
        closed: "",
        pending: '{"p": 1}',
    }
    # Dedup still knows them, by delivery id and by (event, body).
    again = NewDelivery("sent", "push", "sha-other", "acme/widgets", "{}", NOW, "pending")
    replay = NewDelivery("new-id", "push", "sha-sent", "acme/widgets", "{}", NOW, "pending")
    assert await store.record_delivery(again) is False
    assert await store.record_delivery(replay) is False
    logged = {d.delivery_id: d.result for d in await store.delivery_log(10, "ACME/Widgets")}
    assert logged["sent"] == "routed" and logged["no-subscriber"] == "unrouted"


async def test_a_second_prune_does_not_rewrite_dropped_payloads(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = await _delivery(store, "closed")
    await route_delivery(store, closed, [], "unrouted", None)
    await store.prune(older_than=0.0)
    transactions = TransactionLog(store, monkeypatch)
    await store.prune(older_than=0.0)
    assert sum(transactions.changes) == 0


async def _plan(store: Store, sql: str, params: tuple[object, ...]) -> str:
    rows = await store._fetchall("EXPLAIN QUERY PLAN " + sql, params)
    return " | ".join(str(row[3]) for row in rows)


@pytest.mark.parametrize(
    ("sql", "params", "index"),
    [
        (  # pair_states: messages still queued for a repository
            "SELECT DISTINCT room_id, lower(repo) FROM outbox"
            " WHERE status = 'pending' AND lower(repo) IN (?, ?)",
            ("a/b", "c/d"),
            "SEARCH outbox USING INDEX outbox_pending_repo",
        ),
        (  # delivery_log(repo), behind `forge-notifier events --repo`
            "SELECT id FROM deliveries WHERE lower(repo) = ? ORDER BY id DESC LIMIT ?",
            ("a/b", 20),
            "SEARCH deliveries USING INDEX deliveries_repo_lower",
        ),
    ],
)
async def test_case_insensitive_name_lookups_use_the_lower_case_indexes(
    store: Store, sql: str, params: tuple[object, ...], index: str
) -> None:
    assert index in await _plan(store, sql, params)


async def test_the_store_issues_those_same_queries(store: Store) -> None:
    """The plans above are only worth something if the store's SQL is that SQL."""
    import inspect

    source = inspect.getsource(Store)
    assert "AND lower(repo) IN ({marks})" in source
    assert '"WHERE lower(repo) = ?"' in source
