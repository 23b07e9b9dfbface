"""Push notices: a header line, the compare link, and at most five commits."""

from __future__ import annotations

from core.events import Commit, PushEvent
from formatters.common import actor, headline, plural, repo_prefix
from formatters.rendered import Rendered
from formatters.safe import clip, cut, esc, link, safe_url

MAX_LISTED_COMMITS = 5


def render_push(event: PushEvent) -> Rendered:
    """Render a push; branch/tag creation without commits and deletions get their own line."""
    if event.is_test_delivery:
        return headline(
            event,
            f"webhook test from {actor(event)}: deliveries from the forge reach this room",
            f"webhook test from {esc(actor(event))}: deliveries from the forge reach this room",
        )
    if event.deleted:
        return _ref_line(event, "deleted")
    if event.is_tag or (event.created and not event.commits):
        return _ref_line(event, "pushed" if event.is_tag else "created")
    if not event.commits and event.commit_count == 0:
        return _moved(event)
    return _commits_message(event)


def _moved(event: PushEvent) -> Rendered:
    """No new commits on an existing branch: a force push to an older commit, or a reset."""
    sha, who, name = event.after[:7], actor(event), clip(event.ref_name)
    return headline(
        event,
        f"{who} force-pushed {name} to {sha}",
        f"{esc(who)} force-pushed <code>{esc(name)}</code> to <code>{esc(sha)}</code>",
        event.compare_url,
    )


def _ref_line(event: PushEvent, verb: str) -> Rendered:
    kind, name = "tag" if event.is_tag else "branch", clip(event.ref_name)
    return headline(
        event,
        f"{actor(event)} {verb} {kind} {name}",
        f"{esc(actor(event))} {verb} {kind} <code>{esc(name)}</code>",
    )


def _commits_message(event: PushEvent) -> Rendered:
    count = event.commit_count
    listed = event.commits[:MAX_LISTED_COMMITS]
    prefix, prefix_html = repo_prefix(event)
    who, name = actor(event), clip(event.ref_name)
    target = name + (" (new branch)" if event.created else "")
    commits = plural(count, "commit")
    lines = [f"{prefix} {who} pushed {commits} to {target}"]
    html = [
        f"<p>{prefix_html} {esc(who)} pushed {link(event.compare_url, commits)}"
        f" to <code>{esc(name)}</code>{' (new branch)' if event.created else ''}</p>"
    ]
    compare = safe_url(event.compare_url)
    if compare:
        lines.append(compare)
    lines += [_commit_line(commit) for commit in listed]
    if listed:
        html.append("<ul>" + "".join(_commit_item(commit) for commit in listed) + "</ul>")
    more = count - len(listed)
    if more > 0 and listed:
        lines.append(f"… and {plural(more, 'more commit')}" + (f": {compare}" if compare else ""))
        html.append(f"<p>… and {link(event.compare_url, plural(more, 'more commit'))}</p>")
    return Rendered(body="\n".join(lines), html="".join(html))


def _author(commit: Commit) -> str:
    return clip(commit.author.name or commit.author.username or "unknown")


def _commit_line(commit: Commit) -> str:
    return f"{commit.short_id} {cut(commit.title)} ({_author(commit)})"


def _commit_item(commit: Commit) -> str:
    sha = link(commit.url, f"<code>{esc(commit.short_id)}</code>")
    return f"<li>{sha} {esc(cut(commit.title))} ({esc(_author(commit))})</li>"
