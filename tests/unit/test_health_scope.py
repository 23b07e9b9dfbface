"""`!health` answers for the room it is asked in; other rooms and the details of signature
failures only for admins (and the operator's full snapshot)."""

from __future__ import annotations

import time

import pytest

from bot.health import FULL, Health, HealthScope
from bot.sync_loop import LinkState
from core import diagnostics
from core.diagnostics import IntakeEntry
from core.records import NewDelivery, NewMessage
from core.store import Store
from tests.unit.routing import route_delivery
from tests.unit.test_health_report import Link

MINE, OTHER = "!mine:x", "!other:x"
REMOTE = "198.51.100.23"
REASON = "signature does not match (is the webhook secret the same?)"


@pytest.fixture
async def health(store: Store) -> Health:
    """Two rooms with subscriptions, a failure each, and a signature failure."""
    now = time.time()
    await store.subscribe(MINE, "acme/widgets", "@bob:x")
    await store.subscribe(OTHER, "hr/*", "@admin:x", trusted=True)
    routes = ((MINE, "acme/widgets"), (OTHER, "hr/payroll"))
    for n, (_, repo) in enumerate(routes):
        assert await store.record_delivery(
            NewDelivery(f"d{n}", "push", f"s{n}", repo, "{}", now - 60, "pending")
        )
    for n, delivery in enumerate(await store.pending_deliveries()):
        room, repo = routes[n]
        message = NewMessage(room, repo, "hi", "<p>hi</p>")
        await route_delivery(store, delivery.id, [message], "routed", None, now=now - 60)
    for queued in await store.due_messages(now):
        await store.mark_failed(queued.id, f"M_FORBIDDEN: not in {queued.room_id}")
    entry = IntakeEntry(
        now - 30, diagnostics.BAD_SIGNATURE, 401, REASON, "d-x", "push", None, REMOTE
    )
    await store.log_intake(entry)
    return Health(store, Link(LinkState(True, now, None)))


async def test_a_room_sees_only_its_own_subscriptions_and_failures(health: Health) -> None:
    snap = await health.snapshot(HealthScope(MINE, admin=False))
    assert snap["repos"] == [{"repo": "acme/widgets", "rooms": [MINE]}]
    assert snap["public_only"] == [{"repo": "acme/widgets", "rooms": [MINE]}]
    assert [f["room"] for f in snap["failures"]] == [MINE]
    assert set(snap["last_delivery"]) == {"acme/widgets"}
    assert snap["queue"]["failed"] == 2  # global totals stay global
    text = await health.text(HealthScope(MINE, admin=False))
    assert OTHER not in text
    assert "hr/" not in text
    *_, heading, line = text.splitlines()
    assert heading == "This room's subscriptions:"
    assert line.startswith("• acme/widgets: last delivery ")
    assert line.endswith(" (public only)")


async def test_signature_failure_details_are_for_admins(health: Health) -> None:
    room_view = await health.snapshot(HealthScope(MINE, admin=False))
    facts = room_view["signature_failures"]
    assert (facts["last_24h"], facts["last_remote"], facts["last_reason"]) == (1, None, None)
    text = await health.text(HealthScope(MINE, admin=False))
    line = next(x for x in text.splitlines() if x.startswith("Signature failures"))
    assert line.startswith("Signature failures (24 h): 1, latest ")
    assert " s ago — a wrong secret is the usual cause" in line
    assert REMOTE not in text and "does not match" not in text

    admin_text = await health.text(HealthScope(MINE, admin=True))
    assert f"from {REMOTE}: {REASON}" in admin_text


async def test_the_latest_send_error_of_another_room_is_not_shown(health: Health) -> None:
    room_view = await health.snapshot(HealthScope(MINE, admin=False))
    send_errors = room_view["send_errors"]
    assert (send_errors["last_error"], send_errors["last_room"]) == (None, None)
    assert send_errors["latest_elsewhere"] is True  # the newest failure is OTHER's
    text = await health.text(HealthScope(MINE, admin=False))
    assert "the latest unresolved error is in another room" in text
    own = await health.snapshot(HealthScope(OTHER, admin=False))
    assert own["send_errors"]["last_error"] == f"M_FORBIDDEN: not in {OTHER}"


async def test_an_admin_sees_every_room(health: Health) -> None:
    for scope in (HealthScope(MINE, admin=True), FULL):
        snap = await health.snapshot(scope)
        assert {e["repo"] for e in snap["repos"]} == {"acme/widgets", "hr/*"}
        assert {f["room"] for f in snap["failures"]} == {MINE, OTHER}
        assert snap["signature_failures"]["last_remote"] == REMOTE
    text = await health.text(HealthScope(MINE, admin=True))
    assert f"to {OTHER}" in text and "• hr/*: last delivery" in text


async def test_a_room_without_subscriptions_says_so(store: Store) -> None:
    health = Health(store, Link(LinkState(True, time.time(), None)))
    await store.subscribe(OTHER, "hr/*", "@admin:x", trusted=True)
    text = await health.text(HealthScope(MINE, admin=False))
    assert text.splitlines()[-1] == "This room has no subscriptions."
    assert "hr/*" not in text


async def test_a_public_only_subscription_does_not_learn_of_private_deliveries(
    store: Store,
) -> None:
    health = Health(store, Link(LinkState(True, time.time(), None)))
    await store.subscribe(MINE, "acme/*", "@bob:x")
    await store.subscribe(OTHER, "acme/*", "@admin:x", trusted=True)
    now = time.time()
    for n, (repo, private, at) in enumerate(
        (("acme/open", False, now - 7200), ("acme/secret", True, now - 60))
    ):
        new = NewDelivery(f"d{n}", "push", f"s{n}", repo, "{}", at, "pending", private=private)
        assert await store.record_delivery(new)
    mine = await health.snapshot(HealthScope(MINE, admin=False))
    assert mine["last_delivery"] == {"acme/*": now - 7200}
    other = await health.snapshot(HealthScope(OTHER, admin=False))
    assert other["last_delivery"] == {"acme/*": now - 60}
    assert (await health.snapshot())["last_delivery"] == {"acme/*": now - 60}
