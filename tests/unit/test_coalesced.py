"""The coalesced message: exact counts, each branch with its compare range."""

from __future__ import annotations

from bot.sample import sample_push
from core.events import PushEvent
from formatters import render, render_held


def push(branch: str, pusher: str, commits: int, n: int) -> PushEvent:
    return PushEvent.model_validate(
        sample_push("acme/widgets", pusher, branch, f"change {n}", commits=commits)
    )


def test_summary_counts_pushes_commits_branches_and_pushers() -> None:
    events = [push("main", "alice", 2, 1), push("dev", "bob", 3, 2), push("main", "alice", 1, 3)]
    rendered = render_held(events)
    assert rendered is not None
    lines = rendered.body.split("\n")
    assert lines[0] == "[acme/widgets] 3 pushes (6 commits) to main, dev by alice, bob"
    first, last = events[0], events[2]
    assert lines[1] == (
        f"main: 3 commits https://git.example.org/acme/widgets/compare/{first.before}...{last.after}"
    )
    assert lines[2] == f"dev: 3 commits {events[1].compare_url}"
    assert rendered.html.startswith('<p>[<a href="https://git.example.org/acme/widgets">')
    assert "<code>dev</code>" in rendered.html


def test_a_single_held_push_is_rendered_as_itself() -> None:
    event = push("main", "alice", 1, 1)
    assert render_held([event]) == render(event)


def test_nineteen_pushes_add_up() -> None:
    events = [push("main", "alice", 1 + i % 3, i) for i in range(19)]
    rendered = render_held(events)
    assert rendered is not None
    total = sum(event.commit_count for event in events)
    assert rendered.body.startswith(f"[acme/widgets] 19 pushes ({total} commits) to main by alice")


def test_forge_text_in_branch_and_pusher_is_escaped() -> None:
    events = [push("<b>x</b>", "<img src=x>", 1, 1), push("main", "@room", 1, 2)]
    rendered = render_held(events)
    assert rendered is not None
    assert "<b>" not in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;img src=x&gt;" in rendered.html
