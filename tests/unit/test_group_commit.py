"""Group commit: concurrent deliveries share a write, each answered with its own result."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.group_commit import GroupCommit, GroupCommitClosed
from core.records import NewDelivery
from core.store import DELIVERY_BATCH, Store


class Recorder:
    """A batch writer that records its batches; an item "boom" fails on its own."""

    def __init__(self, fail_all: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_all = fail_all

    async def write_many(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a write takes time: others queue up meanwhile
        if self.fail_all is not None:
            raise self.fail_all
        return [ValueError(item) if item == "boom" else item.upper() for item in items]


def group(recorder: Recorder, max_batch: int = 100) -> GroupCommit[str, str]:
    return GroupCommit(recorder.write_many, lambda item: (item.split("#")[0],), max_batch)


async def test_a_lone_item_is_written_at_once_and_concurrent_ones_share_the_next_write() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)  # the first write starts alone
    rest = [asyncio.create_task(commit.submit(name)) for name in "bcde"]
    assert await asyncio.gather(first, *rest) == ["A", "B", "C", "D", "E"]
    assert recorder.batches == [["a"], ["b", "c", "d", "e"]]


async def test_batches_are_capped() -> None:
    recorder = Recorder()
    commit = group(recorder, max_batch=2)
    results = await asyncio.gather(*(commit.submit(name) for name in "abcde"))
    assert results == ["A", "B", "C", "D", "E"]
    assert recorder.batches == [["a", "b"], ["c", "d"], ["e"]]


async def test_items_sharing_a_key_never_share_a_batch_and_keep_their_order() -> None:
    recorder = Recorder()
    commit = group(recorder)
    results = await asyncio.gather(*(commit.submit(name) for name in ["x#1", "y", "x#2", "z"]))
    assert results == ["X#1", "Y", "X#2", "Z"]
    assert recorder.batches == [["x#1", "y", "z"], ["x#2"]]


async def test_one_failing_item_fails_alone() -> None:
    commit = group(Recorder())
    results = await asyncio.gather(
        *(commit.submit(name) for name in ["a", "boom", "c"]), return_exceptions=True
    )
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], ValueError)


async def test_a_failing_write_fails_its_batch_and_the_next_batch_is_still_written() -> None:
    recorder = Recorder(fail_all=sqlite3.OperationalError("disk I/O error"))
    commit = group(recorder)
    results = await asyncio.gather(commit.submit("a"), commit.submit("b"), return_exceptions=True)
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    recorder.fail_all = None
    assert await commit.submit("c") == "C"


async def test_a_cancelled_submitter_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(commit.submit("b"))
    kept = asyncio.create_task(commit.submit("c"))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await first == "A"
    assert await kept == "C"
    assert doomed.cancelled()


async def test_close_writes_everything_submitted_and_refuses_what_comes_after() -> None:
    recorder = Recorder()
    commit = group(recorder)
    pending = [asyncio.create_task(commit.submit(name)) for name in "abc"]
    await asyncio.sleep(0)
    await commit.close()
    assert all(task.done() for task in pending)
    assert [task.result() for task in pending] == ["A", "B", "C"]
    with pytest.raises(GroupCommitClosed):
        await commit.submit("d")


# --- through the store ----------------------------------------------------------------


def delivery(delivery_id: str, body: str | None = None) -> NewDelivery:
    return NewDelivery(
        delivery_id, "push", body or f"sha-{delivery_id}", "acme/app", "{}", 1.0, "pending"
    )


async def test_concurrent_deliveries_are_each_committed_or_reported_duplicate(
    store: Store,
) -> None:
    assert await store.record_delivery(delivery("old"))
    batch = [delivery(f"d{i}") for i in range(DELIVERY_BATCH + 30)]
    retried_id = delivery("d3", body="another body")  # Gitea's retry: same delivery id
    replayed = delivery("replay", body="sha-d5")  # same event and body, new id
    seen_before = delivery("old")
    results = await asyncio.gather(
        *(store.record_delivery(d) for d in [*batch, retried_id, replayed, seen_before])
    )
    assert results == [True] * len(batch) + [False, False, False]
    stored = {d.delivery_id for d in await store.pending_deliveries(limit=1000)}
    assert stored == {"old"} | {d.delivery_id for d in batch}


async def test_a_closed_store_refuses_deliveries_as_a_storage_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    pending = asyncio.create_task(store.record_delivery(delivery("in-flight")))
    await asyncio.sleep(0)
    await store.close()
    assert pending.result() is True
    with pytest.raises(sqlite3.OperationalError, match="closing"):
        await store.record_delivery(delivery("late"))
    await store.open()
    assert [d.delivery_id for d in await store.pending_deliveries()] == ["in-flight"]
    await store.close()


async def test_checkpoints_reach_the_database_file_and_autocheckpoint_comes_back(
    store: Store,
) -> None:
    main_file_only = f"{store.path.resolve().as_uri()}?immutable=1"  # ignores the WAL

    def rows_in_main_file() -> int:
        with sqlite3.connect(main_file_only, uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]

    task = asyncio.create_task(store.checkpoint_forever(every_s=0.02))
    await asyncio.sleep(0.05)
    assert await store.record_delivery(delivery("d1"))
    for _ in range(250):
        if rows_in_main_file() == 1:
            break
        await asyncio.sleep(0.02)
    assert rows_in_main_file() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rows = await store._fetchall("PRAGMA wal_autocheckpoint")
    assert rows[0][0] == 1000


async def test_a_delivery_does_not_wait_for_the_bots_use_of_the_store(store: Store) -> None:
    """The receiver writes on its own connection: the bot holding the store's connection
    (a slow read, a command) does not hold up the answer to the forge."""
    async with store._lock:
        assert await asyncio.wait_for(store.record_delivery(delivery("d1")), timeout=5)
    assert [d.delivery_id for d in await store.pending_deliveries()] == ["d1"]


async def test_a_writer_cancelled_before_it_ran_strands_nobody() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)  # "a" is waiting and its writer is created, not yet started
    assert commit._writer is not None
    commit._writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(commit.submit("b"), timeout=5) == "B"
    await commit.close()


async def test_a_writer_cancelled_mid_write_strands_nobody() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0.001)  # inside the write
    assert commit._writer is not None
    commit._writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(commit.submit("b"), timeout=5) == "B"


async def test_a_batch_of_only_cancelled_items_is_not_written() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = asyncio.create_task(commit.submit("a"))
    await asyncio.sleep(0)
    doomed = asyncio.create_task(commit.submit("b"))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await first == "A"
    assert recorder.batches == [["a"]]


async def test_a_database_error_fails_each_request_once_not_row_by_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy, full or broken: retrying each row alone would only repeat it (and, busy, wait
    out the timeout once per row)."""
    calls: list[int] = []

    async def broken(batch: Sequence[NewDelivery]) -> list[bool | Exception]:
        calls.append(len(batch))
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_insert_rows", broken)
    results = await asyncio.gather(
        *(store.record_delivery(delivery(f"d{i}")) for i in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    assert sum(calls) == 5 and len(calls) <= 2  # a lone first write, then the rest together
