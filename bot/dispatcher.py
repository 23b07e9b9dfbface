"""Routes committed deliveries from the inbox to the outbox of every subscribed room.

Per (repo, room) the rate limit decides: the first event in a quiet window is queued at
once; later ones are held (durably) and leave as one coalesced message when the window
opens. Routing a batch of deliveries is one transaction, and so is releasing a held group,
so a crash leaves either nothing done (done again on restart) or everything done.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from core.events import AnnouncedEvent, PayloadError, parse_event
from core.filters import rooms_wanting
from core.rate_limit import decide, window_open
from core.records import Delivery, HeldGroup, NewMessage, PairState, Route, Subscription
from core.store import Store
from core.wakeup import Wakeup
from formatters import Rendered, render, render_held

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0
PRUNE_EVERY_S = 3600.0
STORE_RETRY_S = 1.0


class Dispatcher:
    def __init__(
        self,
        store: Store,
        inbox: Wakeup,
        outbox: Wakeup,
        window_s: float,
        retention_s: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._inbox = inbox
        self._outbox = outbox
        self._window_s = window_s
        self._retention_s = retention_s
        self._clock = clock
        self._pruned_at = float("-inf")

    async def run(self) -> None:
        """Route and release forever, woken by the receiver after each commit and by the
        sender when a message is sent or fails for good (a held pair's window starts)."""
        while True:
            try:
                await self.prune_if_due()
                await self.route_pending()
                next_release = await self.release_due()
            except sqlite3.Error:
                log.exception("store error while dispatching; retrying shortly")
                next_release = self._clock() + STORE_RETRY_S
            wait = IDLE_POLL_S if next_release is None else next_release - self._clock()
            await self._inbox.wait(min(IDLE_POLL_S, max(0.0, wait)))

    async def prune_if_due(self) -> None:
        """Bounded growth: once an hour, forget what is older than the retention period."""
        now = self._clock()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        messages, deliveries = await self._store.prune(now - self._retention_s)
        if messages or deliveries:
            log.info("pruned %d message(s) and %d deliveries past retention", messages, deliveries)

    async def route_pending(self) -> int:
        """Route everything pending now; returns how many messages were queued."""
        queued = 0
        while batch := await self._store.pending_deliveries():
            async with self._store.routing():
                routed = await self._route_batch_isolated(batch)
            if routed:  # per batch: under a long burst the sender starts at once
                self._outbox.set()
            queued += routed
        return queued

    async def _route_batch_isolated(self, batch: Sequence[Delivery]) -> int:
        """A batch that fails for a reason of its own (a bug) is routed one by one, and a
        delivery that fails alone is closed: routing must never stop on a delivery."""
        try:
            return await self._route_batch(batch)
        except sqlite3.Error:
            raise  # the store's trouble: the loop retries the batch
        except Exception:
            log.exception("routing a batch of %d failed; routing it one by one", len(batch))
        routed = 0
        for delivery in batch:
            try:
                routed += await self._route_batch([delivery])
            except sqlite3.Error:
                raise
            except Exception as exc:
                await self._store.route_deliveries([_failed(delivery, exc)])
        return routed

    async def _route_batch(self, batch: Sequence[Delivery]) -> int:
        """Route a batch with a few reads and one transaction, whatever its size.

        Only deliveries some room subscribed to are parsed, and only those some room wants
        are rendered. A delivery that cannot be routed (unreadable, or a bug in its
        formatter) is closed on its own, not retried for ever; store errors roll the whole
        batch back, and the loop tries it again.
        """
        subscriptions = await self._store.subscriptions_for_repos({d.repo or "" for d in batch})
        plans = {d.id: _plan(d, subscriptions[d.repo or ""]) for d in batch}
        pairs = {
            (room, plan.event.repo.lower())
            for plan in plans.values()
            if isinstance(plan, Announcement)
            for room in plan.rooms
        }
        states = await self._store.pair_states(pairs)
        now = self._clock()
        routes = [
            plan if isinstance(plan, Route) else self._decide(row, plan, states, now)
            for row, plan in plans.items()
        ]
        await self._store.route_deliveries(routes, now)
        for delivery, route in zip(batch, routes, strict=True):
            # What reached a room at INFO; the rest (`forge-notifier events` shows it all)
            # at DEBUG, so an org-wide webhook's unsubscribed repositories stay quiet.
            level = logging.INFO if route.status == "routed" else logging.DEBUG
            log.log(level, "delivery %s (%s): %s", delivery.delivery_id, delivery.repo, route.note)
        return sum(len(route.messages) for route in routes)

    def _decide(
        self,
        row: int,
        announcement: Announcement,
        states: dict[tuple[str, str], PairState],
        now: float,
    ) -> Route:
        """Send now or hold, per room; `states` is updated, so later deliveries of the same
        batch see this one's effect on the pair."""
        event, rendered = announcement.event, announcement.rendered
        send, hold = [], []
        for room in announcement.rooms:
            key = (room, event.repo.lower())
            state = states[key]
            decision = decide(state.last_sent_at, state.holding, now, self._window_s, state.queued)
            if decision.send_now:
                send.append(room)
                states[key] = PairState(state.last_sent_at, state.holding, queued=True)
            else:
                hold.append(room)
                states[key] = PairState(state.last_sent_at, True, state.queued)
        messages = tuple(
            NewMessage(room, event.repo, rendered.body, rendered.html) for room in send
        )
        return Route(
            row,
            "routed",
            f"sent to {len(send)} room(s), held for {len(hold)}",
            messages,
            tuple(hold),
            event.repo,
        )

    async def release_due(self) -> float | None:
        """Release every held group whose window is open; returns when the next one opens."""
        now = self._clock()
        next_open: float | None = None
        released = 0
        for group in await self._store.held_groups():
            if window_open(group.last_sent_at, now, self._window_s, group.queued):
                async with self._store.routing():
                    await self._release_isolated(group)
                released += 1
            elif group.queued:
                continue  # its window starts once the sender settles the queued message
            else:
                opens = (group.last_sent_at or now) + self._window_s
                next_open = opens if next_open is None else min(next_open, opens)
        if released:
            self._outbox.set()
        return next_open

    async def _release_isolated(self, group: HeldGroup) -> None:
        try:
            await self._release(group)
        except sqlite3.Error:
            raise
        except Exception:
            log.exception(
                "held events of %s for %s cannot be released; dropping the group",
                group.repo,
                group.room_id,
            )
            held = await self._store.held_deliveries(group.room_id, group.repo)
            await self._store.release_held([i for i, _ in held], None, None, self._clock())

    async def _release(self, group: HeldGroup) -> None:
        held = await self._store.held_deliveries(group.room_id, group.repo)
        if not held:
            return
        events = []
        for _, delivery in held:
            with contextlib.suppress(PayloadError):  # closed as invalid when it was routed
                if event := _event_of(delivery):
                    events.append(event)
        events = await self._still_visible(group.room_id, events)
        rendered = _render_group(events)
        last_row = held[-1][1].id
        message = None
        if rendered is not None:
            message = NewMessage(group.room_id, events[0].repo, rendered.body, rendered.html)
        held_ids = [held_id for held_id, _ in held]
        await self._store.release_held(held_ids, message, last_row, self._clock())
        log.info(
            "released %d held event(s) of %s to %s as one message",
            len(held),
            group.repo,
            group.room_id,
        )

    async def _still_visible(
        self, room_id: str, events: list[AnnouncedEvent]
    ) -> list[AnnouncedEvent]:
        """Held private events leave only if the room still has a trusted subscription
        covering them: a re-subscribe may have made it public only while they waited."""
        if not any(event.private for event in events):
            return events
        repo = events[0].repo
        covering = (await self._store.subscriptions_for_repos({repo}))[repo]
        trusted = any(sub.trusted for sub in covering if sub.room_id == room_id)
        return [event for event in events if trusted or not event.private]


def _render_group(events: Sequence[AnnouncedEvent]) -> Rendered | None:
    """The held events as one message (exact counts per kind, within the byte budget); an
    event whose formatter fails is left out, logged, rather than the whole group."""
    try:
        return render_held(events) if events else None
    except Exception:
        log.exception("rendering %d held events failed; leaving out those that fail", len(events))
    renderable = [event for event in events if _renders(event)]
    return render_held(renderable) if renderable else None


def _renders(event: AnnouncedEvent) -> bool:
    try:
        render(event)
    except Exception:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Announcement:
    """A delivery some rooms want: its event, rendered once for all of them."""

    event: AnnouncedEvent
    rendered: Rendered
    rooms: list[str]


def _plan(delivery: Delivery, subscriptions: Sequence[Subscription]) -> Announcement | Route:
    """What to announce where, or the route that closes the delivery unannounced."""
    if not subscriptions:
        return Route(delivery.id, "unrouted", "no room subscribed")
    try:
        event = _event_of(delivery)
        if event is None:
            return Route(delivery.id, "unhandled")
        rooms = rooms_wanting(subscriptions, event)
        if not rooms:
            return Route(delivery.id, "unrouted", "filtered out by every subscription")
        rendered = render(event)
    except PayloadError as exc:
        # The receiver validated it; this only happens if a newer model became stricter.
        return Route(delivery.id, "invalid", str(exc))
    except Exception as exc:
        return _failed(delivery, exc)
    if rendered is None:
        return Route(delivery.id, "unhandled")
    return Announcement(event, rendered, rooms)


def _failed(delivery: Delivery, exc: Exception) -> Route:
    log.error("delivery %s cannot be routed; closing it", delivery.delivery_id, exc_info=exc)
    return Route(delivery.id, "failed", repr(exc)[:500])


def _event_of(delivery: Delivery) -> AnnouncedEvent | None:
    """The stored delivery's event (None: a kind not announced); PayloadError if unreadable."""
    try:
        payload = orjson.loads(delivery.payload)
    except orjson.JSONDecodeError:
        raise PayloadError("stored payload is not JSON") from None
    return parse_event(delivery.event, payload)
