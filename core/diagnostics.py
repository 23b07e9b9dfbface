"""Records behind the operator's questions: "did Gitea call us?", "why did nothing arrive?".

Kept apart from `core.records` (the delivery pipeline's rows): these are read by `!health`,
`/webhook/health` and `forge-notifier events`, never by the dispatcher or the sender.
"""

from __future__ import annotations

from dataclasses import dataclass

# Results of a webhook request, as counted by /metrics and recorded in the intake log.
ACCEPTED = "accepted"
IGNORED = "ignored"
DUPLICATE = "duplicate"
BAD_SIGNATURE = "bad_signature"
INVALID = "invalid"
TOO_LARGE = "too_large"
UNSUPPORTED_TYPE = "unsupported_type"
STORE_ERROR = "error"
BUSY = "busy"  # 503: the body budget stayed spent (a flood of large bodies)


@dataclass(frozen=True, slots=True)
class IntakeEntry:
    """A request that did not become a new delivery row: refused (4xx/5xx) or a duplicate.

    Nothing here is trusted for a refusal: the body was not verified, so no repository is
    read from it; the event and delivery headers are kept because they are what the
    operator compares with Gitea's "Recent Deliveries" list. `count` is how many identical
    requests the entry stands for: refusals are aggregated in memory and written in
    batches, one row per kind of refusal and remote (the newest time and delivery id kept).
    """

    at: float
    result: str
    status: int
    reason: str | None
    delivery_id: str | None
    event: str | None = None
    repo: str | None = None
    remote: str | None = None
    count: int = 1


@dataclass(frozen=True, slots=True)
class IntakeSummary:
    """How many requests of one result arrived in a window, and the latest of them."""

    count: int
    last_at: float | None = None
    last_reason: str | None = None
    last_remote: str | None = None


@dataclass(frozen=True, slots=True)
class SendErrorSummary:
    """Failed send attempts on messages queued in a window, and those that failed for good."""

    errors: int
    failed: int
    last_error: str | None = None
    last_room: str | None = None


@dataclass(frozen=True, slots=True)
class RoomPost:
    """Where one delivery went: a room and what became of the message (sent, pending, ...)."""

    room_id: str
    status: str


@dataclass(frozen=True, slots=True)
class LoggedDelivery:
    """One line of `forge-notifier events`: a stored delivery, or an intake log entry."""

    at: float
    delivery_id: str
    event: str
    repo: str | None
    result: str
    note: str | None = None
    rooms: tuple[RoomPost, ...] = ()
