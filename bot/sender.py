"""Drains the outbox into Matrix: one owner of retries, backoff and transaction ids.

Each outbox row carries its own transaction id, so a resend after a crash is deduplicated
by the homeserver (same device, same txn id). Rows of one room go out in order: while a
room's oldest row waits for a retry, the room's later rows wait behind it; other rooms
are not held up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from nio import AsyncClient, ErrorResponse, RoomSendResponse
from nio.exceptions import LocalProtocolError, SendRetryError
from prometheus_client import CollectorRegistry

from bot.encryption import SHARE_WITH_ALL, apply_share_policy
from bot.message import notice_content
from core import metrics as m
from core.metrics import Metrics
from core.records import OutboxMessage
from core.store import Store
from core.wakeup import Wakeup
from formatters.budget import FLOOR, content_size, shrink

log = logging.getLogger(__name__)

# Errors that a retry cannot fix: the bot is not (or no longer) allowed in the room.
# M_TOO_LARGE is not one: the message is shortened and sent again (see `_shorten`).
PERMANENT_ERRORS = frozenset({"M_FORBIDDEN", "M_NOT_FOUND", "M_BAD_JSON"})
TOO_LARGE = "M_TOO_LARGE"
NO_E2E = "room is end-to-end encrypted and encryption is off on this notifier"
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
IDLE_POLL_S = 5.0
STORE_RETRY_S = 1.0
# An outbox row whose send raises (a bug, not a homeserver answer) is failed after this many.
MAX_UNEXPECTED_TRIES = 5


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one attempt: sent (event id), to retry, or failed for good."""

    event_id: str | None = None
    error: str | None = None
    retry: bool = False
    retry_after_s: float | None = None  # the homeserver's own wait; None: exponential backoff
    too_large: bool = False  # refused for its size: shorten, then retry

    @property
    def sent(self) -> bool:
        return self.event_id is not None


class Sender:
    def __init__(
        self,
        client: AsyncClient,
        store: Store,
        wakeup: Wakeup,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        share_with: str = SHARE_WITH_ALL,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        """`on_settled` is told when a message was sent or failed for good: the dispatcher
        starts that pair's rate window then, and may release what it held."""
        self._client = client
        self._store = store
        self._wakeup = wakeup
        self._clock = clock
        self._stopping = False
        self._metrics = metrics or Metrics(CollectorRegistry())
        self._share_with = share_with
        self._told_no_e2e: set[str] = set()
        self._on_settled = on_settled
        self._crashes: dict[int, int] = {}  # row id → unexpected exceptions while sending it

    def stop(self) -> None:
        """Finish the message in hand, then return from `run` (the caller bounds the wait)."""
        self._stopping = True
        self._wakeup.set()

    async def run(self, ready: asyncio.Event) -> None:
        """Send due messages until stopped; sleep until the next is due or new work arrives."""
        await ready.wait()
        while not self._stopping:
            try:
                sent = await self.send_due()
                idle = await self._idle_wait()
            except sqlite3.Error:
                log.exception("store error while sending; retrying shortly")
                sent, idle = 0, STORE_RETRY_S
            if sent == 0 and not self._stopping:
                await self._wakeup.wait(idle)

    async def _idle_wait(self) -> float:
        next_at = await self._store.next_due_at()
        if next_at is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, next_at - self._clock()))

    async def send_due(self) -> int:
        """One pass over the rooms' oldest due rows; returns how many were sent."""
        sent = 0
        for message in await self._store.due_messages(self._clock()):
            if self._stopping:
                break
            outcome = await self._attempt_isolated(message)
            await self._record(message, outcome)
            sent += outcome.sent
        return sent

    async def _attempt_isolated(self, message: OutboxMessage) -> SendOutcome:
        """An unexpected exception (a bug, not an answer of the homeserver) is this row's
        alone: it is retried with backoff, failed after a few such tries in a row, and the other
        rows keep flowing (as the dispatcher does for deliveries)."""
        try:
            outcome = await self.attempt(
                message.room_id, message.body, message.html, message.txn_id
            )
        except Exception as exc:
            crashes = self._crashes.get(message.id, 0) + 1
            self._crashes[message.id] = crashes
            log.error(
                "message %d to %s: unexpected %s while sending (try %d of %d)",
                message.id,
                message.room_id,
                type(exc).__name__,
                crashes,
                MAX_UNEXPECTED_TRIES,
                exc_info=exc,
            )
            error = f"unexpected error: {exc!r}"[:500]
            if crashes < MAX_UNEXPECTED_TRIES:
                return SendOutcome(error=error, retry=True, retry_after_s=_backoff(crashes))
            outcome = SendOutcome(error=error)
        self._crashes.pop(message.id, None)
        return outcome

    async def _record(self, message: OutboxMessage, outcome: SendOutcome) -> None:
        if outcome.event_id is not None:
            await self._store.mark_sent(message.id, outcome.event_id, self._clock())
            self._on_settled()
            log.info("message %d sent to %s as %s", message.id, message.room_id, outcome.event_id)
            await self._observe_sent(message)
        elif outcome.too_large:
            self._metrics.message(m.RETRIED)
            await self._shorten(message, outcome.error or TOO_LARGE)
        elif outcome.retry:
            self._metrics.message(m.RETRIED)
            delay = outcome.retry_after_s or _backoff(message.attempts)
            await self._store.mark_retry(message.id, self._clock() + delay, outcome.error or "")
            log.warning(
                "message %d to %s: %s; retry in %.1fs",
                message.id,
                message.room_id,
                outcome.error,
                delay,
            )
        else:
            self._metrics.message(m.FAILED)
            await self._store.mark_failed(message.id, outcome.error or "unknown error")
            self._on_settled()
            log.error(
                "message %d to %s failed for good: %s", message.id, message.room_id, outcome.error
            )

    async def _shorten(self, message: OutboxMessage, error: str) -> None:
        """A size refusal never fails the row: it is cut to half its size (whole lines from
        the end, counts in the head line kept) and retried at once; at FLOOR only the head
        line is left. A head line alone that is still refused is not too large by our
        measure: the homeserver's trouble, retried with backoff like any other."""
        size = content_size(message.body, message.html)
        shorter = shrink(message.body, message.html, max(FLOOR, size // 2))
        new_size = content_size(shorter.body, shorter.html)
        if new_size >= size:
            delay = _backoff(message.attempts)
            await self._store.mark_retry(message.id, self._clock() + delay, error)
            log.error(
                "message %d to %s refused as too large at %d bytes; retry in %.1fs",
                message.id,
                message.room_id,
                size,
                delay,
            )
            return
        await self._store.shorten_message(message.id, shorter.body, shorter.html, error)
        log.warning(
            "message %d to %s refused as too large at %d bytes; retrying at %d bytes",
            message.id,
            message.room_id,
            size,
            new_size,
        )

    async def _observe_sent(self, message: OutboxMessage) -> None:
        """Count it, and time it from the webhook's acceptance: from the stored acceptance
        time, so a message sent after a restart is timed from before the restart."""
        self._metrics.message(m.SENT)
        accepted = await self._store.accepted_at(message.id)
        if accepted is not None:
            self._metrics.latency.observe(max(0.0, self._clock() - accepted))

    async def attempt(self, room_id: str, body: str, html: str, txn_id: str) -> SendOutcome:
        """One send; classifies the homeserver's answer, never raises for network trouble.

        In an encrypted room nio encrypts (sharing the room key per the trust policy); the
        stored txn id still makes a resend idempotent. Without encryption the bot never
        posts plaintext into an encrypted room: the row fails and the room is told why.
        """
        room = self._client.rooms.get(room_id)
        if room is not None and room.encrypted and self._client.olm is None:
            await self._explain_no_e2e(room_id)
            return SendOutcome(error=NO_E2E)
        apply_share_policy(self._client, room_id, self._share_with)
        try:
            response = await self._client.room_send(
                room_id,
                "m.room.message",
                notice_content(body, html),
                tx_id=txn_id,
                ignore_unverified_devices=True,
            )
        except (aiohttp.ClientError, TimeoutError, LocalProtocolError, SendRetryError) as exc:
            return SendOutcome(error=f"network: {type(exc).__name__}", retry=True)
        if isinstance(response, RoomSendResponse):
            return SendOutcome(event_id=response.event_id)
        return _classify_error(response)

    async def _explain_no_e2e(self, room_id: str) -> None:
        """Once per room and run, in plain words (the only plaintext it sends there)."""
        if room_id in self._told_no_e2e:
            return
        self._told_no_e2e.add(room_id)
        text = (
            "I cannot post in this room: it is end-to-end encrypted and encryption is not "
            "available on this notifier. Ask its operator (see !health), or subscribe an "
            "unencrypted room."
        )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, LocalProtocolError):
            await self._client.room_send(room_id, "m.room.message", notice_content(text, text))


def _classify_error(response: ErrorResponse) -> SendOutcome:
    """429 waits as told; other 4xx cannot succeed by retrying; 5xx and the rest back off.

    Two exceptions among 4xx: an unknown token (the message is fine, the session is not: the
    sync loop notices and the daemon restarts with a fresh login) is retried, and a message
    too large (M_TOO_LARGE, or a bare 413 from a proxy in front) is retried shorter.
    """
    code = str(response.status_code or "no error code")
    error = f"{code}: {response.message}" if response.message else code
    http = response.transport_response.status if response.transport_response else None
    if code == "M_LIMIT_EXCEEDED" or http == 429:
        wait = (response.retry_after_ms or 1000) / 1000
        return SendOutcome(error=error, retry=True, retry_after_s=wait)
    if code == "M_UNKNOWN_TOKEN":
        return SendOutcome(error=error, retry=True)
    if code == TOO_LARGE or http == 413:
        return SendOutcome(error=error, retry=True, too_large=True)
    if code in PERMANENT_ERRORS or (http is not None and 400 <= http < 500):
        return SendOutcome(error=error)
    return SendOutcome(error=error, retry=True)


def _backoff(attempts: int) -> float:
    """Exponential backoff with full jitter, capped: spreads retries after an outage."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempts, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
