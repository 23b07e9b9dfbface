"""Reading a request body without letting clients decide how much memory or time it takes.

A body must be read whole before its signature can be checked, so a flood of large forged
bodies would otherwise all sit in memory at once. `BodyBudget` caps the body bytes held by
all requests together: a request reserves its declared length (or the per-request limit
when it declares none) before reading, waits briefly when the budget is spent, and is
answered 503 with Retry-After when it stays spent (or too many already wait).
`read_body` bounds the time a client may take to send the body, and its size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

# Encodings that mean "not compressed"; anything else is refused before reading.
IDENTITY_ENCODINGS = frozenset({"", "identity"})
READ_CHUNK = 64 * 1024


class BudgetSpent(Exception):
    """The body bytes in flight stayed at the cap for the whole wait."""


class BodyTooLarge(Exception):
    """More body bytes arrived than the per-request limit allows."""


class BodyTimeout(Exception):
    """The client did not send the whole body in time."""


class BodyIncomplete(Exception):
    """The body ended early or its framing (chunked encoding) is broken."""


class BodyBudget:
    """Body bytes in memory across all requests, at most `capacity`.

    At most `max_waiting` requests wait for it; beyond that a request is refused at once:
    a waiting connection is not read, but aiohttp still buffers a few hundred KB of its
    body, so an unbounded queue of waiters would be unbounded memory by another name.
    """

    def __init__(self, capacity: int, max_waiting: int) -> None:
        self.capacity = capacity
        self.max_waiting = max_waiting
        self.in_use = 0
        self.waiting = 0
        self._freed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int, wait_s: float) -> AsyncIterator[None]:
        """Reserve `size` bytes (at most the capacity) for the block, waiting up to `wait_s`.

        The common case (room to spare, nobody waiting) takes no lock: nothing awaits
        between the check and the reservation.
        """
        size = min(size, self.capacity)
        if self.waiting or self.in_use + size > self.capacity:
            async with self._freed:
                await self._wait(size, wait_s)
        self.in_use += size
        try:
            yield
        finally:
            self.in_use -= size
            if self.waiting:
                async with self._freed:
                    self._freed.notify_all()

    async def _wait(self, size: int, wait_s: float) -> None:
        """Called with the condition's lock held; returns with room for `size`."""
        if self.waiting >= self.max_waiting:
            raise BudgetSpent
        self.waiting += 1
        try:
            async with asyncio.timeout(wait_s):
                await self._freed.wait_for(lambda: self.in_use + size <= self.capacity)
        except TimeoutError:
            raise BudgetSpent from None
        finally:
            self.waiting -= 1


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, or BodyTooLarge past `limit` bytes, or BodyTimeout after `timeout_s`.

    Read here rather than with `request.read()`, whose errors (a client gone mid-body, a
    malformed chunked encoding) would escape as 500s with a traceback each.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge
    try:
        async with asyncio.timeout(timeout_s):
            if length is not None:  # framed by aiohttp's parser: exactly this many bytes
                return await request.content.readexactly(length) if length else b""
            return await _read_chunked(request, limit)
    except TimeoutError:
        raise BodyTimeout from None
    except (RequestPayloadError, ConnectionError, asyncio.IncompleteReadError):
        raise BodyIncomplete from None


async def _read_chunked(request: web.Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def declared_size(request: web.Request, limit: int) -> int:
    """What to reserve for the body: its Content-Length, or the limit when chunked."""
    length = request.content_length
    return limit if length is None else min(length, limit)
