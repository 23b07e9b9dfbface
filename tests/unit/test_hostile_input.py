"""Hostile requests get a precise 4xx (or a bounded 503), never a 500, a traceback or a row.

Through a real aiohttp server on 127.0.0.1 with the daemon's runner options, so what
aiohttp does before the handler (decompression, parsing, its own error logging) is tested
too, not only the handler.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import zlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from bot.sample import sample_push, sign_delivery
from core.store import Store
from receiver.admission import BodyBudget, BudgetSpent
from receiver.signature import sign
from tests.unit.hostile_server import SECRET, Served, post_head, serving, webhook_config

PLAIN = json.dumps(sample_push()).encode()


def _signed_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Gitea-Event": "push",
        "X-Gitea-Signature": sign(SECRET, body),
    } | extra


async def _post(
    served: Served, body: bytes, headers: dict[str, str], path: str = "/webhook/gitea"
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    url = f"http://127.0.0.1:{served.port}{path}"
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(url, data=io.BytesIO(body), headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None), response


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", PLAIN),  # says gzip, is plain
        ("gzip", b"\x1f\x8b\x08garbage"),
        ("deflate", PLAIN),
        ("deflate", b"x\x9cgarbage"),
        ("gzip", gzip.compress(PLAIN)),  # valid, and still refused: Gitea never compresses
        ("deflate", zlib.compress(PLAIN)),
        ("br", b"\x0b\x02\x80garbage"),
        ("zstd", b"\x28\xb5\x2f\xfdgarbage"),
        ("x-unknown", PLAIN),
    ],
)
async def test_a_compressed_body_is_refused_415_unread(
    store: Store, caplog: pytest.LogCaptureFixture, encoding: str, body: bytes
) -> None:
    async with serving(store) as served:
        headers = _signed_headers(PLAIN, **{"Content-Encoding": encoding})
        status, answer, _ = await _post(served, body, headers)
    assert (status, answer["reason"]) == (
        415,
        "Content-Encoding is not supported: send the body uncompressed",
    )
    assert await store.pending_deliveries() == []
    assert _errors(caplog) == []


async def test_a_gzip_bomb_is_never_inflated(store: Store) -> None:
    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}")  # 50 MB in ~50 KB
    async with serving(store) as served:
        status, _, _ = await _post(
            served, bomb, _signed_headers(bomb, **{"Content-Encoding": "gzip"})
        )
    assert status == 415


@pytest.mark.parametrize(
    "accept",
    [
        "application/openmetrics-text; version=abc",
        "application/openmetrics-text; version=1.a",
        "text/plain; version=abc",
        "application/openmetrics-text; version=1.0.0; version=abc",
        "application/openmetrics-text; version=" + "9" * 5000,
    ],
)
async def test_metrics_with_a_malformed_accept_header_fall_back_to_text(
    store: Store, accept: str
) -> None:
    async with (
        serving(store) as served,
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{served.port}/metrics", headers={"Accept": accept}) as r,
    ):
        body = await r.text()
        assert (r.status, r.headers["Content-Type"]) == (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
        )
    assert "forge_notifier_deliveries_total" in body


async def test_metrics_still_speak_openmetrics_to_who_asks_properly(store: Store) -> None:
    accept = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    async with (
        serving(store) as served,
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{served.port}/metrics", headers={"Accept": accept}) as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
        assert (await r.text()).endswith("# EOF\n")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (sample_push(repo="acme/" + "w" * 1_000_000), "repository.full_name longer than 256"),
        (sample_push(branch="b" * 2000), "ref longer than 1024"),
    ],
)
async def test_a_signed_push_with_an_oversized_name_is_refused_with_the_field_named(
    store: Store, payload: dict[str, Any], field: str
) -> None:
    delivery = sign_delivery(payload, SECRET)
    async with serving(store, webhook_config(max_body_bytes=16 * 1024 * 1024)) as served:
        status, answer, _ = await _post(served, delivery.body, delivery.headers)
    assert (status, answer["reason"]) == (400, f"{field} characters")
    assert await store.pending_deliveries() == []


async def test_an_unannounced_kind_with_an_oversized_repository_is_refused(store: Store) -> None:
    delivery = sign_delivery(sample_push(repo="acme/" + "w" * 300), SECRET, event="wiki")
    async with serving(store) as served:
        status, answer, _ = await _post(served, delivery.body, delivery.headers)
    assert (status, answer["reason"]) == (400, "repository.full_name longer than 256 characters")


async def test_names_at_the_caps_are_accepted(store: Store) -> None:
    payload = sample_push(repo="a/" + "w" * 254, branch="b" * (1024 - len("refs/heads/")))
    delivery = sign_delivery(payload, SECRET)
    async with serving(store) as served:
        status, _, _ = await _post(served, delivery.body, delivery.headers)
    assert status == 202


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("X-Gitea-Delivery", "d" * 129, "X-Gitea-Delivery header longer than 128 characters"),
        ("X-Gitea-Event", "p" * 65, "X-Gitea-Event header longer than 64 characters"),
    ],
)
async def test_an_oversized_delivery_or_event_header_is_refused(
    store: Store, header: str, value: str, reason: str
) -> None:
    delivery = sign_delivery(sample_push(), SECRET)
    headers = delivery.headers | {header: value}
    headers.pop("X-Gitea-Event-Type")  # the fine-grained header would win over X-Gitea-Event
    async with serving(store) as served:
        status, answer, _ = await _post(served, delivery.body, headers)
    assert (status, answer["reason"]) == (400, reason)


async def test_bodies_beyond_the_budget_in_flight_are_answered_503(store: Store) -> None:
    """One stalled 400 KB body holds the whole budget: the next large one cannot get its bytes,
    while a delivery of ordinary size still goes through (small bodies have their own)."""
    config = webhook_config(
        max_body_bytes=1024 * 1024,
        bytes_in_flight=500_000,
        budget_wait_s=0.05,
        body_timeout_s=5.0,
    )
    async with serving(store, config) as served:
        _, stalled = await served.connect()
        stalled.write(post_head(400_000) + b"{")
        await _until(lambda: served.receiver.bytes_in_flight == 400_000)
        big = b"{" + b" " * 200_000 + b"}"
        status, answer, response = await _post(served, big, _signed_headers(big))
        delivery = sign_delivery(sample_push(), SECRET)
        small_status, _, _ = await _post(served, delivery.body, delivery.headers)
        stalled.close()
    assert (status, answer["reason"]) == (503, "too many request bodies in flight; retry later")
    assert response.headers["Retry-After"] == "5"
    assert small_status == 202


async def test_the_budget_is_released_after_each_request(store: Store) -> None:
    config = webhook_config(bytes_in_flight=len(PLAIN) + 10)
    async with serving(store, config) as served:
        for i in range(3):
            delivery = sign_delivery(sample_push(message=f"push {i}"), SECRET)
            status, _, _ = await _post(served, delivery.body, delivery.headers)
            assert status == 202
        assert served.receiver.bytes_in_flight == 0


async def _until(condition: Callable[[], bool]) -> None:
    """Poll a condition the server reaches on its own (here: a handler started reading)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never reached")


async def test_malformed_http_is_logged_one_line_each_rate_limited_without_tracebacks(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    junk = [b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n"]
    async with serving(store) as served:
        answers = [await served.exchange(junk[i % 2]) for i in range(30)]
    assert all(answer.startswith(b"HTTP/1.0 400 Bad Request") for answer in answers)
    assert _errors(caplog) == []
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 11  # RefusalLog's 10 lines a minute, then the summary at shutdown
    assert all("\n" not in line for line in lines)
    assert lines[0].startswith("request from 127.0.0.1 refused: 400 Invalid header token: b'Bad")
    assert lines[10] == (
        "30 requests refused in the last minute: 400x30 (20 not logged one by one)"
    )


async def test_past_the_waiting_room_a_request_is_refused_at_once() -> None:
    budget = BodyBudget(capacity=10, max_waiting=1)
    async with budget.hold(10, wait_s=5):
        waiter = asyncio.create_task(_hold_briefly(budget, 4))
        await _until(lambda: budget.waiting == 1)
        with pytest.raises(BudgetSpent):
            async with budget.hold(1, wait_s=5):
                pass  # pragma: no cover - never admitted
    assert await waiter == 4  # the first waiter got in once the 10 bytes were released
    assert (budget.in_use, budget.waiting) == (0, 0)


async def _hold_briefly(budget: BodyBudget, size: int) -> int:
    async with budget.hold(size, wait_s=5):
        return budget.in_use
