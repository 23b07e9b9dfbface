"""Branch and tag creation and deletion (`create` / `delete` events)."""

from __future__ import annotations

from core.events import RefEvent
from formatters.common import headline
from formatters.rendered import Rendered
from formatters.safe import esc

VERBS = {"create": "created", "delete": "deleted"}


def render_ref(event: RefEvent) -> Rendered:
    verb, kind = VERBS.get(event.action, event.action), event.ref_type or "branch"
    return headline(
        event,
        f"{event.actor} {verb} {kind} {event.ref_name}",
        f"{esc(event.actor)} {verb} {esc(kind)} <code>{esc(event.ref_name)}</code>",
    )
