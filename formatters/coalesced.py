"""One message for the pushes held back by the rate limit: exact counts, a line per branch."""

from __future__ import annotations

from collections.abc import Sequence

from core.events import PushEvent
from formatters.common import plural
from formatters.rendered import Rendered
from formatters.safe import esc, link, safe_url

MAX_BRANCH_LINES = 10


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def render_pushes(events: Sequence[PushEvent]) -> Rendered:
    """`[OWNER/NAME] P pushes (C commits) to BRANCHES by PUSHERS`, then a line per branch."""
    repo = events[0].repo
    commits = sum(event.commit_count for event in events)
    branches = _unique([event.ref_name for event in events])
    pushers = ", ".join(_unique([event.actor for event in events]))
    counts = f"{plural(len(events), 'push', 'pushes')} ({plural(commits, 'commit')})"
    body = [f"[{repo}] {counts} to {', '.join(branches)} by {pushers}"]
    repo_html = link(events[0].repository.html_url, esc(repo))
    html = [f"<p>[{repo_html}] {counts} to {esc(', '.join(branches))} by {esc(pushers)}</p>"]
    items = []
    for branch in branches[:MAX_BRANCH_LINES]:
        on_branch = [event for event in events if event.ref_name == branch]
        n = plural(sum(event.commit_count for event in on_branch), "commit")
        url = _compare_url(on_branch)
        body.append(f"{branch}: {n}" + (f" {url}" if url else ""))
        items.append(f"<li><code>{esc(branch)}</code>: {link(url or '', n)}</li>")
    more = len(branches) - MAX_BRANCH_LINES
    if more > 0:
        body.append(f"… and {plural(more, 'more branch', 'more branches')}")
        items.append(f"<li>… and {plural(more, 'more branch', 'more branches')}</li>")
    html.append("<ul>" + "".join(items) + "</ul>")
    return Rendered(body="\n".join(body), html="".join(html))


def _compare_url(pushes: Sequence[PushEvent]) -> str | None:
    """The range all of a branch's pushes cover, from the first `before` to the last `after`."""
    first, last = pushes[0], pushes[-1]
    if len(pushes) == 1 or first.created or last.deleted:
        return safe_url(last.compare_url)
    base = safe_url(first.repository.html_url)
    return f"{base}/compare/{first.before}...{last.after}" if base else safe_url(last.compare_url)
