"""Stalled clients against a real server on 127.0.0.1: every connection ends within a timeout.

Each test asserts on the connection being closed by the server (EOF on the socket), not on
elapsed time; the timeouts are shortened (`hostile_server.FAST`) so each takes well under a
second, and a guard of several seconds turns a connection held open into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib

from core.store import Store
from tests.unit.hostile_server import (
    Served,
    post_head,
    read_until_closed,
    serving,
    webhook_config,
)


async def test_half_a_request_head_is_closed_without_an_answer(store: Store) -> None:
    async with serving(store) as served:
        answer = await served.exchange(b"POST /webhook/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    assert answer == b""


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(store: Store) -> None:
    """Slowloris: every byte resets no timer, so the head's deadline still ends it."""
    head = b"POST /webhook/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 5000
    async with serving(store) as served:
        reader, writer = await served.connect()
        drip = asyncio.create_task(_drip(writer, head))
        try:
            assert await read_until_closed(reader) == b""
        finally:
            drip.cancel()
            writer.close()


async def _drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.02)


async def test_a_body_stopped_midway_is_answered_408_and_closed(store: Store) -> None:
    config = webhook_config(body_timeout_s=0.3)
    async with serving(store, config) as served:
        answer = await served.exchange(post_head(1000) + b'{"ref": "')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"body not received within 0.3 s" in answer
    assert await store.pending_deliveries() == []


async def test_a_body_stopped_midway_on_another_route_is_closed(store: Store) -> None:
    """No handler reads it: aiohttp drains it for the lingering time, then closes."""
    head = b"POST /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
    async with serving(store) as served:
        answer = await served.exchange(head + b"0123456789")
    assert answer.startswith(b"HTTP/1.1 404 ")


async def test_an_idle_keep_alive_connection_is_closed(store: Store) -> None:
    async with serving(store) as served:
        answer = await served.exchange(b"GET /webhook/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" not in answer  # kept alive, then closed for idleness


async def test_two_hundred_stalled_connections_are_all_closed(store: Store) -> None:
    config = webhook_config(body_timeout_s=0.3)
    async with serving(store, config) as served:
        answers = await asyncio.gather(*(_stall(served, i) for i in range(200)))
    assert sorted(set(answers)) == [b"", b"HTTP/1.1 408 "]


async def _stall(served: Served, i: int) -> bytes:
    """Half a head or half a body, alternately; what the server answered before closing."""
    raw = b"POST /webhook/gitea HTTP/1.1\r\nHost: x\r\n" if i % 2 else post_head(500) + b"{"
    answer = await served.exchange(raw)
    return answer[:13]
