"""Regressions for failure modes found in review: each once took the daemon down or sideways."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from nio import RoomSendError

import formatters
from bot.dispatcher import Dispatcher
from bot.sample import sample_push, sign_delivery
from bot.sender import _classify_error
from core.records import NewDelivery, NewMessage
from core.store import Store
from core.wakeup import Wakeup
from receiver.signature import sign
from tests.unit.routing import route_delivery
from tests.unit.test_receiver import SECRET, Intake, _intake


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async for value in _intake(tmp_path / "r", SECRET, 64 * 1024):
        yield value


async def test_lone_surrogate_in_a_commit_message_is_400_not_a_stuck_queue(
    intake: Intake,
) -> None:
    payload = sample_push()
    payload["commits"][0]["message"] = "bad \ud800"
    delivery = sign_delivery(payload, SECRET)
    status, answer = await intake.post(delivery.body, delivery.headers)
    assert status == 400
    assert answer["reason"].startswith("body is not valid UTF-8 JSON (no low surrogate")


async def test_an_integer_too_long_for_json_is_400(intake: Intake) -> None:
    body = b'{"ref": ' + b"9" * 5000 + b"}"
    delivery = sign_delivery({}, SECRET)
    headers = delivery.headers | {"X-Gitea-Signature": sign(SECRET, body)}
    assert (await intake.post(body, headers))[0] == 400


async def test_non_ascii_delivery_header_is_400(intake: Intake) -> None:
    delivery = sign_delivery(sample_push(), SECRET)
    status, answer = await intake.post(
        delivery.body, delivery.headers | {"X-Gitea-Delivery": "d\u00e9livery"}
    )
    assert (status, answer["reason"]) == (400, "invalid X-Gitea-Delivery header")


async def test_a_cancelled_write_leaves_the_connection_usable(store: Store) -> None:
    for ticks in range(12):  # cancel at every point of the transaction in turn
        task = asyncio.create_task(store.subscribe("!r:x", f"acme/r{ticks}", "@a:x"))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert await store.subscribe("!r:x", "acme/after", "@a:x")


async def _queue(store: Store, n: int, rooms: list[str]) -> None:
    await store.record_delivery(NewDelivery(f"d{n}", "push", f"s{n}", "a/b", "{}", 1.0, "pending"))
    (delivery,) = await store.pending_deliveries()
    messages = [NewMessage(room, "a/b", f"m{n}", "") for room in rooms]
    await route_delivery(store, delivery.id, messages, "routed", None, now=1.0)


async def test_next_due_ignores_rows_queued_behind_a_room_in_backoff(store: Store) -> None:
    await _queue(store, 1, ["!a:x"])
    await _queue(store, 2, ["!a:x"])
    (head,) = await store.due_messages(now=2.0)
    await store.mark_retry(head.id, 500.0, "network: ClientConnectorError")
    assert await store.next_due_at() == 500.0  # not the blocked second row's 1.0


async def test_one_poison_delivery_does_not_stop_the_others(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.subscribe("!a:x", "acme/widgets", "@a:x")
    for n, message in enumerate(["poison", "fine"]):
        payload = json.dumps(sample_push(message=message))
        await store.record_delivery(
            NewDelivery(f"d{n}", "push", f"s{n}", "acme/widgets", payload, 1.0, "pending")
        )
    real_render = formatters.render

    def render(event: object) -> object:
        if "poison" in json.dumps(getattr(event, "model_dump", dict)()):
            raise RuntimeError("formatter bug")
        return real_render(event)  # type: ignore[arg-type]

    monkeypatch.setattr("bot.dispatcher.render", render)
    assert await Dispatcher(store, Wakeup(), Wakeup(), 0).route_pending() == 1
    statuses = {d.delivery_id: d.status for d in await store.recent_deliveries()}
    assert statuses == {"d0": "failed", "d1": "routed"}


@pytest.mark.parametrize(
    ("code", "http", "retry"),
    [
        ("M_UNKNOWN", 400, False),
        (None, 404, False),
        ("M_UNKNOWN_TOKEN", 401, True),
        ("M_UNKNOWN", 500, True),
        (None, 429, True),
        ("M_UNKNOWN", None, True),
    ],
)
def test_4xx_other_than_429_are_permanent(code: str | None, http: int | None, retry: bool) -> None:
    error = RoomSendError("x", code)
    error.transport_response = SimpleNamespace(status=http) if http else None  # type: ignore[assignment]
    assert _classify_error(error).retry is retry
