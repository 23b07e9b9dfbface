"""The coalesced message: exact counts, each branch with its compare range."""

from __future__ import annotations

from typing import Any

from bot.sample import sample_push
from core.events import AnnouncedEvent, PushEvent, parse_event
from formatters import Rendered, render, render_held
from formatters.budget import CONTENT_BUDGET, size_of


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


# --- the byte budget and counts per kind ----------------------------------------------------

REPO = {"full_name": "acme/widgets", "html_url": "https://git.example.org/acme/widgets"}


def event(kind: str, payload: dict[str, Any]) -> AnnouncedEvent:
    parsed = parse_event(kind, payload | {"repository": REPO, "sender": {"login": "bob"}})
    assert parsed is not None
    return parsed


def pr(action: str, n: int, merged: bool = False) -> AnnouncedEvent:
    pull = {
        "number": n,
        "title": f"Spin the widgets faster, part {n} " + "and faster " * 5,
        "html_url": f"https://git.example.org/acme/widgets/pulls/{n}",
        "merged": merged,
        "head": {"ref": f"feature-{n}"},
        "base": {"ref": "main"},
    }
    return event("pull_request", {"action": action, "number": n, "pull_request": pull})


def issue(action: str, n: int) -> AnnouncedEvent:
    url = f"https://git.example.org/acme/widgets/issues/{n}"
    return event(
        "issues", {"action": action, "issue": {"number": n, "title": "Wobble", "html_url": url}}
    )


def comment(n: int) -> AnnouncedEvent:
    url = f"https://git.example.org/acme/widgets/issues/{n}"
    body = {"body": "I agree, and " * 200, "html_url": url + "#c"}
    return event(
        "issue_comment",
        {
            "action": "created",
            "issue": {"number": n, "title": "Wobble", "html_url": url},
            "comment": body,
        },
    )


def ci_failure(n: int) -> AnnouncedEvent:
    return event(
        "status",
        {"sha": f"{n:040x}", "state": "failure", "context": "ci/woodpecker", "target_url": ""},
    )


def within_budget(rendered: Rendered | None) -> Rendered:
    assert rendered is not None
    assert size_of(rendered) <= CONTENT_BUDGET
    return rendered


def test_300_held_pushes_to_300_branches_are_one_message_within_budget() -> None:
    events = [
        push(f"feature/{'long-name-' * 15}{i}", f"user{i % 40}", 1 + i % 5, i) for i in range(300)
    ]
    rendered = within_budget(render_held(events))
    lines = rendered.body.split("\n")
    first = "feature/" + "long-name-" * 15
    assert lines[0] == (
        f"[acme/widgets] 300 pushes (900 commits) to {first}0, {first}1, {first}2, {first}3,"
        f" {first}4 and 295 more branches by user0, user1, user2, user3, user4 and 35 more"
    )
    assert lines[1].startswith(f"{first}0: 1 commit https://")
    assert lines[-1] == "… and 290 more branches"
    assert rendered.html.endswith("<li>… and 290 more branches</li></ul>")


def test_300_held_events_of_every_kind_are_counted_exactly_per_kind() -> None:
    makers = [
        lambda i: push("main" if i // 6 % 2 else "dev", "alice", 2, i),
        lambda i: pr("opened", i),
        lambda i: pr("closed", i, merged=True),
        lambda i: issue("closed", i),
        comment,
        ci_failure,
    ]
    events = [makers[i % len(makers)](i) for i in range(300)]
    rendered = within_budget(render_held(events))
    head, *details = rendered.body.split("\n")
    assert head == (
        "[acme/widgets] 50 pushes (100 commits) to dev, main by alice; 50 PRs opened;"
        " 50 PRs merged; 50 issues closed; 50 comments; 50 CI failures"
    )
    pushes = [e for e in events if isinstance(e, PushEvent)]  # dev, main, dev, …
    compare = "https://git.example.org/acme/widgets/compare"
    assert details[:2] == [
        f"dev: 50 commits {compare}/{pushes[0].before}...{pushes[48].after}",
        f"main: 50 commits {compare}/{pushes[1].before}...{pushes[49].after}",
    ]
    assert details[2].startswith("[acme/widgets] bob opened PR #1: Spin the widgets")
    assert details[-1] == "… and 230 more events"  # 20 shown, of 250


def test_without_pushes_the_head_line_counts_the_kinds() -> None:
    events = [pr("opened", 1), pr("opened", 2), issue("closed", 3)]
    rendered = within_budget(render_held(events))
    lines = rendered.body.split("\n")
    assert lines[0] == "[acme/widgets] 2 PRs opened; 1 issue closed"
    assert lines[1].startswith("[acme/widgets] bob opened PR #1: ")
    assert rendered.html.startswith('<p>[<a href="https://git.example.org/acme/widgets">')


def test_huge_held_events_are_cut_to_the_budget_with_exact_counts() -> None:
    """300 comments of 10 KB and pushes to branches with 100 KB names."""
    events: list[AnnouncedEvent] = [comment(i) for i in range(290)]
    events += [push("b" * 100_000 + str(i), "alice", 3, i) for i in range(10)]
    rendered = within_budget(render_held(events))
    assert rendered.body.startswith("[acme/widgets] 10 pushes (30 commits) to bbbb")
    assert rendered.body.split("\n")[0].endswith(" and 5 more branches by alice; 290 comments")
    assert rendered.body.split("\n")[-1].startswith("… and ")
