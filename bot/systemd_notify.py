"""sd_notify(3) without libsystemd: `KEY=VALUE` lines as one datagram to `$NOTIFY_SOCKET`.

Under `Type=notify` systemd considers the daemon started only on READY=1, and with
`WatchdogSec=` kills it when WATCHDOG=1 stops coming. The pings come from a task on the
daemon's own event loop, so a loop that is stuck (a blocking call, a busy coroutine) stops
pinging and gets restarted — which is the point of the watchdog.

Until READY=1 the same task sends EXTEND_TIMEOUT_USEC instead: while the homeserver is
unreachable at startup the receiver already accepts webhooks and must not be killed for
being slow to become "ready", but a stuck loop stops extending and hits TimeoutStartSec.

Notifications are advice to the service manager: sending never raises and never blocks.
Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Before READY=1: extend the start timeout by this much, this often.
EXTEND_BY_S = 30.0
EXTEND_EVERY_S = 10.0
# Ping this many times per watchdog period: one late ping must not cost a restart.
PINGS_PER_PERIOD = 3


def socket_address(value: str) -> str | None:
    """The address to send to: a path, or `@name` for Linux's abstract namespace."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. `vsock:` addresses, which systemd gives virtual machines, not services


def watchdog_period_s(environ: Mapping[str, str]) -> float | None:
    """The watchdog period systemd expects pings within, if the watchdog is meant for us.

    As sd_watchdog_enabled(3): `WATCHDOG_USEC` gives the period, and `WATCHDOG_PID`, when
    set, must be this process (a child that inherited the variables must not ping).
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = environ.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000


class SystemdNotifier:
    """Speaks to the service manager; built from the environment by the CLI."""

    def __init__(self, notify_socket: str | None, watchdog_s: float | None = None) -> None:
        self._address = socket_address(notify_socket) if notify_socket else None
        if notify_socket and self._address is None:
            log.warning("NOTIFY_SOCKET %r is not supported; not notifying", notify_socket)
        self.watchdog_s = watchdog_s if self._address else None
        self._sock: socket.socket | None = None
        self._ready = asyncio.Event()
        self._warned = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_period_s(environ))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=VALUE` fields as one message; False when it could not be sent."""
        if self._address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self._address)
        except OSError as exc:
            # Once: the watchdog pings would repeat it every few seconds.
            level = logging.DEBUG if self._warned else logging.WARNING
            log.log(level, "cannot notify systemd (%s): %s", fields[0].split("=")[0], exc)
            self._warned = True
            return False
        return True

    def ready(self, status: str) -> None:
        """Startup is complete: systemd starts the watchdog and the units ordered after us."""
        self.notify("READY=1", f"STATUS={status}")
        self._ready.set()

    def status(self, text: str) -> None:
        """A one-line state, shown by `systemctl status`."""
        self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: finishing requests and the message in hand")

    async def keep_alive(self) -> None:
        """Extend the start timeout until ready, then ping the watchdog; runs until cancelled."""
        if not self.enabled:
            return
        while not self._ready.is_set():
            self.notify(f"EXTEND_TIMEOUT_USEC={int(EXTEND_BY_S * 1_000_000)}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EXTEND_EVERY_S):
                    await self._ready.wait()
        if self.watchdog_s is None:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / PINGS_PER_PERIOD)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
