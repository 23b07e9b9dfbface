"""bot/sender.py with a fake Matrix client, a real Store and a fake clock."""

from __future__ import annotations

from typing import Any, cast

import aiohttp
import aiosqlite
import pytest
from nio import AsyncClient, RoomSendError

from bot.sender import BACKOFF_CAP_S, MAX_UNEXPECTED_TRIES, Sender, _backoff
from core.records import NewDelivery, NewMessage
from core.store import Store
from core.wakeup import Wakeup
from tests.unit.fake_matrix import Answer, FakeClient
from tests.unit.routing import route_delivery

ROOM_A = "!a:example.org"
ROOM_B = "!b:example.org"
T0 = 4_000_000_000.0  # after any real time.time() the store stamps on new rows


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sender(client: FakeClient, store: Store, clock: Clock) -> Sender:
    return Sender(cast(AsyncClient, client), store, Wakeup(), clock=clock)


async def enqueue(store: Store, *messages: tuple[str, str]) -> None:
    """Queue (room, body) messages the way the dispatcher does, created at the real time."""
    new = NewDelivery("d1", "push", "sha", "acme/widgets", "{}", T0, "pending")
    assert await store.record_delivery(new)
    (row,) = await store.pending_deliveries()
    queued = [NewMessage(room, "acme/widgets", body, f"<p>{body}</p>") for room, body in messages]
    await route_delivery(store, row.id, queued, "routed", None)


async def outbox(store: Store) -> list[dict[str, Any]]:
    """The rows as the sender left them, read through a second connection (WAL allows it)."""
    async with aiosqlite.connect(store.path) as db:
        db.row_factory = aiosqlite.Row
        async with db.execute("SELECT * FROM outbox ORDER BY id") as cursor:
            return [dict(row) for row in await cursor.fetchall()]


async def test_sent_message_is_marked_sent(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    await enqueue(store, (ROOM_A, "hello"))
    assert await sender.send_due() == 1
    (row,) = await outbox(store)
    assert (row["status"], row["event_id"], row["attempts"]) == ("sent", "$ev1", 1)
    assert client.calls[0].tx_id == row["txn_id"]
    assert await sender.send_due() == 0
    assert len(client.calls) == 1


async def test_content_is_a_notice_that_mentions_nobody(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    await enqueue(store, (ROOM_A, "@room hello"))
    await sender.send_due()
    (call,) = client.calls
    assert call.room_id == ROOM_A
    assert call.message_type == "m.room.message"
    assert call.content == {
        "msgtype": "m.notice",
        "body": "@room hello",
        "format": "org.matrix.custom.html",
        "formatted_body": "<p>@room hello</p>",
        "m.mentions": {},
    }


async def test_rate_limited_retries_after_the_servers_wait_with_the_same_txn(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    limited = RoomSendError("Too Many Requests", "M_LIMIT_EXCEEDED", retry_after_ms=2500)
    client.script[ROOM_A] = [limited]
    await enqueue(store, (ROOM_A, "hello"))
    assert await sender.send_due() == 0
    (row,) = await outbox(store)
    assert row["status"] == "pending"
    assert row["next_attempt_at"] == pytest.approx(T0 + 2.5)
    assert "M_LIMIT_EXCEEDED" in row["last_error"]
    clock.now = T0 + 2.4
    assert await sender.send_due() == 0
    clock.now = T0 + 2.5
    assert await sender.send_due() == 1
    assert [c.tx_id for c in client.calls] == [row["txn_id"], row["txn_id"]]


@pytest.mark.parametrize(
    "failure",
    [
        RoomSendError("Bad Gateway", "502"),
        RoomSendError("Internal error", "M_UNKNOWN"),
        RoomSendError("no status"),
        aiohttp.ClientConnectionError("connection refused"),
        TimeoutError(),
    ],
    ids=["502", "M_UNKNOWN", "no-status", "connection-error", "timeout"],
)
async def test_transient_errors_back_off_exponentially(
    sender: Sender, store: Store, client: FakeClient, clock: Clock, failure: Answer
) -> None:
    client.script[ROOM_A] = [failure, failure, failure]
    await enqueue(store, (ROOM_A, "hello"))
    for attempt in range(3):
        assert await sender.send_due() == 0
        (row,) = await outbox(store)
        delay = row["next_attempt_at"] - clock.now
        ceiling = 2.0**attempt
        assert ceiling / 2 <= delay <= ceiling
        assert row["attempts"] == attempt + 1
        clock.now = row["next_attempt_at"]
    assert await sender.send_due() == 1
    assert len({c.tx_id for c in client.calls}) == 1


def test_backoff_is_capped() -> None:
    assert all(BACKOFF_CAP_S / 2 <= _backoff(n) <= BACKOFF_CAP_S for n in (9, 16, 40, 1000))


async def test_forbidden_fails_for_good_and_other_rooms_proceed(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    client.script[ROOM_A] = [RoomSendError("You are not in this room", "M_FORBIDDEN")]
    await enqueue(store, (ROOM_A, "a1"), (ROOM_B, "b1"))
    assert await sender.send_due() == 1
    rows = {row["room_id"]: row for row in await outbox(store)}
    assert rows[ROOM_A]["status"] == "failed"
    assert rows[ROOM_A]["last_error"] == "M_FORBIDDEN: You are not in this room"
    assert rows[ROOM_B]["status"] == "sent"


async def test_a_failed_message_does_not_block_the_rooms_next_one(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    client.script[ROOM_A] = [RoomSendError("gone", "M_NOT_FOUND")]
    await enqueue(store, (ROOM_A, "a1"), (ROOM_A, "a2"))
    await sender.send_due()
    assert await sender.send_due() == 1
    assert [c.content["body"] for c in client.calls] == ["a1", "a2"]


async def test_order_per_room_is_kept_through_retries(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    client.script[ROOM_A] = [RoomSendError("Bad Gateway", "502")]
    await enqueue(store, (ROOM_A, "a1"), (ROOM_A, "a2"), (ROOM_B, "b1"), (ROOM_A, "a3"))
    for _ in range(4):
        await sender.send_due()
        clock.now += BACKOFF_CAP_S
    sent_to_a = [c.content["body"] for c in client.calls if c.room_id == ROOM_A]
    assert sent_to_a == ["a1", "a1", "a2", "a3"]
    assert [c.content["body"] for c in client.calls if c.room_id == ROOM_B] == ["b1"]
    assert {row["status"] for row in await outbox(store)} == {"sent"}


async def test_a_row_whose_send_raises_is_retried_then_failed_alone(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    """A bug while sending one row (not a homeserver answer) must not stop the others."""
    client.script[ROOM_A] = [RuntimeError("bug in the encryption layer")] * MAX_UNEXPECTED_TRIES
    await enqueue(store, (ROOM_A, "a1"), (ROOM_B, "b1"))
    assert await sender.send_due() == 1  # the other room's row went out in the same pass
    rows = {row["room_id"]: row for row in await outbox(store)}
    assert rows[ROOM_B]["status"] == "sent"
    assert rows[ROOM_A]["status"] == "pending"
    assert rows[ROOM_A]["next_attempt_at"] > clock.now  # backing off, not hammering
    for _ in range(MAX_UNEXPECTED_TRIES - 1):
        clock.now += BACKOFF_CAP_S
        assert await sender.send_due() == 0
    rows = {row["room_id"]: row for row in await outbox(store)}
    assert rows[ROOM_A]["status"] == "failed"
    assert rows[ROOM_A]["attempts"] == MAX_UNEXPECTED_TRIES
    assert "RuntimeError('bug in the encryption layer')" in rows[ROOM_A]["last_error"]
    assert [c.room_id for c in client.calls].count(ROOM_A) == MAX_UNEXPECTED_TRIES


async def test_a_row_that_raised_once_is_sent_when_the_next_try_works(
    sender: Sender, store: Store, client: FakeClient, clock: Clock
) -> None:
    client.script[ROOM_A] = [RuntimeError("transient bug")]
    await enqueue(store, (ROOM_A, "a1"), (ROOM_A, "a2"))
    assert await sender.send_due() == 0
    clock.now += BACKOFF_CAP_S
    assert await sender.send_due() == 1
    clock.now += BACKOFF_CAP_S
    assert await sender.send_due() == 1
    assert [c.content["body"] for c in client.calls] == ["a1", "a1", "a2"]  # order kept
    assert {row["status"] for row in await outbox(store)} == {"sent"}


async def test_stop_before_sending_sends_nothing(
    sender: Sender, store: Store, client: FakeClient
) -> None:
    await enqueue(store, (ROOM_A, "a1"))
    sender.stop()
    assert await sender.send_due() == 0
    assert client.calls == []


async def test_no_plaintext_into_an_encrypted_room_without_encryption(store: Store) -> None:
    from types import SimpleNamespace

    client = FakeClient(rooms={ROOM_A: SimpleNamespace(encrypted=True)})
    sender = Sender(client, store, Wakeup(), clock=Clock())  # type: ignore[arg-type]
    first = await sender.attempt(ROOM_A, "secret news", "<p>secret news</p>", "t1")
    second = await sender.attempt(ROOM_A, "more news", "<p>more news</p>", "t2")
    assert (first.retry, second.retry) == (False, False)
    assert "encrypted" in (first.error or "")
    sent = [call.content["body"] for call in client.calls]
    assert len(sent) == 1  # the one explanation, never the news
    assert sent[0].startswith("I cannot post in this room: it is end-to-end encrypted")


async def test_the_dispatcher_hears_of_every_settled_message_and_the_window_starts_at_send(
    store: Store, client: FakeClient, clock: Clock
) -> None:
    """Sent or failed for good, the pair's held events may now be timed; a retry is not
    settled. The rate window starts at the sender's clock, when the room saw it."""
    settled: list[None] = []
    sender = Sender(
        cast(AsyncClient, client),
        store,
        Wakeup(),
        clock=clock,
        on_settled=lambda: settled.append(None),
    )
    client.script[ROOM_A] = [RoomSendError("slow down", "M_LIMIT_EXCEEDED", retry_after_ms=10)]
    client.script[ROOM_B] = [RoomSendError("You are not in this room", "M_FORBIDDEN")]
    await enqueue(store, (ROOM_A, "a1"), (ROOM_B, "b1"))
    await sender.send_due()
    assert len(settled) == 1  # B failed for good; A waits out the 429
    clock.now += 1
    await sender.send_due()
    assert len(settled) == 2
    states = await store.pair_states([(ROOM_A, "acme/widgets"), (ROOM_B, "acme/widgets")])
    assert states[ROOM_A, "acme/widgets"].last_sent_at == clock.now
    assert states[ROOM_B, "acme/widgets"].last_sent_at is None
