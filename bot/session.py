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
    """Write atomically with mode 0600: the file holds a bearer token."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(session), handle)
    os.replace(tmp, path)


def forget_session(path: Path) -> None:
    path.unlink(missing_ok=True)
