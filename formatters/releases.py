"""Releases: published, updated, deleted; drafts and pre-releases say so."""

from __future__ import annotations

from core.events import ReleaseEvent
from formatters.common import actor, headline
from formatters.rendered import Rendered
from formatters.safe import clip, cut, esc, link

VERBS = {"published": "published", "updated": "updated", "deleted": "deleted"}


def render_release(event: ReleaseEvent) -> Rendered | None:
    verb = VERBS.get(event.action)
    if verb is None:
        return None
    release = event.release
    tag = clip(release.tag_name or release.name or "?")
    name = f" ({cut(release.name)})" if release.name and release.name != tag else ""
    marks = [
        mark for mark, on in (("draft", release.draft), ("pre-release", release.prerelease)) if on
    ]
    flag = f" [{', '.join(marks)}]" if marks else ""
    return headline(
        event,
        f"{actor(event)} {verb} release {tag}{name}{flag}",
        f"{esc(actor(event))} {verb} release {link(release.html_url, esc(tag))}{esc(name)}"
        f"{esc(flag)}",
        release.html_url,
    )
