"""formatters: real captured pushes render, golden files for our own payloads, hostile text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import PushEvent, parse_event
from formatters import Rendered, render
from formatters.safe import TITLE_LIMIT
from tests.conftest import PAYLOADS

GOLDEN = Path(__file__).parent / "golden"
FORGES = ("gitea", "gogs", "forgejo")
ZERO = "0" * 40
BEFORE = "3c5d7d3a2c4d1e6f8a9b0c1d2e3f4a5b6c7d8e9f"
AFTER = "9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e"
REPO_URL = "https://git.example.org/acme/widgets"


# --- (a) every captured Gitea/Gogs/Forgejo push ---------------------------------------------


def _captured_pushes() -> list[str]:
    return [
        f"{forge}/{path.name}"
        for forge in FORGES
        for path in sorted((PAYLOADS / forge).glob("*.json"))
        if "push" in path.name.lower()
    ]


def test_the_corpus_has_pushes_of_every_forge(payloads_dir: Path) -> None:
    forges = {name.split("/")[0] for name in _captured_pushes()}
    assert forges == set(FORGES)


@pytest.mark.parametrize("name", _captured_pushes())
def test_captured_push_renders_with_repo_prefix(payloads_dir: Path, name: str) -> None:
    data = json.loads((payloads_dir / name).read_bytes())
    event = parse_event("push", data)
    assert isinstance(event, PushEvent)
    rendered = render(event)
    assert isinstance(rendered, Rendered)
    assert rendered.body.startswith(f"[{data['repository']['full_name']}] ")
    assert rendered.html


# --- (b) golden files ------------------------------------------------------------------------


def _sha(n: int) -> str:
    """A readable fake sha: commit 8 is 8888888…"""
    assert 0 < n < 16
    return f"{n:x}" * 40


def _commit(n: int, message: str, author: str = "Alice") -> dict[str, Any]:
    sha = _sha(n)
    return {
        "id": sha,
        "message": message,
        "url": f"{REPO_URL}/commit/{sha}",
        "author": {"name": author, "email": "alice@example.org", "username": "alice"},
    }


def _push(
    ref: str = "refs/heads/main",
    before: str = BEFORE,
    after: str = AFTER,
    commits: list[dict[str, Any]] | None = None,
    total: int | None = None,
    compare_url: str = f"{REPO_URL}/compare/{BEFORE[:10]}...{AFTER[:10]}",
) -> dict[str, Any]:
    listed = commits if commits is not None else []
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "compare_url": compare_url,
        "commits": listed,
        "total_commits": len(listed) if total is None else total,
        "repository": {"full_name": "acme/widgets", "html_url": REPO_URL},
        "pusher": {"login": "alice", "username": "alice", "full_name": "Alice"},
        "sender": {"login": "alice", "username": "alice"},
    }


def _render(payload: dict[str, Any]) -> Rendered:
    event = parse_event("push", payload)
    assert event is not None
    rendered = render(event)
    assert rendered is not None
    return rendered


GOLDEN_CASES: dict[str, dict[str, Any]] = {
    "push_single": _push(commits=[_commit(1, "Make the widgets spin faster\n\nLonger text.")]),
    "push_eight": _push(
        commits=[_commit(n, f"Widget change number {n}\n") for n in range(8, 3, -1)], total=8
    ),
    "push_new_branch": _push(ref="refs/heads/feature/x", before=ZERO, after=AFTER),
    "push_branch_deleted": _push(ref="refs/heads/old", before=BEFORE, after=ZERO, compare_url=""),
    "push_tag": _push(ref="refs/tags/v1.2.0", before=ZERO, after=AFTER, compare_url=""),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_body(case: str) -> None:
    expected = (GOLDEN / f"{case}.txt").read_text(encoding="utf-8")
    assert _render(GOLDEN_CASES[case]).body + "\n" == expected


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_html(case: str) -> None:
    expected = (GOLDEN / f"{case}.html").read_text(encoding="utf-8")
    assert _render(GOLDEN_CASES[case]).html + "\n" == expected


def test_single_commit_header_is_exact() -> None:
    body = _render(GOLDEN_CASES["push_single"]).body
    assert body.startswith("[acme/widgets] alice pushed 1 commit to main\n")


def test_eight_commits_lists_five_then_the_rest() -> None:
    lines = _render(GOLDEN_CASES["push_eight"]).body.splitlines()
    assert lines[0] == "[acme/widgets] alice pushed 8 commits to main"
    commit_lines = [line for line in lines if re.match(r"^[0-9a-f]{7} ", line)]
    assert len(commit_lines) == 5
    assert "and 3 more commits" in lines[-1]


def test_total_commits_absent_counts_the_list() -> None:
    payload = _push(commits=[_commit(1, "a"), _commit(2, "b")])
    del payload["total_commits"]
    assert _render(payload).body.startswith("[acme/widgets] alice pushed 2 commits to main")


# --- (c) hostile text ------------------------------------------------------------------------

HOSTILE = '@room @someone:server <script>alert(1)</script> <a href="javascript:x">'


def test_hostile_commit_message_is_escaped() -> None:
    html = _render(_push(commits=[_commit(1, HOSTILE, author="<b>eve</b>")])).html
    assert "<script" not in html
    assert '<a href="javascript' not in html
    assert "<b>eve" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;a href=&quot;javascript:x&quot;&gt;" in html
    assert "@room @someone:server" in html  # kept as text; m.mentions {} stops the pings
    assert "matrix.to" not in html


def test_javascript_urls_never_become_links() -> None:
    commit = _commit(1, "fix")
    commit["url"] = "javascript:alert(1)"
    payload = _push(commits=[commit], compare_url="javascript:alert(2)")
    payload["repository"]["html_url"] = "javascript:alert(3)"
    rendered = _render(payload)
    assert "javascript:" not in rendered.html
    assert "javascript:" not in rendered.body
    assert "href" not in rendered.html


def test_long_first_line_is_cut() -> None:
    body = _render(_push(commits=[_commit(1, "x" * 200)])).body
    title = body.splitlines()[-1].removeprefix("1111111 ").removesuffix(" (Alice)")
    assert len(title) <= TITLE_LIMIT
    assert title.endswith("…")


def test_only_the_first_line_of_a_message_is_shown() -> None:
    rendered = _render(_push(commits=[_commit(1, "first line\nsecond line\n\nthird")]))
    assert rendered.body.splitlines()[-1] == "1111111 first line (Alice)"
    assert "second line" not in rendered.body
    assert "second line" not in rendered.html


@given(message=st.text(max_size=300))
def test_message_text_never_adds_markup(message: str) -> None:
    """However hostile the message, the HTML has exactly the tags of a harmless one."""
    plain = _render(_push(commits=[_commit(1, "harmless")])).html
    hostile = _render(_push(commits=[_commit(1, message)])).html
    assert hostile.count("<") == plain.count("<")
    assert hostile.count(">") == plain.count(">")


def test_test_delivery_is_a_push_not_a_deletion() -> None:
    """Gitea's "Test Delivery" sends before == after and one fake commit."""
    body = _render(_push(before=AFTER, after=AFTER, commits=[_commit(1, "test")])).body
    assert body == (
        "[acme/widgets] webhook test from alice: deliveries from the forge reach this room"
    )
