"""bot/systemd_notify.py against a datagram socket bound by the test, as systemd binds one."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import systemd_notify
from bot.systemd_notify import SystemdNotifier, socket_address, watchdog_period_s


class Listener:
    """The service manager's end: a bound AF_UNIX datagram socket."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address  # as it goes into NOTIFY_SOCKET

    async def next(self) -> list[str]:
        """The next datagram, waiting for it (bounded)."""
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout=10)
        return data.decode().split("\n")

    def messages(self) -> list[list[str]]:
        """Every datagram received so far, each as its lines."""
        found = []
        while True:
            try:
                found.append(self.sock.recv(4096).decode().split("\n"))
            except BlockingIOError:
                return found


def _bound(address: str, bind_to: str) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(bind_to)
    sock.setblocking(False)
    try:
        yield Listener(sock, address)
    finally:
        sock.close()


@pytest.fixture
def path_listener() -> Iterator[Listener]:
    # Not under tmp_path: a socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="fn-") as directory:
        path = os.path.join(directory, "notify")
        yield from _bound(path, path)


@pytest.fixture
def abstract_listener() -> Iterator[Listener]:
    name = f"forge-notifier-test-{secrets.token_hex(6)}"
    yield from _bound(f"@{name}", f"\0{name}")


def test_socket_addresses_as_systemd_writes_them() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract/name") == "\0abstract/name"
    assert socket_address("vsock:2:1234") is None


def test_ready_reaches_a_path_socket(path_listener: Listener) -> None:
    notifier = SystemdNotifier(path_listener.address)
    notifier.ready("listening")
    notifier.close()
    assert path_listener.messages() == [["READY=1", "STATUS=listening"]]


def test_abstract_namespace_socket_is_reached(abstract_listener: Listener) -> None:
    notifier = SystemdNotifier(abstract_listener.address)
    assert notifier.notify("STATUS=hello")
    notifier.close()
    assert abstract_listener.messages() == [["STATUS=hello"]]


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notifier = SystemdNotifier(None, watchdog_s=1.0)
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False
    assert notifier.watchdog_s is None


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone"))
    assert notifier.notify("READY=1") is False
    assert notifier.notify("WATCHDOG=1") is False
    notifier.close()


def test_watchdog_period_is_for_this_process_only() -> None:
    me = str(os.getpid())
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 30.0
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_period_s({}) is None


async def test_start_timeout_is_extended_until_ready_then_watchdog_pings(
    abstract_listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(systemd_notify, "EXTEND_EVERY_S", 0.01)
    notifier = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": abstract_listener.address, "WATCHDOG_USEC": "30000"}
    )
    keep_alive = asyncio.create_task(notifier.keep_alive())
    first = await abstract_listener.next()
    notifier.ready("up")
    after = [await abstract_listener.next() for _ in range(4)]
    keep_alive.cancel()
    notifier.close()
    assert first[0] == "EXTEND_TIMEOUT_USEC=30000000"
    kinds = [lines[0] for lines in after]
    # Any extension still in flight precedes READY=1; after it, only watchdog pings.
    ready_at = kinds.index("READY=1")
    assert set(kinds[:ready_at]) <= {"EXTEND_TIMEOUT_USEC=30000000"}
    assert kinds[ready_at + 1 :] and set(kinds[ready_at + 1 :]) == {"WATCHDOG=1"}


async def test_without_watchdog_keep_alive_ends_at_ready(abstract_listener: Listener) -> None:
    notifier = SystemdNotifier(abstract_listener.address)
    keep_alive = asyncio.create_task(notifier.keep_alive())
    await asyncio.sleep(0)
    notifier.ready("up")
    await asyncio.wait_for(keep_alive, timeout=5)
    notifier.close()
    sent = [lines[0] for lines in abstract_listener.messages()]
    assert sent[0].startswith("EXTEND_TIMEOUT_USEC=")
    assert sent[-1] == "READY=1"
