"""Durability that means it: the intake fsyncs before 2xx, a locked database answers 503
(not a hang past the forge's timeout), and the WAL shrinks back when the daemon is idle."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.sample import send_test_delivery
from core.records import NewDelivery
from core.store import INTAKE_BUSY_S, WAL_SIZE_LIMIT, Store
from receiver.app import create_app
from receiver.webhook import WebhookConfig, WebhookReceiver

SECRET = "durability-secret"


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient]:
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    config = WebhookConfig(SECRET, 1 << 20, frozenset())
    receiver = WebhookReceiver(store, config, on_accepted=lambda: None)
    client = TestClient(TestServer(create_app(receiver, health, 1 << 20)))
    await client.start_server()
    yield client
    await client.close()


async def _pragma(connection: Any, name: str) -> Any:
    (row,) = await connection.execute_fetchall(f"PRAGMA {name}")
    return row[0]


async def test_the_intake_commits_with_synchronous_full_and_a_short_busy_timeout(
    store: Store,
) -> None:
    intake = store._intake_db
    assert await _pragma(intake, "synchronous") == 2  # FULL: the WAL is fsynced per commit
    assert await _pragma(intake, "busy_timeout") == int(INTAKE_BUSY_S * 1000)
    assert 2 * INTAKE_BUSY_S < 5  # its batch's wait and its own, before the forge gives up
    for connection in (intake, store._db):
        assert await _pragma(connection, "journal_size_limit") == WAL_SIZE_LIMIT
    # Routing decisions too: one lost to a power cut would be routed again, posted twice.
    assert await _pragma(store._db, "synchronous") == 2


async def test_a_database_locked_by_another_process_answers_503(
    store: Store, client: TestClient
) -> None:
    assert store._intake_db is not None  # the 2 s is checked above; this is about the answer
    await store._intake_db.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a stuck sqlite3 shell would
    try:
        delivery, _ = send_test_delivery("acme/widgets", SECRET)
        response = await client.post("/webhook/gitea", data=delivery.body, headers=delivery.headers)
        assert response.status == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    response = await client.post("/webhook/gitea", data=delivery.body, headers=delivery.headers)
    assert response.status == 202  # refused, not half-stored: the retry is new


async def test_an_intake_waiting_behind_the_daemons_own_writer_gives_up_as_busy(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's own write lock is bounded like SQLite's: a stuck main-connection
    transaction cannot hold a webhook past the forge's timeout."""
    monkeypatch.setattr("core.store.INTAKE_BUSY_S", 0.05)
    delivery = NewDelivery("d1", "push", "sha", "acme/widgets", "{}", 1.0, "pending")
    async with store._write_lock:
        with pytest.raises(sqlite3.OperationalError, match="busy"):
            async with asyncio.timeout(10):  # a failure, not a hung test, if unbounded
                await store.record_delivery(delivery)
    assert await store.record_delivery(delivery) is True


async def test_an_idle_daemon_truncates_the_wal(store: Store) -> None:
    for n in range(50):
        await store.record_delivery(
            NewDelivery(f"d{n}", "push", f"sha{n}", "acme/w", "x" * 4000, 1.0, "pending")
        )
    wal = store.path.with_name(store.path.name + "-wal")
    assert wal.stat().st_size > 0
    checkpoints = asyncio.create_task(store.checkpoint_forever(every_s=0.01))
    try:
        async with asyncio.timeout(10):
            while wal.stat().st_size > 0:  # noqa: ASYNC110 (a file size: no event to wait on)
                await asyncio.sleep(0.01)
    finally:
        checkpoints.cancel()
        await asyncio.gather(checkpoints, return_exceptions=True)
    assert len(await store.pending_deliveries()) == 50  # all of it in the main file


async def test_two_send_test_runs_post_two_messages(store: Store, client: TestClient) -> None:
    """Each run carries a fresh nonce: the second is not folded as "same event and body"."""
    answers = []
    for _ in range(2):
        delivery, nonce = send_test_delivery("acme/widgets", SECRET)
        assert nonce.encode() in delivery.body
        response = await client.post("/webhook/gitea", data=delivery.body, headers=delivery.headers)
        answers.append((response.status, (await response.json())["status"]))
    assert answers == [(202, "accepted"), (202, "accepted")]
    assert len(await store.pending_deliveries()) == 2


async def test_a_failing_checkpoint_logs_once_not_every_round(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rounds = 0

    async def failing(*_: object) -> int:
        nonlocal rounds
        rounds += 1
        if rounds == 50:
            checkpoints.cancel()
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_checkpoint_round", failing)
    checkpoints = asyncio.create_task(store.checkpoint_forever(every_s=0))
    with caplog.at_level("WARNING", logger="core.store"):
        await asyncio.gather(checkpoints, return_exceptions=True)
    assert rounds == 50
    assert [r.getMessage() for r in caplog.records] == [
        "WAL checkpoint failed (1 in a row): disk I/O error"
    ]
