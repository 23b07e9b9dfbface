"""Log lines for refused requests, bounded: a flood of junk must not flood the journal.

The first few refusals of each minute are logged one line each (an operator fixing a wrong
secret sees every one); past that they are only counted, and a single summary line says
how many were refused in that minute, by status: "N requests refused in the last minute:
401x…, 400x…". Nothing here keeps more than one counter per status code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

LINES_PER_WINDOW = 10
WINDOW_S = 60.0
_MAX_TEXT = 120  # characters of client-controlled text in one log line


def printable(text: object, limit: int = _MAX_TEXT) -> str:
    """Client-supplied text made safe for one log line: escaped, no newlines, cut short."""
    escaped = str(text).encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


class RefusalLog:
    """Rate-limited one-line logging of refusals, with a per-window summary."""

    def __init__(
        self,
        logger: logging.Logger,
        lines_per_window: int = LINES_PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
        what: str = "requests refused",
    ) -> None:
        self._log = logger
        self._level = level
        self._what = what
        self._limit = lines_per_window
        self._window_s = window_s
        self._clock = clock
        self._window_end = 0.0
        self._lines = 0
        self._counts: Counter[int] = Counter()
        self._suppressed = 0
        self._timer: asyncio.TimerHandle | None = None

    def refused(self, status: int, message: str, *args: Any, exc_info: Any = None) -> None:
        """Count a refusal answered with `status`; log `message % args` if the budget allows."""
        self._roll_if_due()
        self._counts[status] += 1
        if self._lines < self._limit:
            self._lines += 1
            self._log.log(self._level, message, *args, exc_info=exc_info, stacklevel=2)
            return
        self._suppressed += 1
        self._schedule_summary()

    def summarize(self) -> None:
        """Log the summary of the window now if lines were held back, and start a new one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._suppressed:
            total = sum(self._counts.values())
            by_status = ", ".join(f"{status}x{n}" for status, n in sorted(self._counts.items()))
            self._log.log(
                self._level,
                "%d %s in the last minute: %s (%d not logged one by one)",
                total,
                self._what,
                by_status,
                self._suppressed,
            )
        self._window_end = self._clock() + self._window_s
        self._lines = 0
        self._counts.clear()
        self._suppressed = 0

    def _roll_if_due(self) -> None:
        if self._clock() >= self._window_end:
            self.summarize()

    def _schedule_summary(self) -> None:
        """The summary comes at the end of the window even if the flood stops before it."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next refusal rolls the window
        delay = max(0.0, self._window_end - self._clock())
        self._timer = loop.call_later(delay, self.summarize)

    def close(self) -> None:
        """Emit what is pending (at shutdown) and stop the timer."""
        self.summarize()
