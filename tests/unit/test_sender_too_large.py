"""A size refusal (M_TOO_LARGE) never fails a row: the sender shortens it and sends it again."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import cast

import pytest
from nio import AsyncClient, RoomSendError

from bot.sender import Sender
from core.store import Store
from core.wakeup import Wakeup
from formatters.budget import FLOOR, content_size
from tests.unit.fake_matrix import FakeClient
from tests.unit.test_sender import ROOM_A, Clock, enqueue, outbox

HEAD = "[acme/widgets] 300 pushes (900 commits) to main by alice"
# What an older release queued: a coalesced message of ~112 KB.
BIG = "\n".join(
    [HEAD, *(f"feature/{n}: 3 commits https://git.example.org/x/{n}" for n in range(2000))]
)


def too_large() -> RoomSendError:
    return RoomSendError("event too large", "M_TOO_LARGE")


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender(client: FakeClient, store: Store, clock: Clock) -> Sender:
    return Sender(cast(AsyncClient, client), store, Wakeup(), clock=clock)


def sizes(client: FakeClient) -> list[int]:
    return [content_size(c.content["body"], c.content["formatted_body"]) for c in client.calls]


async def test_too_large_once_then_sent_shorter_with_the_same_txn(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    client.script[ROOM_A] = [too_large()]
    await enqueue(store, (ROOM_A, BIG))
    assert await sender.send_due() == 0
    (row,) = await outbox(store)
    assert row["status"] == "pending"
    assert row["last_error"] == "M_TOO_LARGE: event too large"
    assert await sender.send_due() == 1
    (row,) = await outbox(store)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    first, second = client.calls
    assert second.tx_id == first.tx_id == row["txn_id"]
    assert sizes(client)[1] <= sizes(client)[0] // 2
    lines = second.content["body"].split("\n")
    assert lines[0] == HEAD
    assert lines[1:-1] == BIG.split("\n")[1 : len(lines) - 1]
    assert lines[-1] == f"… and {2000 - (len(lines) - 2)} more lines"
    assert row["body"] == second.content["body"]


async def test_refused_again_and_again_it_halves_down_to_the_head_line_and_never_fails(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    client.script[ROOM_A] = [too_large() for _ in range(12)]
    await enqueue(store, (ROOM_A, BIG))
    for _ in range(12):
        clock.now += 600  # past any backoff
        assert await sender.send_due() == 0
        (row,) = await outbox(store)
        assert row["status"] == "pending"
    clock.now += 600
    assert await sender.send_due() == 1
    refused = sizes(client)
    assert all(later <= max(FLOOR, earlier // 2) for earlier, later in itertools.pairwise(refused))
    assert client.calls[-1].content["body"].split("\n") == [HEAD, "… and 2000 more lines"]
    (row,) = await outbox(store)
    assert row["status"] == "sent"


async def test_at_the_floor_a_refusal_waits_a_backoff_instead_of_failing(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    client.script[ROOM_A] = [too_large()]
    await enqueue(store, (ROOM_A, HEAD))
    assert await sender.send_due() == 0
    (row,) = await outbox(store)
    assert (row["status"], row["body"]) == ("pending", HEAD)
    assert row["next_attempt_at"] > clock.now


async def test_a_bare_413_from_a_proxy_is_a_size_refusal_too(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    refused = RoomSendError("Request Entity Too Large")
    refused.transport_response = SimpleNamespace(status=413)  # type: ignore[assignment]
    client.script[ROOM_A] = [refused]
    await enqueue(store, (ROOM_A, BIG))
    assert await sender.send_due() == 0
    assert await sender.send_due() == 1
    assert sizes(client)[1] <= sizes(client)[0] // 2
