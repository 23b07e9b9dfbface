"""Pieces every formatter uses: the `[OWNER/NAME]` prefix, plurals, one-line messages."""

from __future__ import annotations

from core.payload_parts import EventBase
from formatters.rendered import Rendered
from formatters.safe import clip, cut, esc, link, safe_url


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 commit`, `2 commits`; `many` for irregular plurals such as `pushes`."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def repo_prefix(event: EventBase) -> tuple[str, str]:
    """`[OWNER/NAME]` in plain text and, linked to the repository, in HTML."""
    repo = clip(event.repo)
    return f"[{repo}]", f"[{link(event.repository.html_url, esc(repo))}]"


def actor(event: EventBase) -> str:
    """Who caused the event, as named by the forge (cut if absurdly long)."""
    return clip(event.actor)


def headline(event: EventBase, plain: str, html: str, url: str = "", quote: str = "") -> Rendered:
    """`[OWNER/NAME] <plain>`, its link on a line of its own, and an optional quoted excerpt.

    `plain` is text; `html` must already be escaped.
    """
    prefix, prefix_html = repo_prefix(event)
    body, parts = [f"{prefix} {plain}"], [f"{prefix_html} {html}"]
    excerpt = cut(quote.strip().splitlines()[0]) if quote.strip() else ""
    if excerpt:
        body.append(f"> {excerpt}")
        parts.append(f"<blockquote>{esc(excerpt)}</blockquote>")
    if safe_url(url):
        body.append(url)
    return Rendered("\n".join(body), f"<p>{parts[0]}</p>" + "".join(parts[1:]))


def titled(label: str, number: int | None, title: str, url: str) -> tuple[str, str]:
    """`PR #7: Title` as text and as HTML with the number linked."""
    short, name = cut(title), f"{label} #{number}" if number else label
    return f"{name}: {short}", f"{link(url, name)}: {esc(short)}"
