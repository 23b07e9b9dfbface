"""Rows of the store as frozen dataclasses: what leaves the store cannot be mutated by accident."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import aiosqlite


class _FromRow:
    """`from_row` for slotted dataclasses: the columns named like the fields."""

    __slots__: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Self:
        return cls(**{name: row[name] for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A verified, parsed webhook about to be committed to the inbox."""

    delivery_id: str
    event: str
    body_sha256: str
    repo: str | None
    payload: str
    received_at: float
    status: str  # "pending" (to announce) or "ignored"
    note: str | None = None
    private: bool = True  # the forge's visibility of the repository; unknown counts as private

    def row(self) -> tuple[str, str, str, str | None, str, float, str, str | None, bool]:
        """The column values in table order (`astuple` deep-copies, and this is per request)."""
        return (
            self.delivery_id,
            self.event,
            self.body_sha256,
            self.repo,
            self.payload,
            self.received_at,
            self.status,
            self.note,
            self.private,
        )


@dataclass(frozen=True, slots=True)
class Delivery(_FromRow):
    id: int
    delivery_id: str
    event: str
    repo: str | None
    payload: str
    received_at: float
    status: str
    private: bool = True


@dataclass(frozen=True, slots=True)
class Subscription(_FromRow):
    room_id: str
    repo: str
    branch_glob: str | None
    events: str | None
    created_by: str
    created_at: float
    # Its author is in NOTIFIER_ADMINS or NOTIFIER_TRUSTED_USERS: it may see private repos.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A rendered notice for one room, queued in the outbox with its own transaction id."""

    room_id: str
    repo: str
    body: str
    html: str


@dataclass(frozen=True, slots=True)
class OutboxMessage(_FromRow):
    id: int
    room_id: str
    repo: str
    txn_id: str
    body: str
    html: str
    created_at: float
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Work not yet done: deliveries not yet routed plus messages not yet sent."""

    pending: int
    oldest_age_s: float | None
    failed: int
    held: int = 0  # events waiting for their rate window: delayed on purpose, not stuck


@dataclass(frozen=True, slots=True)
class PairState:
    """A (room, repo) pair's rate window: when its last message was sent, whether events are
    held, and whether a message is queued but not sent yet (its window has not started)."""

    last_sent_at: float | None
    holding: bool
    queued: bool = False


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """Events of one (room, repo) pair waiting for their window to open."""

    room_id: str
    repo: str
    last_sent_at: float | None
    count: int
    queued: bool = False  # the pair's previous message is not sent yet


@dataclass(frozen=True, slots=True)
class Route:
    """What routing decided for one delivery; a batch of them is applied in one transaction.

    `messages` go out now, the delivery is held for the rooms in `hold` (their window is
    closed), and the delivery is closed with `status` and `note`.
    """

    delivery_row: int
    status: str
    note: str | None = None
    messages: tuple[NewMessage, ...] = ()
    hold: tuple[str, ...] = ()
    repo: str = ""
