"""Beyond pushes, against a real Synapse: a release, a merged PR and a failing CI status each
reach a subscribed room; a green status does not."""

from __future__ import annotations

import uuid
from typing import Any

from bot.room_driver import RoomDriver, notice_from
from bot.sample import sign_delivery
from tests.daemon_process import Daemon
from tests.integration.conftest import (
    WEBHOOK_SECRET,
    Homeserver,
    post,
    subscribed_room,
)


def _payload(repo: str, **fields: Any) -> dict[str, Any]:
    return {
        "repository": {"full_name": repo, "html_url": f"https://git.example.org/{repo}"},
        "sender": {"login": "alice"},
        **fields,
    }


async def test_release_merged_pr_and_failing_ci_reach_the_room(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot, tag = homeserver.bot.user_id, uuid.uuid4().hex[:8]
    repo = f"kinds{tag}/widgets"
    room = await subscribed_room(alice, bot, repo)
    deliveries = [
        (
            "release",
            _payload(repo, action="published", release={"tag_name": f"v1-{tag}", "name": "First"}),
        ),
        (
            "pull_request",
            _payload(
                repo,
                action="closed",
                number=7,
                pull_request={"number": 7, "title": f"Merge me {tag}", "merged": True},
            ),
        ),
        ("status", _payload(repo, sha="a1b2c3d4e5", state="success", context=f"green-{tag}")),
        (
            "status",
            _payload(
                repo,
                sha="a1b2c3d4e5",
                state="failure",
                context=f"red-{tag}",
                target_url="https://ci.example.org/1",
            ),
        ),
    ]
    for kind, payload in deliveries:
        status, answer = await post(daemon, sign_delivery(payload, WEBHOOK_SECRET, event=kind))
        assert (status, answer["status"]) == (202, "accepted")

    release = await alice.wait_for(room, notice_from(bot, f"published release v1-{tag}"))
    merged = await alice.wait_for(room, notice_from(bot, f"merged PR #7: Merge me {tag}"))
    failed = await alice.wait_for(room, notice_from(bot, f"❌ CI failed: red-{tag}"))
    assert release["content"]["body"].startswith(f"[{repo}] alice published release")
    assert merged["content"]["m.mentions"] == {}
    assert "<strong>CI failed</strong>" in failed["content"]["formatted_body"]
    assert alice.events(room, notice_from(bot, f"green-{tag}")) == []
