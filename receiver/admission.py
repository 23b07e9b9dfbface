"""Reading a request body without letting clients decide how much memory or time it takes.

A body must be read whole before its signature can be checked, so a flood of large forged
bodies would otherwise all sit in memory at once. `BodyBudget` caps the body bytes held by
all requests together: a request reserves its declared length (or the per-request limit
when it declares none) before reading, waits briefly when the budget is spent, and is
answered 503 with Retry-After when it stays spent. `read_body` bounds the time a client
may take to send the body, and its size.
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
    """Body bytes in memory across all requests, at most `capacity` (FIFO among waiters)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._freed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int, wait_s: float) -> AsyncIterator[None]:
        """Reserve `size` bytes (at most the capacity) for the block, waiting up to `wait_s`."""
        size = min(size, self.capacity)
        async with self._freed:
            try:
                async with asyncio.timeout(wait_s):
                    await self._freed.wait_for(lambda: self.in_use + size <= self.capacity)
            except TimeoutError:
                raise BudgetSpent from None
            self.in_use += size
        try:
            yield
        finally:
            async with self._freed:
                self.in_use -= size
                self._freed.notify_all()


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, or BodyTooLarge past `limit` bytes, or BodyTimeout after `timeout_s`.

    Read here rather than with `request.read()`, whose errors (a client gone mid-body, a
    malformed chunked encoding) would escape as 500s with a traceback each.
    """
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.content.iter_chunked(READ_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout from None
    except (RequestPayloadError, ConnectionError):
        raise BodyIncomplete from None
    return b"".join(chunks)


def declared_size(request: web.Request, limit: int) -> int:
    """What to reserve for the body: its Content-Length, or the limit when chunked."""
    length = request.content_length
    return limit if length is None else min(length, limit)
