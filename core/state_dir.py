"""The state directory: private to the daemon's user, and used by one daemon at a time.

Two daemons on one directory would both dispatch every delivery (everything posted twice)
and race on the Matrix session. An exclusive `flock` on STATE_DIR/lock, held for the
process's life, makes the second one exit at once, naming the first. The kernel drops the
lock when the holder dies however it dies, so a stale lock file never blocks a restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "lock"


class StateDirBusy(Exception):
    """Another process holds the state directory; str() names it and what to do."""


def make_private(state_dir: Path) -> None:
    """Create the directory 0700 (whatever the umask), or take group and other access away:
    it holds the bot's access token, its encryption keys and every stored payload."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if state_dir.stat().st_mode & 0o077:
        try:
            state_dir.chmod(0o700)
        except PermissionError:
            log.warning("state directory %s is readable by others; make it 0700", state_dir)


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[Path]:
    """Hold the state directory for the `with` block; StateDirBusy if another process does.

    The lock file names the holder (pid and start time) for the refusal message.
    """
    make_private(state_dir)
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirBusy(_busy_message(state_dir, _holder(fd))) from None
        _write_holder(fd)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (unlinking lock files is racy)


def _write_holder(fd: int) -> None:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, started {started}\n".encode(), 0)


def _holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "pid unknown"


def _busy_message(state_dir: Path, holder: str) -> str:
    return (
        f"state directory {state_dir} is in use by another forge-notifier ({holder}):"
        " stop that one first, or give this one a NOTIFIER_STATE_DIR of its own"
    )
