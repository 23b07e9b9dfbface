"""Group commit: concurrent writers share one statement, each still waits for its commit.

Under a burst of webhooks every request wants its own INSERT committed before it answers.
One commit each serialises them on the store's thread; here the requests that arrive while
a write is running wait for the next one and go in together. Nobody is answered before
the write that holds their row has committed, and nobody waits for a timer: a lone request
is written at once. Items that would conflict with one already in the batch (same key:
a retried delivery arriving twice at once) wait for the next batch, so each item's result
is its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A batch writer returns one result per item, in order: a value, or the exception that
# item failed with (the others in its batch may still have succeeded).
WriteMany = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommitClosed(RuntimeError):
    """Submitted after `close()`: nothing was written."""


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        write_many: WriteMany[T, R],
        keys: Callable[[T], Iterable[Hashable]],
        max_batch: int,
    ) -> None:
        """`keys` are an item's unique keys: two items sharing one never share a batch."""
        self._write_many = write_many
        self._keys = keys
        self._max_batch = max_batch
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: T) -> R:
        """Write `item` with whatever else is waiting; its result once it is committed."""
        if self._closed:
            raise GroupCommitClosed("the store is closing")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name="group-commit")
            # Also when cancelled before it ever ran (its own `finally` would not run).
            self._writer.add_done_callback(self._writer_done)
        return await future

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if self._writer is not task:
            return  # it ran and its `finally` let go; a newer writer may be running
        self._writer = None  # cancelled before it ran: nobody may wait for ever
        for _, future in self._waiting:
            future.cancel()
        self._waiting.clear()

    async def close(self) -> None:
        """Refuse new items and wait until everything already submitted is written."""
        self._closed = True
        if self._writer is not None:
            await asyncio.wait({self._writer})  # its outcome is its requests' business

    async def _write_all(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                if not batch:  # every waiting request was cancelled
                    continue
                try:
                    results = await self._write_many([item for item, _ in batch])
                except Exception as exc:  # the writer's own failure: every item in it fails
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its request was cancelled; the row may still exist
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        except BaseException:
            # Cancelled (the loop is going away): nobody may wait for ever.
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._writer = None

    def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        deferred: list[tuple[T, asyncio.Future[R]]] = []
        seen: set[Hashable] = set()
        while self._waiting and len(batch) < self._max_batch:
            entry = self._waiting.popleft()
            if entry[1].done():
                continue
            keys = list(self._keys(entry[0]))
            if seen.intersection(keys):
                deferred.append(entry)
                continue
            seen.update(keys)
            batch.append(entry)
        self._waiting.extendleft(reversed(deferred))
        return batch
