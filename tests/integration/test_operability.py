"""Operating the real daemon against a real Synapse: systemd's notify protocol, /metrics,
and `!health` telling a wrong secret apart."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.room_driver import RoomDriver, notice_from
from bot.sample import sample_push, sign_delivery
from tests.daemon_process import free_port
from tests.integration.conftest import (
    WEBHOOK_SECRET,
    Daemon,
    Homeserver,
    command,
    push,
    room_with_bot,
)

WATCHDOG_USEC = 600_000  # pings every 0.2 s: several arrive within the test


class NotifySocket:
    """What systemd binds for a Type=notify service: here in the abstract namespace."""

    def __init__(self) -> None:
        name = f"forge-notifier-it-{secrets.token_hex(6)}"
        self.address = f"@{name}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(f"\0{name}")
        self.received: list[str] = []  # every KEY=VALUE line, in arrival order

    def collect_until(self, wanted: str, timeout: float = 30.0) -> None:
        """Read datagrams until a line equal to `wanted` arrived after all earlier ones."""
        deadline = time.monotonic() + timeout
        while wanted not in self.received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{wanted} not received; got {self.received}")
            self._sock.settimeout(remaining)
            self.received += self._sock.recv(4096).decode().split("\n")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()


def test_ready_then_watchdog_then_stopping_on_the_notify_socket(
    homeserver: Homeserver, tmp_path: Path, notify_socket: NotifySocket
) -> None:
    bot = homeserver.bot
    daemon = Daemon(
        homeserver.url,
        bot.user_id,
        bot.password,
        WEBHOOK_SECRET,
        tmp_path,
        NOTIFY_SOCKET=notify_socket.address,
        WATCHDOG_USEC=str(WATCHDOG_USEC),
    )
    daemon.start()
    try:
        notify_socket.collect_until("READY=1")
        # Ready means the listener answers and the first sync is done.
        assert daemon.health()["matrix"]["connected"] is True
        notify_socket.collect_until("WATCHDOG=1")
    finally:
        code = daemon.stop()
    notify_socket.collect_until("STOPPING=1")
    assert code == 0

    lines = notify_socket.received
    ready, first_ping, stopping = (lines.index(k) for k in ("READY=1", "WATCHDOG=1", "STOPPING=1"))
    assert ready < first_ping < stopping
    assert lines.count("READY=1") == 1
    # Before READY=1 the start timeout is only extended; the watchdog starts after it.
    assert all(line.startswith(("EXTEND_TIMEOUT_USEC=", "STATUS=")) for line in lines[:ready])


def test_no_ready_while_the_homeserver_is_unreachable_yet_webhooks_are_accepted(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """Startup waits for the homeserver without being killed: the start timeout is
    extended, and nothing is lost meanwhile because the receiver already stores."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    daemon = Daemon(
        unreachable,
        "@notifier:localhost",
        "password",
        WEBHOOK_SECRET,
        tmp_path,
        NOTIFY_SOCKET=notify_socket.address,
    )
    log = daemon.log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=daemon.env, cwd=tmp_path, stdout=log, stderr=log
    )
    try:
        notify_socket.collect_until(
            "STATUS=accepting webhooks at "
            f"http://127.0.0.1:{daemon.port}/webhook/gitea; "
            f"waiting for {unreachable}"
        )
        delivery = sign_delivery(sample_push(message="while-down"), WEBHOOK_SECRET)
        request = urllib.request.Request(
            daemon.webhook_url, data=delivery.body, headers=delivery.headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert (response.status, json.load(response)["status"]) == (202, "accepted")
        assert daemon.health()["matrix"]["connected"] is False
        assert "READY=1" not in notify_socket.received
        assert any(line.startswith("EXTEND_TIMEOUT_USEC=") for line in notify_socket.received)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    notify_socket.collect_until("STOPPING=1")
    assert code == 0, daemon.log()
    assert "READY=1" not in notify_socket.received


def _metrics(daemon: Daemon) -> dict[str, float]:
    with urllib.request.urlopen(f"{daemon.base_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        f"{sample.name}{sample.labels.get('result', '')}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_wrong_secret_shows_in_health_and_metrics_beside_delivered_pushes(
    homeserver: Homeserver, daemon: Daemon, alice: RoomDriver
) -> None:
    bot = homeserver.bot.user_id
    room = await room_with_bot(alice, bot)
    repo = f"ops/{uuid.uuid4().hex[:8]}"
    await command(alice, room, bot, f"!subscribe {repo}", "Subscribed")
    marker = f"ops-{uuid.uuid4().hex[:8]}"
    status, _, _ = await push(daemon, repo, marker)
    assert status == 202
    await alice.wait_for(room, notice_from(bot, marker))
    status, refusal, _ = await push(daemon, repo, "forged", secret="not-the-secret")
    assert (status, refusal["status"]) == (401, "error")

    health = await command(alice, room, bot, "!health", "Signature failures")
    assert "Signature failures (24 h): 1, latest" in health
    assert "a wrong secret is the usual cause" in health
    assert f"• {repo}: last delivery" in health and "last delivery never" not in health
    assert daemon.health()["signature_failures"]["last_24h"] == 1

    metrics = _metrics(daemon)
    assert metrics["forge_notifier_deliveries_totalaccepted"] == 1
    assert metrics["forge_notifier_deliveries_totalbad_signature"] == 1
    assert metrics["forge_notifier_messages_totalsent"] >= 1
    assert metrics["forge_notifier_accept_to_sent_seconds_count"] >= 1
    assert metrics["forge_notifier_homeserver_up"] == 1
