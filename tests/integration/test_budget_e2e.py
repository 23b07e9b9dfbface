"""Messages that always fit, against a real Synapse: 300 held pushes arrive as one message the
homeserver accepts (plain and encrypted room), and a stored message too large for it (as an
older release could queue) is shortened and delivered, not failed.

Each test prints what it measured (the sizes) for the closing notes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.room_driver import Event, RoomDriver, notice_from
from bot.sample import post_delivery, sample_push, sign_delivery
from core.records import NewDelivery, NewMessage
from core.store import Store
from formatters.budget import CONTENT_BUDGET, EVENT_LIMIT, content_size
from tests.daemon_process import Daemon
from tests.integration.conftest import WEBHOOK_SECRET, Homeserver, command, room_with_bot
from tests.integration.test_encryption import carol as carol
from tests.integration.test_encryption import decrypted_notice
from tests.unit.routing import route_delivery

HELD = 300
COUNTS = re.compile(r"^\[[^\]]+\] (\d+) pushes \((\d+) commits\) to .* and (\d+) more branches ")


@pytest.fixture
def daemon_factory(homeserver: Homeserver, tmp_path: Path) -> Iterator[type[Daemon]]:
    started: list[Daemon] = []

    def factory(**env: str) -> Daemon:
        bot = homeserver.bot
        workdir = tmp_path / f"d{len(started)}"
        workdir.mkdir()
        daemon = Daemon(homeserver.url, bot.user_id, bot.password, WEBHOOK_SECRET, workdir, **env)
        started.append(daemon)
        daemon.start()
        return daemon

    yield factory  # type: ignore[misc]
    for daemon in started:
        daemon.stop()


async def _push_to_branches(daemon: Daemon, repo: str, branches: list[str]) -> None:
    """One public push per branch, each with a commit; all must be accepted."""
    async with aiohttp.ClientSession() as session:
        for n, branch in enumerate(branches):
            payload = sample_push(repo, branch=branch, message=f"change {n}")
            payload["repository"]["private"] = False
            delivery = sign_delivery(payload, WEBHOOK_SECRET)
            status, _ = await post_delivery(session, daemon.webhook_url, delivery)
            assert status == 202


def _event_size(event: Event) -> int:
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())


def _check_summary(body: str, branches: int) -> None:
    counts = COUNTS.match(body)
    assert counts, body[:300]
    assert (int(counts[1]), int(counts[2]), int(counts[3])) == (HELD, HELD, branches - 5)


async def test_300_held_pushes_arrive_as_one_message_the_homeserver_accepts(
    homeserver: Homeserver, daemon_factory: Callable[..., Daemon], alice: RoomDriver
) -> None:
    """Before the budget: 300 branch names in the head line made 105 KB, refused and failed."""
    daemon = daemon_factory(NOTIFIER_RATE_LIMIT_SECONDS="10")
    bot, tag = homeserver.bot.user_id, uuid.uuid4().hex[:8]
    repo = f"budget{tag}/widgets"
    room = await room_with_bot(alice, bot)
    await command(alice, room, bot, f"!subscribe {repo}", "Subscribed")
    branches = [f"feature/{'long-branch-name-' * 9}{n}" for n in range(HELD + 1)]
    await _push_to_branches(daemon, repo, branches)
    summary = await alice.wait_for(room, notice_from(bot, f"[{repo}] {HELD} pushes"), timeout=60)
    _check_summary(summary["content"]["body"], HELD)
    assert len(alice.events(room, notice_from(bot, f"[{repo}]"))) == 2
    assert daemon.health()["queue"]["failed"] == 0
    size = content_size(summary["content"]["body"], summary["content"]["formatted_body"])
    assert size <= CONTENT_BUDGET
    print(f"\n{HELD} held pushes to {HELD} branches: one message, content {size} bytes")


async def test_300_held_pushes_fit_an_encrypted_room_at_the_full_budget(
    homeserver: Homeserver,
    daemon_factory: Callable[..., Daemon],
    carol: RoomDriver,
) -> None:
    """Branch names of emoji (12 JSON bytes each) fill the budget; encrypted, it still fits."""
    daemon = daemon_factory(NOTIFIER_RATE_LIMIT_SECONDS="10")
    bot, tag = homeserver.bot.user_id, uuid.uuid4().hex[:8]
    repo = f"budgetenc{tag}/widgets"
    room = await carol.create_room(invite=[bot], encrypted=True)
    await carol.wait_for_member(room, bot)
    await carol.say(room, f"!subscribe {repo}")
    await carol.wait_for(room, decrypted_notice(bot, "Subscribed"), timeout=30)
    branches = [f"{'🚀' * 190}-{n}" for n in range(HELD + 1)]
    await _push_to_branches(daemon, repo, branches)
    summary = await carol.wait_for(
        room, decrypted_notice(bot, f"[{repo}] {HELD} pushes"), timeout=60
    )
    content: dict[str, Any] = summary["content"]
    _check_summary(content["body"], HELD)
    size = content_size(content["body"], content["formatted_body"])
    assert CONTENT_BUDGET - 5_000 < size <= CONTENT_BUDGET  # details were cut to the budget
    assert content["body"].split("\n")[-1].startswith("… and ")
    assert daemon.health()["queue"]["failed"] == 0
    print(f"\nencrypted: content {size} bytes (budget {CONTENT_BUDGET}), accepted")


async def test_a_stored_message_too_large_is_shortened_and_delivered_not_failed(
    homeserver: Homeserver, daemon_factory: Callable[..., Daemon], alice: RoomDriver
) -> None:
    """A 112 KB row as an older release queued it: Synapse answers M_TOO_LARGE, the sender
    halves it until it is accepted, under the same transaction id."""
    daemon = daemon_factory()
    bot, tag = homeserver.bot.user_id, uuid.uuid4().hex[:8]
    room = await room_with_bot(alice, bot)
    assert daemon.stop() == 0
    head = f"[big{tag}/widgets] 300 pushes (900 commits) to main by alice"
    body = "\n".join(
        [head, *(f"main: commit {n} https://git.example.org/x/{n}" for n in range(2300))]
    )
    await _queue_directly(daemon.state_dir / "forge-notifier.sqlite3", room, body)
    daemon.start()
    notice = await alice.wait_for(room, notice_from(bot, head), timeout=60)
    lines = notice["content"]["body"].split("\n")
    assert lines[0] == head
    assert re.fullmatch(r"… and \d+ more lines", lines[-1])
    assert int(lines[-1].split()[2]) + len(lines) - 2 == 2300
    assert len(alice.events(room, notice_from(bot, head))) == 1
    assert daemon.health()["queue"]["failed"] == 0
    assert "refused as too large" in daemon.log()
    sent = content_size(notice["content"]["body"], notice["content"]["formatted_body"])
    print(
        f"\nstored {content_size(body, body)} bytes, refused; delivered at {sent} bytes"
        f" (event as synced: {_event_size(notice)} of {EVENT_LIMIT})"
    )


async def _queue_directly(path: Path, room: str, body: str) -> None:
    store = Store(path)
    await store.open()
    try:
        new = NewDelivery("big-1", "push", "sha", "big/widgets", "{}", 0.0, "pending")
        assert await store.record_delivery(new)
        (row,) = await store.pending_deliveries()
        message = NewMessage(room, "big/widgets", body, body.replace("\n", "<br>"))
        await route_delivery(store, row.id, [message], "routed", None)
    finally:
        await store.close()
