"""Pure rendering of forge events: event in, `Rendered(body, html)` out, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.events import AnnouncedEvent, PushEvent
from formatters.push import render_push
from formatters.rendered import Rendered

# Event model → formatter. A kind missing here is "unhandled", never an error.
FORMATTERS: dict[type[Any], Callable[[Any], Rendered]] = {
    PushEvent: render_push,
}


def render(event: AnnouncedEvent) -> Rendered | None:
    """Render an event, or None when no formatter handles its kind."""
    formatter = FORMATTERS.get(type(event))
    return formatter(event) if formatter else None


__all__ = ["FORMATTERS", "Rendered", "render"]
