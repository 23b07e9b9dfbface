"""Benchmark traffic: realistic ~8 KB signed Gitea pushes, each with a unique body and id.

`bot/sample.py` gives the shape of a current Gitea push; a real delivery also carries the
full repository object, the pusher's profile and each commit's changed files, which is
what makes it ~8 KB. Each body is unique (a marker in the head commit's message), so the
receiver's (event, body) deduplication never folds two benchmark pushes into one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.sample import SignedDelivery, sample_push, sign_delivery

TARGET_BYTES = 8 * 1024
WEBHOOK_PATH = "/webhook/gitea"


@dataclass(frozen=True)
class BenchPush:
    """One push as sent: its marker (found again in the room) and its commit count."""

    repo: str
    marker: str
    commits: int
    delivery: SignedDelivery


def _user(login: str, uid: int) -> dict[str, Any]:
    """A Gitea user object as webhooks carry it (trimmed of nothing but avatars' noise)."""
    return {
        "id": uid,
        "login": login,
        "login_name": "",
        "source_id": 0,
        "full_name": login.title(),
        "email": f"{login}@example.org",
        "avatar_url": f"https://git.example.org/avatars/{hashlib.md5(login.encode()).hexdigest()}",
        "html_url": f"https://git.example.org/{login}",
        "language": "en-US",
        "is_admin": False,
        "last_login": "2026-11-22T11:58:00Z",
        "created": "2024-03-01T09:00:00Z",
        "restricted": False,
        "active": True,
        "prohibit_login": False,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 3,
        "following_count": 1,
        "starred_repos_count": 4,
        "username": login,
    }


def _repository(repo: str, uid: int) -> dict[str, Any]:
    owner, name = repo.split("/", 1)
    url = f"https://git.example.org/{repo}"
    return {
        "id": uid,
        "owner": _user(owner, 100 + uid),
        "name": name,
        "full_name": repo,
        "description": "Widgets, spun at the right speed, for every deployment we run.",
        "empty": False,
        "private": False,
        "fork": False,
        "template": False,
        "parent": None,
        "mirror": False,
        "size": 4711,
        "language": "Go",
        "languages_url": f"https://git.example.org/api/v1/repos/{repo}/languages",
        "html_url": url,
        "url": f"https://git.example.org/api/v1/repos/{repo}",
        "link": "",
        "ssh_url": f"git@git.example.org:{repo}.git",
        "clone_url": f"{url}.git",
        "original_url": "",
        "website": "",
        "stars_count": 12,
        "forks_count": 2,
        "watchers_count": 5,
        "open_issues_count": 7,
        "open_pr_counter": 1,
        "release_counter": 9,
        "default_branch": "main",
        "archived": False,
        "created_at": "2024-03-01T09:00:00Z",
        "updated_at": "2026-11-22T12:00:00Z",
        "archived_at": "1970-01-01T00:00:00Z",
        "permissions": {"admin": True, "push": True, "pull": True},
        "has_issues": True,
        "internal_tracker": {
            "enable_time_tracker": True,
            "allow_only_contributors_to_track_time": True,
            "enable_issue_dependencies": True,
        },
        "has_wiki": True,
        "has_pull_requests": True,
        "has_projects": True,
        "has_releases": True,
        "has_packages": True,
        "has_actions": True,
        "ignore_whitespace_conflicts": False,
        "allow_merge_commits": True,
        "allow_rebase": True,
        "allow_rebase_explicit": True,
        "allow_squash_merge": True,
        "allow_fast_forward_only_merge": False,
        "allow_rebase_update": True,
        "default_delete_branch_after_merge": False,
        "default_merge_style": "merge",
        "default_allow_maintainer_edit": False,
        "avatar_url": "",
        "internal": False,
        "mirror_interval": "",
        "object_format_name": "sha1",
        "mirror_updated": "0001-01-01T00:00:00Z",
        "repo_transfer": None,
        "topics": ["widgets", "spinning"],
        "licenses": ["Apache-2.0"],
    }


def bench_push(repo: str, marker: str, commits: int = 1, uid: int = 7) -> dict[str, Any]:
    """A push of `commits` commits whose head commit message is `marker`, ~8 KB as JSON."""
    payload = sample_push(repo, message=marker, commits=commits)
    payload["repository"] = _repository(repo, uid)
    payload["pusher"] = payload["sender"] = _user("alice", 1)
    for i, commit in enumerate(payload["commits"]):
        commit["added"] = [f"widgets/spin/new_{i}_{n}.go" for n in range(3)]
        commit["removed"] = []
        commit["modified"] = [f"widgets/spin/speed_{n}.go" for n in range(4)] + ["go.sum"]
        commit["verification"] = None
    payload["head_commit"] = payload["commits"][0] if payload["commits"] else None
    _pad_head_message(payload)
    return payload


_EXPLANATION = (
    "The spinner now reads its speed from the deployment's settings instead of a constant, "
    "so operators can slow it down during maintenance windows without a rebuild.\n"
)


def _pad_head_message(payload: dict[str, Any]) -> None:
    """Give the head commit a message body (as real commits have) up to ~TARGET_BYTES.

    Both `commits[0]` and `head_commit` carry it, as Gitea sends them.
    """
    if not payload["commits"]:
        return
    missing = TARGET_BYTES - len(json.dumps(payload))
    if missing <= 0:
        return
    lines = (_EXPLANATION * (missing // (2 * len(_EXPLANATION)) + 1))[: missing // 2]
    head = payload["commits"][0]
    head["message"] = head["message"] + "\n" + lines


def signed_push(repo: str, marker: str, secret: str, commits: int = 1) -> BenchPush:
    return BenchPush(
        repo, marker, commits, sign_delivery(bench_push(repo, marker, commits), secret)
    )


def raw_request(delivery: SignedDelivery, host: str = "127.0.0.1") -> bytes:
    """The delivery as the exact HTTP/1.1 bytes wrk replays (keep-alive, fixed length)."""
    head = [f"POST {WEBHOOK_PATH} HTTP/1.1", f"Host: {host}"]
    head += [f"{name}: {value}" for name, value in delivery.headers.items()]
    head.append(f"Content-Length: {len(delivery.body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + delivery.body


def write_replay_file(path: Path, requests: Iterator[bytes]) -> int:
    """Length-prefixed records (`<bytes>\\n<request>`) for replay.lua; returns how many."""
    count = 0
    with path.open("wb") as out:
        for request in requests:
            out.write(b"%d\n" % len(request))
            out.write(request)
            count += 1
    return count
