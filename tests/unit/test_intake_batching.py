"""Refusals are counted in memory and written in batches: a flood costs no transaction each.

Identical refusals from one remote become one intake-log row with a count, which
`!health`'s summary (`intake_summary`) and `forge-notifier events` read back exactly.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.event_log import recent_events
from core import diagnostics
from core.diagnostics import IntakeEntry
from core.intake_batch import OVERFLOW_REASON, IntakeBatcher
from core.store import Store
from receiver.app import create_app
from receiver.webhook import WebhookConfig, WebhookReceiver

HOUR = 3600.0


class Spy:
    """Counts calls of a store's batch writer (each call is one write transaction)."""

    def __init__(self, write: Callable[..., Awaitable[None]]) -> None:
        self.write = write
        self.calls = 0

    async def __call__(self, *entries: IntakeEntry) -> None:
        self.calls += 1
        await self.write(*entries)


async def _spied_store(path: Path, flush_s: float) -> tuple[Store, Spy]:
    store = Store(path, intake_flush_s=flush_s)
    spy = Spy(store.log_intake)
    store.log_intake = spy  # type: ignore[method-assign]  # before open(): the batcher takes it
    await store.open()
    return store, spy


@pytest.fixture
async def spied(tmp_path: Path) -> AsyncIterator[tuple[Store, Spy]]:
    store, spy = await _spied_store(tmp_path / "db.sqlite3", HOUR)
    yield store, spy
    await store.close()


async def _client(store: Store) -> TestClient:
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    receiver = WebhookReceiver(store, WebhookConfig("s3cret", 64 * 1024), lambda: None)
    client = TestClient(TestServer(create_app(receiver, health, 64 * 1024)))
    await client.start_server()
    return client


async def test_a_flood_of_bad_signatures_is_one_row_and_one_transaction(
    spied: tuple[Store, Spy],
) -> None:
    store, spy = spied
    client = await _client(store)
    headers = {"Content-Type": "application/json", "X-Gitea-Event": "push"}
    try:
        for _ in range(300):
            async with client.post("/webhook/gitea", data=b"{}", headers=headers) as response:
                assert response.status == 401
    finally:
        await client.close()
    assert spy.calls == 0  # counted in memory so far (the batch is due in an hour)
    summary = await store.intake_summary(diagnostics.BAD_SIGNATURE, since=0.0)
    assert (summary.count, summary.last_remote) == (300, "127.0.0.1")
    assert spy.calls == 1
    [entry] = await store.intake_log(10)
    assert (entry.count, entry.status) == (300, 401)


async def test_events_show_how_many_requests_a_row_stands_for(spied: tuple[Store, Spy]) -> None:
    store, _ = spied
    for at in (1.0, 2.0, 3.0):
        store.record_intake(_refusal(at, "d-" + str(at)))
    [event] = await recent_events(store, 10)
    assert (event.at, event.delivery_id) == (3.0, "d-3.0")  # the newest of them
    assert event.note == "3x 401 signature does not match, from 10.0.0.1"


def _refusal(at: float, delivery: str | None = None, remote: str = "10.0.0.1") -> IntakeEntry:
    reason = "signature does not match"
    return IntakeEntry(at, diagnostics.BAD_SIGNATURE, 401, reason, delivery, "push", None, remote)


async def test_different_remotes_and_duplicates_of_different_deliveries_stay_apart() -> None:
    written: list[IntakeEntry] = []

    async def write(*entries: IntakeEntry) -> None:
        written.extend(entries)

    batcher = IntakeBatcher(write, every_s=HOUR)
    for remote in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        batcher.add(_refusal(1.0, remote=remote))
    for delivery in ("d-1", "d-2", "d-1"):
        batcher.add(IntakeEntry(2.0, diagnostics.DUPLICATE, 200, "same", delivery, "push", "a/b"))
    await batcher.close()
    assert sorted((e.result, e.remote, e.delivery_id, e.count) for e in written) == [
        (diagnostics.BAD_SIGNATURE, "10.0.0.1", None, 2),
        (diagnostics.BAD_SIGNATURE, "10.0.0.2", None, 1),
        (diagnostics.DUPLICATE, None, "d-1", 2),
        (diagnostics.DUPLICATE, None, "d-2", 1),
    ]


async def test_memory_is_bounded_and_counts_stay_exact_past_the_cap() -> None:
    written: list[IntakeEntry] = []

    async def write(*entries: IntakeEntry) -> None:
        written.extend(entries)

    batcher = IntakeBatcher(write, every_s=HOUR, max_entries=3)
    for i in range(10_000):
        batcher.add(_refusal(float(i), remote=f"10.0.{i // 256}.{i % 256}"))
    await batcher.close()
    assert len(written) == 4
    assert sum(e.count for e in written) == 10_000
    assert [(e.reason, e.count) for e in written if e.remote is None] == [(OVERFLOW_REASON, 9997)]


async def test_pending_refusals_are_written_on_close(tmp_path: Path) -> None:
    store, _ = await _spied_store(tmp_path / "db.sqlite3", HOUR)
    store.record_intake(_refusal(5.0))
    await store.close()
    reopened = Store(tmp_path / "db.sqlite3")
    await reopened.open()
    try:
        assert [(e.at, e.count) for e in await reopened.intake_log(10)] == [(5.0, 1)]
    finally:
        await reopened.close()


async def test_a_batch_is_written_on_its_own_after_the_interval(tmp_path: Path) -> None:
    store, spy = await _spied_store(tmp_path / "db.sqlite3", 0.02)
    try:
        store.record_intake(_refusal(5.0))
        store.record_intake(_refusal(6.0))
        for _ in range(500):  # no read flushes it: only the timer can
            if spy.calls:
                break
            await asyncio.sleep(0.01)
        assert spy.calls == 1
    finally:
        await store.close()


async def test_a_failed_batch_is_dropped_and_counted_not_raised() -> None:
    async def write(*entries: IntakeEntry) -> None:
        raise sqlite3.OperationalError("database is locked")

    batcher = IntakeBatcher(write, every_s=HOUR)
    batcher.add(_refusal(1.0))
    batcher.add(_refusal(2.0))
    await batcher.flush()
    assert (batcher.dropped, batcher.pending) == (2, 0)
