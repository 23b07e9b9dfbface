"""One message for the events held back by the rate limit: exact counts per kind, then
as many details as the byte budget allows.

The head line counts everything held: `[OWNER/NAME] P pushes (C commits) to BRANCHES by
PUSHERS; 2 PRs opened; 1 issue closed`. Below it come a line per branch pushed to, then
the other events rendered on their own, each list cut with "… and N more …" when it is
long or the message would not fit (formatters.budget).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.events import AnnouncedEvent, PushEvent
from formatters.budget import CONTENT_BUDGET, TAIL_RESERVE, fit, line_cost, size_of, take
from formatters.common import plural, repo_prefix
from formatters.rendered import Rendered
from formatters.safe import clip, esc, link, safe_url
from formatters.tally import tally

MAX_BRANCH_LINES = 10
MAX_EVENT_DETAILS = 20
MAX_HEAD_NAMES = 5  # branches and pushers named in the head line; the rest are counted

Renderer = Callable[[AnnouncedEvent], Rendered | None]


def render_coalesced(events: Sequence[AnnouncedEvent], render_one: Renderer) -> Rendered | None:
    """The held events as one message within CONTENT_BUDGET; None if none is announced."""
    pushes = [event for event in events if isinstance(event, PushEvent)]
    others = [
        (event, rendered)
        for event in events
        if not isinstance(event, PushEvent) and (rendered := render_one(event)) is not None
    ]
    if not pushes and not others:
        return None
    if not pushes and len(others) == 1:
        return others[0][1]
    head = _head(pushes, [event for event, _ in others])
    room = CONTENT_BUDGET - size_of(head) - TAIL_RESERVE
    body, html = [head.body], [head.html]
    if pushes:
        room = _add_branches(pushes, room, body, html)
    _add_details([rendered for _, rendered in others], room, body, html)
    return fit(Rendered("\n".join(body), "".join(html)))


def _head(pushes: Sequence[PushEvent], others: Sequence[AnnouncedEvent]) -> Rendered:
    """`[OWNER/NAME] P pushes (C commits) to BRANCHES by PUSHERS; 2 PRs opened; …`."""
    prefix, prefix_html = repo_prefix(pushes[0] if pushes else others[0])
    counts = tally(others)
    if pushes:
        branches = _names([event.ref_name for event in pushes], "more branch", "more branches")
        pushers = _names([event.actor for event in pushes], "more", "more")
        commits = plural(sum(event.commit_count for event in pushes), "commit")
        counts.insert(0, f"{plural(len(pushes), 'push', 'pushes')} ({commits}) to {branches}")
        counts[0] += f" by {pushers}"
    text = "; ".join(counts)
    return Rendered(f"{prefix} {text}", f"<p>{prefix_html} {esc(text)}</p>")


def _names(values: Sequence[str], more: str, many_more: str) -> str:
    """`main, dev`; beyond MAX_HEAD_NAMES distinct names, `… and 7 more branches`."""
    names = [clip(value) for value in _unique(values)]
    shown = ", ".join(names[:MAX_HEAD_NAMES])
    rest = len(names) - MAX_HEAD_NAMES
    return f"{shown} and {plural(rest, more, many_more)}" if rest > 0 else shown


def _add_branches(pushes: Sequence[PushEvent], room: int, body: list[str], html: list[str]) -> int:
    """A line per branch with its commits and compare range; returns the room left."""
    branches = _unique([event.ref_name for event in pushes])
    lines = [_branch_line(branch, pushes) for branch in branches[:MAX_BRANCH_LINES]]
    shown = take(lines, room)
    body += [line.body for line in lines[:shown]]
    items = [line.html for line in lines[:shown]]
    more = len(branches) - shown
    if more > 0:
        body.append(f"… and {plural(more, 'more branch', 'more branches')}")
        items.append(f"<li>… and {plural(more, 'more branch', 'more branches')}</li>")
    html.append("<ul>" + "".join(items) + "</ul>")
    return room - sum(line_cost(line) for line in lines[:shown])


def _branch_line(branch: str, pushes: Sequence[PushEvent]) -> Rendered:
    on_branch = [event for event in pushes if event.ref_name == branch]
    commits = plural(sum(event.commit_count for event in on_branch), "commit")
    url, name = _compare_url(on_branch), clip(branch)
    return Rendered(
        f"{name}: {commits}" + (f" {url}" if url else ""),
        f"<li><code>{esc(name)}</code>: {link(url or '', commits)}</li>",
    )


def _add_details(details: Sequence[Rendered], room: int, body: list[str], html: list[str]) -> None:
    """The other held events, each as rendered alone, while they fit."""
    shown = take(details, room, MAX_EVENT_DETAILS)
    body += [detail.body for detail in details[:shown]]
    html += [detail.html for detail in details[:shown]]
    more = len(details) - shown
    if more > 0:
        body.append(f"… and {plural(more, 'more event', 'more events')}")
        html.append(f"<p>… and {plural(more, 'more event', 'more events')}</p>")


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _compare_url(pushes: Sequence[PushEvent]) -> str | None:
    """The range all of a branch's pushes cover, from the first `before` to the last `after`."""
    first, last = pushes[0], pushes[-1]
    if len(pushes) == 1 or first.created or last.deleted:
        return safe_url(last.compare_url)
    base = safe_url(first.repository.html_url)
    url = f"{base}/compare/{first.before}...{last.after}" if base else last.compare_url
    return safe_url(url)
