"""A scripted stand-in for nio's client, for unit tests of the sender and its metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from nio import RoomSendError, RoomSendResponse


@dataclass
class Call:
    room_id: str
    message_type: str
    content: dict[str, Any]
    tx_id: str | None


Answer: TypeAlias = RoomSendResponse | RoomSendError | Exception


@dataclass
class FakeClient:
    """Answers `room_send` from a per-room script; a room with no script left succeeds."""

    script: dict[str, list[Answer]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    rooms: dict[str, Any] = field(default_factory=dict)  # nio's joined rooms (for encryption)
    olm: Any = None  # encryption is off in this fake

    async def room_send(
        self,
        room_id: str,
        message_type: str,
        content: dict[str, Any],
        tx_id: str | None = None,
        ignore_unverified_devices: bool = False,
    ) -> RoomSendResponse | RoomSendError:
        self.calls.append(Call(room_id, message_type, content, tx_id))
        answers = self.script.get(room_id, [])
        answer = answers.pop(0) if answers else RoomSendResponse(f"$ev{len(self.calls)}", room_id)
        if isinstance(answer, Exception):
            raise answer
        return answer
