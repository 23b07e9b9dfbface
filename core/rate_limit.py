"""The per (repo, room) rate limit, as a pure function of the window's state and the time.

Like Synapse's ratelimiter it answers "may this go now, and if not, when": the dispatcher
decides what to do with the answer (send, or hold for a coalesced message). Time is passed
in, so tests drive it with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    send_now: bool
    open_at: float  # when the window is open (again): now when sending, later when holding


def decide(
    last_sent_at: float | None,
    holding: bool,
    now: float,
    window_s: float,
    queued: bool = False,
) -> Decision:
    """May a message for this (repo, room) go out at `now`?

    `last_sent_at`: when the last message of the pair was sent (None: never).
    `holding`: events of the pair are already held; a newcomer joins them so the
    coalesced message keeps the events in order.
    `queued`: the pair's previous message is waiting to be sent; its window starts when
    it is, so this one waits too (then `open_at` is only the earliest possible time).
    A window of 0 turns rate limiting off.
    """
    open_at = now if last_sent_at is None else max(now, last_sent_at + window_s)
    if holding:  # even with limiting off: held events (from before a restart) go first
        return Decision(False, open_at if window_s > 0 else now)
    if window_s <= 0:
        return Decision(True, now)
    if queued:
        return Decision(False, max(open_at, now + window_s))
    if open_at <= now:
        return Decision(True, now)
    return Decision(False, open_at)


def window_open(
    last_sent_at: float | None, now: float, window_s: float, queued: bool = False
) -> bool:
    """Whether held events of a pair may now go out as one message."""
    if window_s <= 0:
        return True
    return not queued and (last_sent_at is None or now >= last_sent_at + window_s)
