"""Staying up at the edges, against real processes: a homeserver that hangs never delays the
receiver, and a quick restart never answers a command twice."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.room_driver import RoomDriver, notice_from
from bot.sample import sample_push, sign_delivery
from tests.daemon_process import Daemon
from tests.integration.conftest import WEBHOOK_SECRET, Homeserver, command, room_with_bot

# The contract (DESIGN.md §2): webhooks are accepted within 2 s of the start of the process.
ACCEPT_WITHIN_S = 2.0


class HungHomeserver:
    """A TCP server on 127.0.0.1 that accepts connections and never answers a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections.append(conn)  # held open, never read or answered

    def close(self) -> None:
        self._sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def hung_homeserver() -> Iterator[HungHomeserver]:
    server = HungHomeserver()
    yield server
    server.close()


def _post_push(url: str, marker: str) -> int:
    delivery = sign_delivery(sample_push(message=marker), WEBHOOK_SECRET)
    request = urllib.request.Request(url, data=delivery.body, headers=delivery.headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["status"] == "accepted"
        return int(response.status)


def _first_accepted(url: str, deadline: float) -> float:
    """Post a signed push until it is answered; returns when it was (monotonic)."""
    while True:
        try:
            assert _post_push(url, "first") == 202
            return time.monotonic()
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_hung_homeserver_never_delays_the_receiver(
    hung_homeserver: HungHomeserver, tmp_path: Path
) -> None:
    daemon = Daemon(hung_homeserver.url, "@notifier:localhost", "pw", WEBHOOK_SECRET, tmp_path)
    log = daemon.log_path.open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=daemon.env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        accepted_at = _first_accepted(daemon.webhook_url, started + ACCEPT_WITHIN_S)
        print(f"\nhung homeserver: first webhook 202 {accepted_at - started:.2f} s after start")
        # Not a lucky race: the bot is stuck in its login against the hung server, and the
        # receiver does not care.
        deadline = time.monotonic() + 10
        while not hung_homeserver.connections:
            assert process.poll() is None, daemon.log()
            assert time.monotonic() < deadline, "the bot never tried to log in"
            time.sleep(0.05)
        assert _post_push(daemon.webhook_url, "second") == 202
        assert "unreachable" not in daemon.log()  # the first login attempt is still hanging
        assert daemon.health()["matrix"]["connected"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, daemon.log()
    with sqlite3.connect(daemon.state_dir / "forge-notifier.sqlite3") as db:
        stored = db.execute("SELECT COUNT(*) FROM deliveries").fetchone()
    assert stored == (2,)  # both stored (and routed: no room subscribed) with no Matrix at all


async def test_a_quick_restart_answers_no_command_twice(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    """Synapse caches /sync answers for two minutes: a restart that syncs from scratch is
    handed the previous run's answers, and would answer (and run) their commands again."""
    bot = homeserver.bot.user_id
    room = await room_with_bot(alice, bot)
    await command(alice, room, bot, "!help", "!help — this list")
    daemon.stop()
    daemon.start()  # seconds later, same state directory (and device)
    # A command after the restart: once its reply is in, a replay would be in too (the bot
    # handles a sync's events in order, and the replayed ones come first).
    await command(alice, room, bot, "!subscriptions", "no subscriptions")
    help_replies = alice.events(room, notice_from(bot, "!help — this list"))
    assert len(help_replies) == 1, [e["content"]["body"][:60] for e in help_replies]
    subscriptions_replies = alice.events(room, notice_from(bot, "no subscriptions"))
    assert len(subscriptions_replies) == 1
