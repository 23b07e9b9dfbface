"""Routing one delivery by hand, as the dispatcher does for a batch (tests set up state)."""

from __future__ import annotations

from collections.abc import Sequence

from core.records import NewMessage, Route
from core.store import Store


async def route_delivery(
    store: Store,
    delivery_row: int,
    send: Sequence[NewMessage],
    status: str,
    note: str | None,
    hold: Sequence[str] = (),
    repo: str = "",
    now: float | None = None,
) -> None:
    route = Route(delivery_row, status, note, tuple(send), tuple(hold), repo)
    await store.route_deliveries([route], now)
