"""Per-sender limits on chat commands, and a cap on what a reply may echo.

The rate limit is a pure function of one sender's recent commands and the time, like the
per-pair limit of core/rate_limit.py: over the limit a sender gets one short "slow down"
reply, then silence until the window has room again. State lives in memory (a restart
forgets it, which is harmless), bounded in the number of senders tracked.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

COMMANDS_PER_WINDOW = 10
WINDOW_S = 60.0
MAX_TRACKED_SENDERS = 10_000
SLOW_DOWN = "Slow down: at most {limit} commands per {window:.0f} s each. I will answer again soon."

# A Gitea owner/name is at most 141 characters and the subscribe options cap values at 200:
# anything longer is refused without being quoted back.
MAX_ARG_CHARS = 200
# The whole reply, in UTF-8 bytes: with its HTML twin it stays far below the homeserver's
# 65,536-byte event limit, so even a refusal of a 60 KB command gets its answer.
MAX_REPLY_BYTES = 8192
CUT_NOTE = "\n… (reply cut at {limit:,} bytes)"


class Verdict(enum.Enum):
    ANSWER = "answer"
    SLOW_DOWN = "slow down"  # the first command over the limit: one short reply
    SILENT = "silent"  # later ones in the same window: no reply at all


@dataclass(frozen=True, slots=True)
class SenderWindow:
    """One sender's answered commands (times, oldest first) and whether they were warned."""

    times: tuple[float, ...] = ()
    warned: bool = False


def decide(
    window: SenderWindow, now: float, limit: int, window_s: float
) -> tuple[Verdict, SenderWindow]:
    """May this sender's command be answered at `now`? Returns the verdict and new state.

    Only answered commands count, so a sender who keeps typing while silenced gets answers
    again once `window_s` has passed since the oldest answered one.
    """
    recent = tuple(t for t in window.times if t > now - window_s)
    if len(recent) < limit:
        return Verdict.ANSWER, SenderWindow((*recent, now))
    if not window.warned:
        return Verdict.SLOW_DOWN, SenderWindow(recent, warned=True)
    return Verdict.SILENT, SenderWindow(recent, warned=True)


class CommandRateLimit:
    """The in-memory windows of every sender, bounded in size."""

    def __init__(
        self,
        limit: int = COMMANDS_PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_senders: int = MAX_TRACKED_SENDERS,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_senders = max_senders
        self._windows: dict[str, SenderWindow] = {}

    def check(self, sender: str) -> Verdict:
        now = self._clock()
        verdict, window = decide(
            self._windows.pop(sender, SenderWindow()), now, self.limit, self.window_s
        )
        self._windows[sender] = window  # re-inserted: the dict stays ordered by last use
        if len(self._windows) > self._max_senders:
            self._forget_oldest()
        return verdict

    def slow_down_text(self) -> str:
        return SLOW_DOWN.format(limit=self.limit, window=self.window_s)

    def _forget_oldest(self) -> None:
        """Drop the least recently seen sender: a burst of new senders cannot grow memory."""
        del self._windows[next(iter(self._windows))]

    def __len__(self) -> int:
        return len(self._windows)


def too_long_argument(args: list[str]) -> int | None:
    """The length of the first argument over MAX_ARG_CHARS, or None when all fit."""
    return next((len(arg) for arg in args if len(arg) > MAX_ARG_CHARS), None)


def cap_reply(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """`text` if it fits in `limit` UTF-8 bytes, else cut (at a character) with a note."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    note = CUT_NOTE.format(limit=limit)
    room = limit - len(note.encode())
    return encoded[:room].decode(errors="ignore") + note
