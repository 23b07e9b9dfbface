"""End-to-end encryption for a broadcast bot: on by default, with a plain trust policy.

matrix-nio does the cryptography (vodozemac); this module decides the rest:
- the crypto store lives in the state directory next to the session, so the bot keeps one
  device and its keys across restarts (a new device per start would break every room);
- room keys are shared with the devices of joined members without interactive
  verification — a notifier cannot verify anyone — optionally only with users of the bot's
  own homeserver (`NOTIFIER_E2E_SHARE_WITH=homeserver`);
- key upload/query/claim and to-device messages run after every sync, as nio's own
  `sync_forever` would do;
- when encryption cannot start, the daemon says so and keeps serving unencrypted rooms.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, LocalProtocolError, MatrixRoom, MegolmEvent

from bot.invites import server_of

log = logging.getLogger(__name__)

SHARE_WITH_ALL = "all"
SHARE_WITH_HOMESERVER = "homeserver"


@dataclass(frozen=True)
class E2EStatus:
    enabled: bool
    reason: str  # why it is off, or how it is on: for logs and !health


def e2e_status(wanted: bool) -> E2EStatus:
    if not wanted:
        return E2EStatus(False, "turned off by NOTIFIER_ENCRYPTION=false")
    try:
        from nio.crypto import ENCRYPTION_ENABLED
    except ImportError as exc:  # pragma: no cover - nio always ships nio.crypto
        return E2EStatus(False, f"matrix-nio has no crypto module ({exc})")
    if not ENCRYPTION_ENABLED:
        return E2EStatus(False, "matrix-nio's e2e extra (vodozemac) is not installed")
    return E2EStatus(True, "on")


def client_config(status: E2EStatus) -> AsyncClientConfig:
    # nio's own retry loops are off: the sender owns retries and backoff.
    return AsyncClientConfig(
        max_limit_exceeded=0,
        max_timeouts=0,
        store_sync_tokens=False,
        encryption_enabled=status.enabled,
    )


def crypto_store_dir(state_dir: Path) -> Path:
    """Created 0700: it holds the device's private keys."""
    path = state_dir / "crypto"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


async def maintain_keys(client: AsyncClient) -> None:
    """After each sync: publish our keys, learn others', set up sessions, flush to-device."""
    if client.olm is None:
        return
    if client.should_upload_keys:
        await client.keys_upload()
    if client.should_query_keys:
        await client.keys_query()
    if client.should_claim_keys:
        await client.keys_claim(client.get_users_for_key_claiming())
    await client.send_to_device_messages()


def apply_share_policy(client: AsyncClient, room_id: str, share_with: str) -> None:
    """With `homeserver`, devices of users on other servers never receive room keys."""
    if share_with != SHARE_WITH_HOMESERVER or client.olm is None:
        return
    room = client.rooms.get(room_id)
    if room is None:
        return
    ours = server_of(client.user_id)
    for user_id in room.users:
        if server_of(user_id) == ours:
            continue
        for device in client.device_store.active_user_devices(user_id):
            if not device.blacklisted:
                client.blacklist_device(device)


def undecryptable(client: AsyncClient) -> Callable[[MatrixRoom, MegolmEvent], Awaitable[None]]:
    """nio callback for events it could not decrypt: log why, and ask for the key."""

    async def on_undecryptable(room: MatrixRoom, event: MegolmEvent) -> None:
        log.warning(
            "cannot decrypt event %s from %s in %s (session %s unknown to this device); "
            "requesting the key",
            event.event_id,
            event.sender,
            room.room_id,
            event.session_id,
        )
        if client.olm is not None:
            with contextlib.suppress(LocalProtocolError):  # already requested
                await client.request_room_key(event)

    return on_undecryptable
