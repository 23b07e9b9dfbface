"""A second Matrix user who drives a room: creates it, invites the bot, types commands, and
watches what the bot posts. Used by `forge-notifier demo` and by the end-to-end tests.

It follows /sync from its login on and keeps every timeline event it has seen, so a
message that arrives before someone starts waiting for it is not missed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    AsyncClientConfig,
    LoginResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from bot.encryption import maintain_keys

Event = dict[str, Any]
Predicate = Callable[[Event], bool]
ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
SYNC_FILTER = {"room": {"timeline": {"limit": 500}}, "presence": {"not_types": ["*"]}}


class DriverError(RuntimeError):
    pass


class RoomDriver:
    def __init__(
        self, homeserver: str, user_id: str, password: str, crypto_store: Path | None = None
    ) -> None:
        """With `crypto_store` the driver is an encrypting client (like Element), else not."""
        self.user_id = user_id
        self._password = password
        if crypto_store is not None:
            crypto_store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(
            homeserver,
            user_id,
            store_path=str(crypto_store) if crypto_store else "",
            config=AsyncClientConfig(
                store_sync_tokens=False, encryption_enabled=crypto_store is not None
            ),
        )
        self.timeline: dict[str, list[Event]] = {}
        self.seen_at: dict[str, float] = {}  # event id → when this client's sync delivered it

    async def login(self) -> None:
        response = await self.client.login(self._password, device_name="driver")
        if not isinstance(response, LoginResponse):
            raise DriverError(f"login of {self.user_id} failed: {response}")
        await self.sync(timeout_ms=0)

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int = 1000) -> None:
        """One sync, recording every new timeline event with the time it was seen."""
        response = await self.client.sync(timeout=timeout_ms, sync_filter=SYNC_FILTER)
        if not isinstance(response, SyncResponse):
            return
        now = time.monotonic()
        for room_id, room in response.rooms.join.items():
            for event in room.timeline.events:
                source = dict(event.source)
                if getattr(event, "decrypted", False):
                    source["decrypted"] = True  # nio replaced the ciphertext by its content
                self.timeline.setdefault(room_id, []).append(source)
                self.seen_at[source.get("event_id", "")] = now
        await maintain_keys(self.client)

    async def create_room(
        self,
        invite: list[str],
        room_version: str | None = None,
        public: bool = False,
        encrypted: bool = False,
    ) -> str:
        """A private (or public) room; without `room_version` the server's default (12)."""
        preset = RoomPreset.public_chat if public else RoomPreset.private_chat
        state = [ENCRYPTION_STATE] if encrypted else []
        response = await self.client.room_create(
            name="forge-notifier test",
            invite=invite,
            room_version=room_version,
            preset=preset,
            initial_state=state,
        )
        if not isinstance(response, RoomCreateResponse):
            raise DriverError(f"room creation failed: {response}")
        return response.room_id

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)

    async def say(self, room_id: str, text: str) -> None:
        content = {"msgtype": "m.text", "body": text}
        response = await self.client.room_send(
            room_id, "m.room.message", content, ignore_unverified_devices=True
        )
        if not isinstance(response, RoomSendResponse):
            raise DriverError(f"sending to {room_id} failed: {response}")

    def events(self, room_id: str, predicate: Predicate, since: int = 0) -> list[Event]:
        """Events seen in the room (from position `since` of `mark()`) matching `predicate`."""
        return [event for event in self.timeline.get(room_id, [])[since:] if predicate(event)]

    def mark(self, room_id: str) -> int:
        """A position in the room's timeline: pass it as `since` to look only at what follows."""
        return len(self.timeline.get(room_id, []))

    async def wait_for(
        self, room_id: str, predicate: Predicate, timeout: float = 15.0, since: int = 0
    ) -> Event:
        """The first event in the room matching `predicate`, syncing until it arrives."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(room_id, predicate, since)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise DriverError(f"no matching event in {room_id} after {timeout:.0f} s")
            await self.sync()

    async def wait_for_member(self, room_id: str, user_id: str, timeout: float = 15.0) -> None:
        await self.wait_for(
            room_id,
            lambda e: (
                e.get("type") == "m.room.member"
                and e.get("state_key") == user_id
                and e.get("content", {}).get("membership") == "join"
            ),
            timeout,
        )

    async def upgrade(self, room_id: str, new_version: str) -> str:
        """Upgrade the room (the homeserver tombstones it); returns the replacement room."""
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/upgrade"
        response = await self.client.send(
            "POST",
            path,
            json.dumps({"new_version": new_version}),
            headers={"Authorization": f"Bearer {self.client.access_token}"},
        )
        answer = await response.json()
        if response.status != 200:
            raise DriverError(f"upgrade of {room_id} failed: {answer}")
        return str(answer["replacement_room"])

    async def kick(self, room_id: str, user_id: str) -> None:
        await self.client.room_kick(room_id, user_id, reason="test")

    async def set_power_level(self, room_id: str, user_id: str, level: int) -> None:
        state = await self.client.room_get_state_event(room_id, "m.room.power_levels")
        content = dict(getattr(state, "content", {}) or {})
        content["users"] = {**content.get("users", {}), user_id: level}
        await self.client.room_put_state(room_id, "m.room.power_levels", content)


def notice_from(sender: str, contains: str = "") -> Predicate:
    """Matches an m.notice by `sender` whose body contains `contains`."""

    def match(event: Event) -> bool:
        content = event.get("content", {})
        return (
            event.get("sender") == sender
            and content.get("msgtype") == "m.notice"
            and contains in content.get("body", "")
        )

    return match
