"""The dispatcher keeps private repositories private: sent now, held and coalesced alike."""

from __future__ import annotations

import hashlib
import json

from bot.dispatcher import Dispatcher
from bot.sample import sample_push
from core.records import NewDelivery
from core.store import Store
from core.wakeup import Wakeup
from tests.unit.test_dispatcher import Clock, queued

TRUSTED, PUBLIC_ONLY = "!trusted:x", "!public:x"


async def accept(store: Store, n: int, private: bool | None, repo: str = "acme/widgets") -> None:
    """A push; `private=None` leaves the visibility out, as older forges do."""
    payload = sample_push(repo, message=f"change {n}", private=private)
    body = json.dumps(payload)
    digest = hashlib.sha256(body.encode()).hexdigest()
    new = NewDelivery(
        f"d{n}", "push", digest, repo, body, 0.0, "pending", private=private is not False
    )
    assert await store.record_delivery(new)


async def two_rooms(store: Store) -> None:
    await store.subscribe(TRUSTED, "acme/*", "@admin:x", trusted=True)
    await store.subscribe(PUBLIC_ONLY, "acme/*", "@bob:x")


async def test_private_and_unknown_events_reach_only_the_trusted_room(store: Store) -> None:
    await two_rooms(store)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    await accept(store, 1, private=True)
    await accept(store, 2, private=None)
    await accept(store, 3, private=False)
    await dispatcher.route_pending()
    sent = [(m.room_id, m.body.splitlines()[2]) for m in await queued(store, Clock(1.0))]
    rooms_of = {n: sorted(room for room, line in sent if f"change {n}" in line) for n in (1, 2, 3)}
    assert rooms_of == {1: [TRUSTED], 2: [TRUSTED], 3: [PUBLIC_ONLY, TRUSTED]}
    logged = {d.delivery_id: d.status for d in await store.recent_deliveries()}
    assert logged == {"d1": "routed", "d2": "routed", "d3": "routed"}


async def test_a_private_event_for_an_untrusted_room_only_is_filtered_out(store: Store) -> None:
    await store.subscribe(PUBLIC_ONLY, "acme/*", "@bob:x")
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=0, clock=Clock(1.0))
    await accept(store, 1, private=True)
    assert await dispatcher.route_pending() == 0
    (logged,) = await store.delivery_log(5)
    assert (logged.result, logged.note) == ("unrouted", "filtered out by every subscription")


async def test_held_private_events_are_coalesced_for_the_trusted_room_only(store: Store) -> None:
    await two_rooms(store)
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await accept(store, 0, private=False)  # opens both rooms' windows
    await dispatcher.route_pending()
    await queued(store, clock)
    for n, private in ((1, True), (2, False), (3, True), (4, False)):
        await accept(store, n, private=private)
    await dispatcher.route_pending()
    held = {(g.room_id, g.count) for g in await store.held_groups()}
    assert held == {(TRUSTED, 4), (PUBLIC_ONLY, 2)}

    clock.now = 1060.0
    await dispatcher.release_due()
    coalesced = {m.room_id: m.body for m in await queued(store, clock)}
    assert coalesced[TRUSTED].startswith("[acme/widgets] 4 pushes (4 commits)")
    assert coalesced[PUBLIC_ONLY].startswith("[acme/widgets] 2 pushes (2 commits)")


async def test_held_private_events_are_dropped_when_the_room_lost_its_trust(
    store: Store,
) -> None:
    """Held while trusted, released after an untrusted change made it public only: only
    the public events leave."""
    await store.subscribe(TRUSTED, "acme/widgets", "@admin:x", trusted=True)
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    await accept(store, 0, private=False)
    await dispatcher.route_pending()
    await queued(store, clock)
    for n, private in ((1, True), (2, False), (3, True)):
        await accept(store, n, private=private)
    await dispatcher.route_pending()
    await store.subscribe(TRUSTED, "acme/widgets", "@bob:x", events="push")  # now public only

    clock.now = 1060.0
    await dispatcher.release_due()
    (message,) = await queued(store, clock)
    assert message.body.startswith("[acme/widgets] alice pushed 1 commit to main")
    assert "change 2" in message.body
    assert "change 1" not in message.body and "change 3" not in message.body
    assert await store.held_groups() == []


async def test_held_only_private_events_of_a_room_that_lost_trust_post_nothing(
    store: Store,
) -> None:
    await store.subscribe(TRUSTED, "acme/widgets", "@admin:x", trusted=True)
    clock = Clock(1000.0)
    dispatcher = Dispatcher(store, Wakeup(), Wakeup(), window_s=60.0, clock=clock)
    for n in range(3):
        await accept(store, n, private=True)
    await dispatcher.route_pending()
    await queued(store, clock)
    await store.subscribe(TRUSTED, "acme/widgets", "@bob:x", branch_glob="main")
    clock.now = 1060.0
    await dispatcher.release_due()
    assert await queued(store, clock) == []
    assert await store.held_groups() == []
