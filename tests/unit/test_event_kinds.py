"""Every event kind: the real captured payloads render (or are knowingly not announced), our
own fixtures match golden files, and forge text cannot inject markup or pings.

Regenerate the golden files after an intended wording change with
`UPDATE_GOLDEN=1 pytest tests/unit/test_event_kinds.py`, then read the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from core.events import parse_event
from formatters import render
from tests.conftest import PAYLOADS

GOLDEN = Path(__file__).parent / "golden" / "events"
REPO = {"full_name": "acme/widgets", "html_url": "https://git.example.org/acme/widgets"}
ALICE = {"login": "alice", "username": "alice"}
PR = {
    "number": 7,
    "title": "Spin the widgets faster",
    "html_url": "https://git.example.org/acme/widgets/pulls/7",
    "merged": False,
    "head": {"ref": "faster"},
    "base": {"ref": "main"},
}
ISSUE = {
    "number": 3,
    "title": "Widgets wobble",
    "state": "open",
    "html_url": "https://git.example.org/acme/widgets/issues/3",
}
RUN = {
    "name": "ci",
    "head_branch": "main",
    "head_sha": "a1b2c3d4e5f6",
    "status": "completed",
    "conclusion": "failure",
    "run_number": 42,
    "display_title": "Make it spin",
    "html_url": "https://git.example.org/acme/widgets/actions/runs/42",
}

# case → (event kind header, payload without repository/sender)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "create_branch": ("create", {"ref": "feature", "ref_type": "branch"}),
    "create_tag_forgejo_full_ref": ("create", {"ref": "refs/tags/v1.2.0", "ref_type": "tag"}),
    "delete_branch": ("delete", {"ref": "refs/heads/old", "ref_type": "branch"}),
    "release_published": (
        "release",
        {
            "action": "published",
            "release": {
                "tag_name": "v1.2.0",
                "name": "Spinning",
                "draft": False,
                "prerelease": False,
                "html_url": "https://git.example.org/acme/widgets/releases/tag/v1.2.0",
            },
        },
    ),
    "release_prerelease_draft": (
        "release",
        {
            "action": "updated",
            "release": {
                "tag_name": "v2.0.0-rc1",
                "name": "",
                "draft": True,
                "prerelease": True,
                "html_url": "https://git.example.org/acme/widgets/releases/tag/v2.0.0-rc1",
            },
        },
    ),
    "release_deleted": ("release", {"action": "deleted", "release": {"tag_name": "v0.1"}}),
    "pr_opened": ("pull_request", {"action": "opened", "number": 7, "pull_request": PR}),
    "pr_merged": (
        "pull_request",
        {"action": "closed", "number": 7, "pull_request": PR | {"merged": True}},
    ),
    "pr_closed": ("pull_request", {"action": "closed", "number": 7, "pull_request": PR}),
    "pr_reopened": ("pull_request", {"action": "reopened", "number": 7, "pull_request": PR}),
    "pr_synchronized": (
        "pull_request_sync",
        {"action": "synchronized", "number": 7, "pull_request": PR},
    ),
    "pr_review_requested": (
        "pull_request_review_request",
        {
            "action": "review_requested",
            "number": 7,
            "pull_request": PR,
            "requested_reviewer": {"login": "bob"},
        },
    ),
    "review_approved": (
        "pull_request_review_approved",
        {
            "action": "reviewed",
            "number": 7,
            "pull_request": PR,
            "review": {"type": "pull_request_review_approved", "content": "Lovely.\nShip it."},
        },
    ),
    "review_rejected_old_header": (
        "pull_request_rejected",
        {"action": "reviewed", "number": 7, "pull_request": PR, "review": {"content": "No."}},
    ),
    "review_comment_old_header": (
        "pull_request_comment",
        {
            "action": "reviewed",
            "number": 7,
            "pull_request": PR,
            "review": {"type": "pull_request_comment", "content": "Hmm"},
        },
    ),
    "issue_opened": ("issues", {"action": "opened", "number": 3, "issue": ISSUE}),
    "issue_closed": ("issues", {"action": "closed", "number": 3, "issue": ISSUE}),
    "comment_on_issue": (
        "issue_comment",
        {
            "action": "created",
            "issue": ISSUE,
            "comment": {
                "body": "Seen it too.\nOn Tuesdays.",
                "html_url": "https://git.example.org/acme/widgets/issues/3#issuecomment-9",
            },
        },
    ),
    "comment_on_pr": (
        "pull_request_comment",
        {
            "action": "created",
            "is_pull": True,
            "issue": ISSUE | {"number": 7, "title": "PR"},
            "comment": {"body": "LGTM"},
        },
    ),
    "status_failure": (
        "status",
        {
            "sha": "a1b2c3d4e5f6a7b8",
            "state": "failure",
            "context": "ci/woodpecker",
            "description": "tests failed",
            "target_url": "https://ci.example.org/acme/widgets/42",
            "branches": [{"name": "main"}],
        },
    ),
    "workflow_run_failed": ("workflow_run", {"action": "completed", "workflow_run": RUN}),
    "workflow_job_failed": (
        "workflow_job",
        {"action": "completed", "workflow_job": RUN | {"name": "test (3.11)"}},
    ),
}

# Payloads that are announced by nobody: rendered to None, never an error.
QUIET: dict[str, tuple[str, dict[str, Any]]] = {
    "status_success": ("status", {"sha": "abc", "state": "success"}),
    "status_pending": ("status", {"sha": "abc", "state": "pending"}),
    "workflow_run_green": (
        "workflow_run",
        {"action": "completed", "workflow_run": RUN | {"conclusion": "success"}},
    ),
    "workflow_run_started": ("workflow_run", {"action": "requested", "workflow_run": RUN}),
    "issue_edited": ("issues", {"action": "edited", "issue": ISSUE}),
    "pr_edited": ("pull_request", {"action": "edited", "pull_request": PR}),
    "comment_edited": ("issue_comment", {"action": "edited", "issue": ISSUE, "comment": {}}),
}


def _render(kind: str, payload: dict[str, Any]) -> Any:
    event = parse_event(kind, payload | {"repository": REPO, "sender": ALICE})
    assert event is not None
    return render(event)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    rendered = _render(*CASES[case])
    assert rendered is not None
    for suffix, actual in ((".txt", rendered.body + "\n"), (".html", rendered.html + "\n")):
        path = GOLDEN / f"{case}{suffix}"
        if os.environ.get("UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
        assert actual == path.read_text(encoding="utf-8")
    assert rendered.body.startswith("[acme/widgets] ")


@pytest.mark.parametrize("case", sorted(QUIET))
def test_quiet_actions_render_nothing(case: str) -> None:
    assert _render(*QUIET[case]) is None


def test_ci_failure_is_impossible_to_miss() -> None:
    rendered = _render(*CASES["status_failure"])
    assert rendered.body.startswith("[acme/widgets] ❌ CI failed: ci/woodpecker on main (a1b2c3d)")
    assert "<strong>CI failed</strong>" in rendered.html
    assert "https://ci.example.org/acme/widgets/42" in rendered.body


HOSTILE = '<script>alert(1)</script> <a href="javascript:x">x</a> @room @someone:server'


HOSTILE_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "pr": ("pull_request", {"action": "opened", "pull_request": PR | {"title": HOSTILE}}),
    "issue": ("issues", {"action": "opened", "issue": ISSUE | {"title": HOSTILE}}),
    "comment": (
        "issue_comment",
        {"action": "created", "issue": ISSUE, "comment": {"body": HOSTILE}},
    ),
    "release": (
        "release",
        {"action": "published", "release": {"tag_name": HOSTILE, "name": HOSTILE}},
    ),
    "review": (
        "pull_request_review_approved",
        {"action": "reviewed", "pull_request": PR, "review": {"content": HOSTILE}},
    ),
    "ci": (
        "status",
        {"sha": "abc", "state": "error", "context": HOSTILE, "target_url": "javascript:alert(1)"},
    ),
    "ref": ("create", {"ref": HOSTILE, "ref_type": "branch"}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CASES))
def test_forge_text_is_escaped_everywhere(case: str) -> None:
    kind, payload = HOSTILE_CASES[case]
    event = parse_event(kind, payload | {"repository": REPO, "sender": {"login": "<b>eve</b>"}})
    assert event is not None
    rendered = render(event)
    assert rendered is not None
    assert "<script" not in rendered.html
    assert "<b>" not in rendered.html
    assert 'href="javascript' not in rendered.html
    assert "javascript:alert" not in rendered.body
    assert "&lt;script&gt;" in rendered.html or "&lt;b&gt;" in rendered.html


# --- the real corpus, by the event kind each capture was sent as -----------------------------


def _captured() -> list[tuple[str, str]]:
    """(file, kind) for every Gitea/Gogs/Forgejo capture, the kind read from SOURCES.md."""
    sources = PAYLOADS / "SOURCES.md"
    if not sources.exists():
        return []
    found = []
    for line in sources.read_text().splitlines():
        row = re.match(r"\| ((?:gitea|gogs|forgejo)/[^ |]+\.json) \|[^|]*\|[^|]*\| ([^|]*)\|", line)
        if not row:
            continue
        kind = re.search(r"X-(?:Gitea|Forgejo)-Event-Type: (\w+)", row[2]) or re.search(
            r"X-(?:Gogs|Gitea|Forgejo)-Event: (\w+)", row[2]
        )
        if kind:
            found.append((row[1], kind[1]))
    return found


def test_every_capture_has_a_kind(payloads_dir: Path) -> None:
    named = {name for name, _ in _captured()}
    on_disk = {
        f"{p.parent.name}/{p.name}"
        for forge in ("gitea", "gogs", "forgejo")
        for p in (payloads_dir / forge).glob("*.json")
    }
    assert named == on_disk


@pytest.mark.parametrize(("name", "kind"), _captured())
def test_capture_parses_and_renders(payloads_dir: Path, name: str, kind: str) -> None:
    data = json.loads((payloads_dir / name).read_bytes())
    event = parse_event(kind, data)
    if event is None:
        return  # a kind not announced (fork, label, assign, …): recorded as ignored
    rendered = render(event)
    if rendered is not None:
        assert rendered.body.startswith(f"[{data['repository']['full_name']}] ")
        assert rendered.html.startswith("<p>[")
