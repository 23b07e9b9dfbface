"""Refused and duplicate requests, counted in memory and written to the intake log in batches.

A flood of forged requests must not cost a write transaction each (every one would take the
database's write lock from the deliveries that matter). Entries are aggregated while they
wait: identical refusals from one remote become one row with a `count`. At most one batch
is written per `every_s`, in one transaction; memory is bounded by `max_entries` distinct
rows, past which the details are dropped and only counted (per result and status), so
`!health`'s counts stay exact. Pending entries are written on close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from core import diagnostics
from core.diagnostics import IntakeEntry

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 1.0
MAX_ENTRIES = 1000
OVERFLOW_REASON = "details dropped: too many different requests in one batch"

Key = tuple[object, ...]
Writer = Callable[..., Awaitable[None]]  # called with the batch's entries as arguments


def _key(entry: IntakeEntry) -> Key:
    """What makes two entries "identical": all but the time (and, for a refusal, the
    delivery id, which a flood makes up fresh each time)."""
    shared = (entry.result, entry.status, entry.reason, entry.event, entry.repo, entry.remote)
    return (*shared, entry.delivery_id) if entry.result == diagnostics.DUPLICATE else shared


def _merged(old: IntakeEntry, new: IntakeEntry) -> IntakeEntry:
    return dataclasses.replace(
        new, at=max(old.at, new.at), count=old.count + new.count, repo=new.repo or old.repo
    )


class IntakeBatcher:
    """Aggregates intake entries and writes them through `write`, one batch at a time."""

    def __init__(
        self, write: Writer, every_s: float = FLUSH_EVERY_S, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._write = write
        self._every_s = every_s
        self._max_entries = max_entries
        self._pending: dict[Key, IntakeEntry] = {}
        self._flushing = asyncio.Lock()  # a read that flushes waits for a batch in flight
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0  # entries lost: written after close, or their batch failed

    def add(self, entry: IntakeEntry) -> None:
        """Count an entry; never waits and never raises."""
        if self._closed:
            self.dropped += entry.count
            return
        key = _key(entry)
        if key not in self._pending and len(self._pending) >= self._max_entries:
            entry = IntakeEntry(
                entry.at, entry.result, entry.status, OVERFLOW_REASON, None, count=entry.count
            )
            key = ("overflow", entry.result, entry.status)
        old = self._pending.get(key)
        self._pending[key] = _merged(old, entry) if old else entry
        self._start_timer()

    @property
    def pending(self) -> int:
        """Requests counted but not yet written."""
        return sum(entry.count for entry in self._pending.values())

    async def flush(self) -> None:
        """Write what is pending now, in one call of `write`."""
        async with self._flushing:
            batch = list(self._pending.values())
            self._pending.clear()
            if not batch:
                return
            try:
                await self._write(*batch)
            except sqlite3.Error as exc:
                lost = sum(entry.count for entry in batch)
                self.dropped += lost
                log.warning("intake log: %d requests not recorded (%s)", lost, exc)

    async def close(self) -> None:
        """Write what is pending; later entries are only counted as dropped."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()

    def _start_timer(self) -> None:
        if self._timer is None or self._timer.done():
            self._timer = asyncio.get_running_loop().create_task(
                self._flush_later(), name="intake-log-batch"
            )

    async def _flush_later(self) -> None:
        """Entries added while a batch is written go in the next one, `every_s` later."""
        while True:
            await asyncio.sleep(self._every_s)
            await self.flush()
            if not self._pending:
                return
