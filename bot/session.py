"""The bot's Matrix session (access token + device id), kept in the state directory.

Reusing it means one device for the bot's whole life: no fresh login (and no new device,
which would break encryption and transaction-id idempotency) on every start.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredSession:
    homeserver: str
    user_id: str
    device_id: str
    access_token: str


def load_session(path: Path) -> StoredSession | None:
    """The stored session, or None when there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StoredSession(**data)
    except (OSError, ValueError, TypeError):
        return None


def save_session(path: Path, session: StoredSession) -> None:
    """Write atomically and durably, mode 0600 whatever the umask: the file holds a bearer
    token, and a crash mid-write must leave the old session or the new one, never half of
    one (a lost session means a new device: encryption keys and idempotency start over).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(fd, 0o600)  # a temporary file left by a crash keeps its old mode otherwise
        json.dump(asdict(session), handle)
        handle.flush()
        os.fsync(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """The rename is durable once the directory entry is on disk."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def forget_session(path: Path) -> None:
    path.unlink(missing_ok=True)
