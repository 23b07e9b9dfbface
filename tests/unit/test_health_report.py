"""bot/health.py: `!health` and `/webhook/health` tell the same facts, including the last
24 hours' signature failures (with the usual cause) and send errors."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

from bot.health import Health
from bot.sync_loop import LinkState
from core import diagnostics
from core.diagnostics import IntakeEntry
from core.records import NewDelivery, NewMessage
from core.store import Store
from tests.unit.routing import route_delivery

ROOM = "!room:example.org"


@dataclass
class Link:
    state: LinkState


@pytest.fixture
def health(store: Store) -> Health:
    return Health(store, Link(LinkState(True, time.time(), None)))


async def refuse(store: Store, at: float, reason: str) -> None:
    entry = IntakeEntry(at, diagnostics.BAD_SIGNATURE, 401, reason, "d-x", "push", None, "10.1.2.3")
    await store.log_intake(entry)


async def queue_two(store: Store, at: float) -> tuple[int, int]:
    new = NewDelivery("d-1", "push", "sha", "acme/widgets", "{}", at, "pending")
    assert await store.record_delivery(new)
    (row,) = await store.pending_deliveries()
    message = NewMessage(ROOM, "acme/widgets", "hi", "<p>hi</p>")
    await route_delivery(store, row.id, [message, message], "routed", None, now=at)
    # Only a room's oldest row is due; the second, inserted with it, has the next id.
    (first,) = [m.id for m in await store.due_messages(at + 1)]
    return first, first + 1


async def test_a_quiet_day_says_none(health: Health, store: Store) -> None:
    await store.subscribe(ROOM, "acme/widgets", "@alice:example.org")
    snap = await health.snapshot()
    assert snap["signature_failures"] == {
        "last_24h": 0,
        "last_at": None,
        "last_reason": None,
        "last_remote": None,
        "hint": None,
    }
    assert snap["send_errors"]["last_24h"] == 0
    assert snap["last_delivery"] == {"acme/widgets": None}
    assert {"repo": "acme/widgets", "rooms": [ROOM]} in snap["repos"]
    text = await health.text()
    assert "Signature failures (24 h): none" in text
    assert "Send errors (24 h): none" in text
    assert "• acme/widgets: last delivery never" in text


async def test_signature_failures_of_the_last_day_come_with_the_usual_cause(
    health: Health, store: Store
) -> None:
    now = time.time()
    await refuse(store, now - 2 * 86400, "old, outside the window")
    await refuse(store, now - 600, "missing signature (is the webhook secret set on the forge?)")
    await refuse(store, now - 60, "signature does not match (is the webhook secret the same?)")

    facts = (await health.snapshot())["signature_failures"]
    assert facts["last_24h"] == 2
    assert facts["last_reason"].startswith("signature does not match")
    assert facts["last_remote"] == "10.1.2.3"
    assert "NOTIFIER_WEBHOOK_SECRET" in facts["hint"]
    line = next(x for x in (await health.text()).splitlines() if x.startswith("Signature"))
    assert line.startswith("Signature failures (24 h): 2, latest 60 s ago from 10.1.2.3")
    assert "a wrong secret is the usual cause" in line


async def test_send_errors_count_failed_attempts_and_name_the_latest(
    health: Health, store: Store
) -> None:
    now = time.time()
    first, second = await queue_two(store, now - 300)
    await store.mark_retry(first, now, "network: ClientConnectorError")
    await store.mark_sent(first, "$ok")
    await store.mark_retry(second, now, "M_UNKNOWN: busy")
    await store.mark_failed(second, "M_FORBIDDEN: not in room")

    facts = (await health.snapshot())["send_errors"]
    assert facts == {
        "last_24h": 3,
        "failed_24h": 1,
        "last_error": "M_FORBIDDEN: not in room",
        "last_room": ROOM,
        "latest_elsewhere": False,
    }
    text = await health.text()
    assert (
        "Send errors (24 h): 3 failed attempt(s), 1 message(s) failed for good; "
        f"latest: M_FORBIDDEN: not in room ({ROOM})"
    ) in text
