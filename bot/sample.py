"""Realistic, signed Gitea push deliveries: for `send-test`, the demo, tests and benchmarks.

The payload follows the shape of a current Gitea push (see DESIGN.md §3): newest commit
first, `total_commits` the real count, `compare_url` covering the range.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from receiver.signature import sign


def _sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def sample_push(
    repo: str = "acme/widgets",
    pusher: str = "alice",
    branch: str = "main",
    message: str = "Make the widgets spin faster",
    commits: int = 1,
    base_url: str = "https://git.example.org",
    private: bool | None = False,
) -> dict[str, Any]:
    """A push of `commits` commits (at most 5 listed, as Gitea does), to a public repository
    unless `private` (None leaves the field out, as some forges do: it counts as private)."""
    owner, name = repo.split("/", 1)
    shas = [_sha(f"{repo}:{branch}:{message}:{i}") for i in range(commits + 1)]
    repo_url = f"{base_url}/{repo}"
    user = {"id": 1, "login": pusher, "username": pusher, "full_name": pusher.title()}
    listed = [
        {
            "id": shas[i + 1],
            "message": f"{message}\n" if i == 0 else f"{message} (part {commits - i})\n",
            "url": f"{repo_url}/commit/{shas[i + 1]}",
            "author": {
                "name": pusher.title(),
                "email": f"{pusher}@example.org",
                "username": pusher,
            },
            "committer": {
                "name": pusher.title(),
                "email": f"{pusher}@example.org",
                "username": pusher,
            },
            "timestamp": "2026-11-22T12:00:00Z",
        }
        for i in range(min(commits, 5))
    ]
    repository = {
        "id": 7,
        "name": name,
        "full_name": repo,
        "html_url": repo_url,
        "owner": {"id": 2, "login": owner, "username": owner},
    }
    if private is not None:
        repository["private"] = private
    return {
        "ref": f"refs/heads/{branch}",
        "before": shas[0],
        "after": shas[1],
        "compare_url": f"{repo_url}/compare/{shas[0][:10]}...{shas[1][:10]}",
        "commits": listed,
        "total_commits": commits,
        "head_commit": listed[0] if listed else None,
        "repository": repository,
        "pusher": user,
        "sender": user,
    }


@dataclass(frozen=True)
class SignedDelivery:
    body: bytes
    headers: dict[str, str]


def sign_delivery(
    payload: dict[str, Any],
    secret: str | None,
    event: str = "push",
    delivery_id: str | None = None,
) -> SignedDelivery:
    """Body and headers exactly as Gitea sends them (JSON content type)."""
    body = json.dumps(payload).encode()
    signature = sign(secret, body) if secret else ""
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Event-Type": event,
        "X-Gitea-Delivery": delivery_id or str(uuid.uuid4()),
        "X-Gitea-Signature": signature,
        "X-Hub-Signature-256": f"sha256={signature}" if signature else "",
    }
    return SignedDelivery(body, headers)


def send_test_delivery(repo: str, secret: str | None) -> tuple[SignedDelivery, str]:
    """A signed push carrying a fresh nonce (in the message, so in every commit id too):
    the receiver drops a repeated body as "same event and body", and each `send-test` run
    must post a message the operator can find by its nonce."""
    nonce = secrets.token_hex(4)
    payload = sample_push(repo, message=f"forge-notifier send-test {nonce}")
    return sign_delivery(payload, secret), nonce


async def post_delivery(
    session: aiohttp.ClientSession, url: str, delivery: SignedDelivery
) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=delivery.body, headers=delivery.headers) as response:
        return response.status, await response.json(content_type=None)
