"""Branch and tag creation and deletion (`create` / `delete` events)."""

from __future__ import annotations

from core.events import RefEvent
from formatters.common import actor, headline
from formatters.rendered import Rendered
from formatters.safe import clip, esc

VERBS = {"create": "created", "delete": "deleted"}


def render_ref(event: RefEvent) -> Rendered:
    verb, kind = VERBS.get(event.action, event.action), clip(event.ref_type or "branch")
    name = clip(event.ref_name)
    return headline(
        event,
        f"{actor(event)} {verb} {kind} {name}",
        f"{esc(actor(event))} {esc(verb)} {esc(kind)} <code>{esc(name)}</code>",
    )
