"""End-to-end fixtures: one real Synapse per test session, the daemon as a real process.

The daemon runs as `python -m bot run` with its configuration in the environment, exactly
as an operator runs it; a second Matrix user (RoomDriver) drives the rooms.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.local_synapse import LocalSynapse, RegisteredUser
from bot.room_driver import RoomDriver, notice_from
from bot.sample import SignedDelivery, post_delivery, sample_push, sign_delivery

REPO_ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "integration-secret-" + secrets.token_hex(8)


@dataclass(frozen=True)
class Homeserver:
    synapse: LocalSynapse
    bot: RegisteredUser
    alice: RegisteredUser
    bob: RegisteredUser

    @property
    def url(self) -> str:
        return self.synapse.url


@pytest.fixture(scope="session")
def homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    synapse = LocalSynapse(tmp_path_factory.mktemp("synapse"))
    synapse.start()
    try:
        yield Homeserver(
            synapse,
            synapse.register("notifier", secrets.token_hex(8)),
            synapse.register("alice", secrets.token_hex(8)),
            synapse.register("bob", secrets.token_hex(8)),
        )
    finally:
        synapse.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """`forge-notifier run` in a subprocess, restartable on the same state directory."""

    def __init__(self, homeserver: Homeserver, workdir: Path, **extra_env: str) -> None:
        self.state_dir = workdir / "state"
        self.port = _free_port()
        self.log_path = workdir / "daemon.log"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
        self.env = base | {
            "NOTIFIER_HOMESERVER": homeserver.url,
            "NOTIFIER_USER_ID": homeserver.bot.user_id,
            "NOTIFIER_PASSWORD": homeserver.bot.password,
            "NOTIFIER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "NOTIFIER_LISTEN_PORT": str(self.port),
            "NOTIFIER_STATE_DIR": str(self.state_dir),
            "NOTIFIER_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(REPO_ROOT),
            **extra_env,
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhook/gitea"

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=self.env,
                cwd=self._workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_connected(time.monotonic() + timeout)

    def _wait_connected(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"daemon exited {self._process.returncode}:\n{self.log()}")
            try:
                if self.health()["matrix"]["connected"]:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon not connected in time:\n{self.log()}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/webhook/health", timeout=5) as response:
            import json

            return dict(json.load(response))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def daemon(homeserver: Homeserver, tmp_path: Path) -> Iterator[Daemon]:
    process = Daemon(homeserver, tmp_path)
    process.start()
    yield process
    process.stop()


async def _driver(homeserver: Homeserver, user: RegisteredUser) -> AsyncIterator[RoomDriver]:
    driver = RoomDriver(homeserver.url, user.user_id, user.password)
    await driver.login()
    yield driver
    await driver.close()


@pytest.fixture
async def alice(homeserver: Homeserver) -> AsyncIterator[RoomDriver]:
    async for driver in _driver(homeserver, homeserver.alice):
        yield driver


@pytest.fixture
async def bob(homeserver: Homeserver) -> AsyncIterator[RoomDriver]:
    async for driver in _driver(homeserver, homeserver.bob):
        yield driver


async def room_with_bot(
    driver: RoomDriver, bot_id: str, invite: tuple[str, ...] = (), version: str | None = None
) -> str:
    room = await driver.create_room(invite=[bot_id, *invite], room_version=version)
    await driver.wait_for_member(room, bot_id)
    return room


async def command(driver: RoomDriver, room: str, bot_id: str, text: str, expect: str) -> str:
    """Send a command and return the bot's reply body (the first new notice containing `expect`)."""
    mark = driver.mark(room)
    await driver.say(room, text)
    reply = await driver.wait_for(room, notice_from(bot_id, expect), since=mark)
    return str(reply["content"]["body"])


async def push(
    daemon: Daemon, repo: str, marker: str, secret: str | None = WEBHOOK_SECRET, **kw: Any
) -> tuple[int, dict[str, Any], SignedDelivery]:
    delivery = sign_delivery(sample_push(repo, message=marker, **kw), secret)
    return (*await post(daemon, delivery), delivery)


async def post(daemon: Daemon, delivery: SignedDelivery) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        return await post_delivery(session, daemon.webhook_url, delivery)
