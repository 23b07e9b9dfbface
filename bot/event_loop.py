"""The daemon's event loop: uvloop where it is installed, asyncio's own otherwise.

Under a webhook burst the loop's own work (sockets, callbacks, timers) is a large share of
each request; uvloop does it in C. Everything here (aiohttp, matrix-nio, aiosqlite's
thread hand-off, signal handlers) runs on either loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # a platform without uvloop wheels: the standard loop
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on the daemon's loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
