"""Routes committed deliveries from the inbox to the outbox of every subscribed room.

Routing a delivery (queueing its messages and closing it) is one transaction, so a crash
leaves a delivery either untouched (routed again on restart) or fully queued.
"""

from __future__ import annotations

import json
import logging

from core.events import PayloadError, parse_event
from core.filters import rooms_wanting
from core.records import Delivery, NewMessage
from core.store import Store
from core.wakeup import Wakeup
from formatters import render

log = logging.getLogger(__name__)

IDLE_POLL_S = 5.0


class Dispatcher:
    def __init__(self, store: Store, inbox: Wakeup, outbox: Wakeup) -> None:
        self._store = store
        self._inbox = inbox
        self._outbox = outbox

    async def run(self) -> None:
        """Route pending deliveries forever, woken by the receiver after each commit."""
        while True:
            await self.route_pending()
            await self._inbox.wait(IDLE_POLL_S)

    async def route_pending(self) -> int:
        """Route everything pending now; returns how many messages were queued."""
        queued = 0
        while batch := await self._store.pending_deliveries():
            for delivery in batch:
                queued += await self._route(delivery)
        if queued:
            self._outbox.set()
        return queued

    async def _route(self, delivery: Delivery) -> int:
        try:
            event = parse_event(delivery.event, json.loads(delivery.payload))
        except (PayloadError, ValueError) as exc:
            # The receiver validated it; this only happens if a newer model became stricter.
            await self._store.route_delivery(delivery.id, [], "invalid", str(exc))
            return 0
        rendered = render(event) if event else None
        if event is None or rendered is None:
            await self._store.route_delivery(delivery.id, [], "unhandled", None)
            return 0
        rooms = rooms_wanting(await self._store.subscriptions_for_repo(event.repo), event)
        messages = [NewMessage(room, event.repo, rendered.body, rendered.html) for room in rooms]
        status = "routed" if messages else "unrouted"
        await self._store.route_delivery(delivery.id, messages, status, f"{len(rooms)} room(s)")
        log.info("delivery %s (%s) → %d room(s)", delivery.delivery_id, event.repo, len(rooms))
        return len(messages)
