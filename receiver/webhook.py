"""`POST /webhook/gitea`: verify, parse, deduplicate, commit, and only then answer 2xx.

Each failure has its own status and a short reason, logged with the delivery id, so an
operator can tell a wrong secret from a wrong proxy path from junk. Nothing here raises
into aiohttp for bad input: a request is either stored or refused with a 4xx.

Every answer is counted by result (`/metrics`), and refusals and duplicates are counted
in the store's intake log (in memory, written in batches): `!health` reports signature
failures from it, and `forge-notifier events` shows them beside the deliveries. Their log
lines are rate-limited (`RefusalLog`): a flood costs neither a transaction nor a line each.

Hostile clients get bounded answers: a compressed body is refused unread (415), a body
must arrive within `body_timeout_s` (408) and fit the per-request limit (413), and the
body bytes of all requests together stay within a budget (503 with Retry-After).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry

from core import diagnostics
from core.diagnostics import IntakeEntry
from core.events import AnnouncedEvent, PayloadError, PushEvent, parse_event, private_of, repo_of
from core.metrics import Metrics
from core.records import NewDelivery
from core.store import Store
from receiver.admission import (
    IDENTITY_ENCODINGS,
    BodyBudget,
    BodyIncomplete,
    BodyTimeout,
    BodyTooLarge,
    BudgetSpent,
    declared_size,
    read_body,
)
from receiver.body import ACCEPTED_TYPES, BodyError, media_type, signed_payload
from receiver.headers import HeaderError, delivery_id, event_kind
from receiver.limits import oversized_field
from receiver.refusal_log import RefusalLog, printable
from receiver.signature import SignatureCheck, verify

log = logging.getLogger(__name__)

SIGNATURE_REASONS = {
    SignatureCheck.MISSING: "missing signature (is the webhook secret set on the forge?)",
    SignatureCheck.MISMATCH: "signature does not match (is the webhook secret the same?)",
}
# The result a refusal is counted and recorded under, by HTTP status.
REFUSAL_RESULTS = {
    400: diagnostics.INVALID,
    401: diagnostics.BAD_SIGNATURE,
    408: diagnostics.INVALID,
    413: diagnostics.TOO_LARGE,
    415: diagnostics.UNSUPPORTED_TYPE,
    503: diagnostics.BUSY,
}
RETRY_AFTER_S = 5
# Body bytes in flight across all requests, as a multiple of the per-request limit.
BUDGET_BODIES = 4
# Bodies up to this size (every real Gitea payload but huge pushes) have a budget of their
# own, so a flood of large forged bodies cannot starve the forge's deliveries.
SMALL_BODY = 64 * 1024
SMALL_BUDGET = 64 * SMALL_BODY


@dataclass(frozen=True)
class WebhookConfig:
    secret: str | None  # None only when unsigned deliveries were explicitly allowed
    max_body_bytes: int
    ignore_pushers: frozenset[str] = frozenset()  # lower-case Gitea logins (bot loops)
    body_timeout_s: float = 10.0  # the whole body, from the handler's start (Gitea: 5 s)
    budget_wait_s: float = 3.0  # how long a body may wait for the in-flight budget
    bytes_in_flight: int | None = None  # None: BUDGET_BODIES x max_body_bytes
    max_waiting: int = 16  # requests waiting for the budget; more are answered 503 at once

    def ignores(self, event: AnnouncedEvent | None) -> bool:
        return isinstance(event, PushEvent) and event.actor.lower() in self.ignore_pushers

    @property
    def budget_bytes(self) -> int:
        return self.bytes_in_flight or BUDGET_BODIES * self.max_body_bytes


class Refusal(Exception):
    """A 4xx (or 503) answer with a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookReceiver:
    """Turns a webhook request into a committed inbox row, or a precise refusal."""

    def __init__(
        self,
        store: Store,
        config: WebhookConfig,
        on_accepted: Callable[[], None],
        metrics: Metrics | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        """`metrics` comes from the composition root; without one, counts go nowhere."""
        self._store = store
        self._config = config
        self._on_accepted = on_accepted
        self._metrics = metrics or Metrics(CollectorRegistry())
        self.refusals = refusals or RefusalLog(log)
        self._duplicates = RefusalLog(log, level=logging.INFO, what="duplicate deliveries")
        self._store_errors = RefusalLog(
            log, lines_per_window=5, level=logging.ERROR, what="deliveries not stored"
        )
        self._budget = BodyBudget(config.budget_bytes, config.max_waiting)
        self._small_budget = BodyBudget(SMALL_BUDGET, config.max_waiting * 4)

    def close_logs(self) -> None:
        """At shutdown: the summaries of refusals not yet logged one by one."""
        for rate_limited in (self.refusals, self._duplicates, self._store_errors):
            rate_limited.close()

    @property
    def bytes_in_flight(self) -> int:
        """Body bytes reserved by requests being read or handled now."""
        return self._budget.in_use + self._small_budget.in_use

    async def handle(self, request: web.Request) -> web.Response:
        try:
            delivery = delivery_id(request.headers) or f"local-{uuid.uuid4()}"
        except HeaderError as exc:
            return self._refuse(Refusal(400, str(exc)), None, request)
        try:
            async with self._admitted(request):
                record = await self._verified_record(request, delivery)
                return await self._commit(record, request.remote)
        except Refusal as refusal:
            return self._refuse(refusal, delivery, request)

    @contextlib.asynccontextmanager
    async def _admitted(self, request: web.Request) -> AsyncIterator[None]:
        """Refuse what can be refused unread, then hold the body's bytes in the budget."""
        content_type = media_type(request.headers.get("Content-Type", ""))
        if content_type not in ACCEPTED_TYPES:
            raise Refusal(415, "content type must be application/json or form-encoded")
        encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in IDENTITY_ENCODINGS:
            raise Refusal(415, "Content-Encoding is not supported: send the body uncompressed")
        length = request.content_length
        if length is not None and length > self._config.max_body_bytes:
            raise Refusal(413, "body too large")
        size = declared_size(request, self._config.max_body_bytes)
        try:
            budget = self._small_budget if size <= SMALL_BODY else self._budget
            async with budget.hold(size, self._config.budget_wait_s):
                yield
        except BudgetSpent:
            raise Refusal(503, "too many request bodies in flight; retry later") from None

    async def _verified_record(self, request: web.Request, delivery: str) -> NewDelivery:
        signed = await self._signed_body(request)
        self._check_signature(signed, request)
        try:
            kind = event_kind(request.headers)
        except HeaderError as exc:
            raise Refusal(400, str(exc)) from None
        if kind is None:
            raise Refusal(400, "missing X-Gitea-Event header")
        try:
            payload = orjson.loads(signed)  # also refuses bad UTF-8 and lone surrogates
            event = parse_event(kind, payload)
        except PayloadError as exc:
            raise Refusal(400, str(exc)) from None
        except orjson.JSONDecodeError as exc:
            if str(exc).startswith("depth limit exceeded"):
                raise Refusal(400, "body is nested too deeply") from None
            raise Refusal(400, f"body is not valid UTF-8 JSON ({exc})") from None
        except RecursionError:  # a model nested deeper than the interpreter allows
            raise Refusal(400, "body is nested too deeply") from None
        if too_long := oversized_field(event, payload):
            raise Refusal(400, too_long)
        ignored_pusher = self._config.ignores(event)
        return NewDelivery(
            delivery_id=delivery,
            event=kind,
            body_sha256=hashlib.sha256(signed).hexdigest(),
            repo=event.repo if event else repo_of(payload),
            payload=signed.decode("utf-8"),  # valid: orjson checked it
            received_at=time.time(),
            status="pending" if event and not ignored_pusher else "ignored",
            note="pusher in NOTIFIER_IGNORE_PUSHERS" if ignored_pusher else None,
            private=event.private if event else private_of(payload),
        )

    async def _signed_body(self, request: web.Request) -> bytes:
        content_type = media_type(request.headers.get("Content-Type", ""))
        timeout_s = self._config.body_timeout_s
        try:
            raw = await read_body(request, self._config.max_body_bytes, timeout_s)
        except BodyTooLarge:
            raise Refusal(413, "body too large") from None
        except BodyTimeout:
            raise Refusal(408, f"body not received within {timeout_s:g} s") from None
        except BodyIncomplete:
            raise Refusal(400, "body incomplete or its chunked encoding broken") from None
        try:
            return signed_payload(content_type, raw)
        except BodyError as exc:
            raise Refusal(400, str(exc)) from None

    def _check_signature(self, signed: bytes, request: web.Request) -> None:
        if self._config.secret is None:
            return
        check = verify(self._config.secret, signed, request.headers)
        if check is not SignatureCheck.VALID:
            raise Refusal(401, SIGNATURE_REASONS[check])

    async def _commit(self, record: NewDelivery, remote: str | None) -> web.Response:
        try:
            inserted = await self._store.record_delivery(record)
        except sqlite3.Error:
            # Not stored, so not accepted: a 5xx makes Gitea show the delivery as failed.
            self._store_errors.refused(
                503, "delivery %s could not be stored", record.delivery_id, exc_info=True
            )
            self._metrics.delivery(diagnostics.STORE_ERROR)
            return web.json_response(
                {"status": "error", "reason": "storage unavailable"}, status=503
            )
        if not inserted:
            return await self._duplicate(record, remote)
        result = diagnostics.ACCEPTED if record.status == "pending" else diagnostics.IGNORED
        # Accepted at DEBUG: the dispatcher logs each one at INFO when it reaches a room, and
        # a second line per request costs the intake ~10% of its ceiling. Ignored (a bot's
        # own pushes) is rare and otherwise silent: INFO.
        level = logging.DEBUG if result == diagnostics.ACCEPTED else logging.INFO
        log.log(
            level, "delivery %s (%s, %s) %s", record.delivery_id, record.event, record.repo, result
        )
        self._metrics.delivery(result)
        if record.status == "ignored":
            return web.json_response(
                {"status": "ignored", "delivery": record.delivery_id}, status=202
            )
        self._on_accepted()
        return web.json_response({"status": "accepted", "delivery": record.delivery_id}, status=202)

    async def _duplicate(self, record: NewDelivery, remote: str | None) -> web.Response:
        self._duplicates.refused(
            200,
            "delivery %s (%s, %s) is a duplicate",
            record.delivery_id,
            record.event,
            record.repo,
        )
        self._metrics.delivery(diagnostics.DUPLICATE)
        reason = "same delivery id, or same event and body"
        self._store.record_intake(
            IntakeEntry(
                time.time(),
                diagnostics.DUPLICATE,
                200,
                reason,
                record.delivery_id,
                record.event,
                record.repo,
                remote,
            )
        )
        return web.json_response({"status": "duplicate"}, status=200)

    def _refuse(self, refusal: Refusal, delivery: str | None, request: web.Request) -> web.Response:
        """Count, log (rate-limited) and record the refusal; nothing here waits or writes."""
        self.refusals.refused(
            refusal.status,
            "delivery %s from %s refused: %d %s",
            delivery or "?",
            request.remote,
            refusal.status,
            printable(refusal.reason),
        )
        result = REFUSAL_RESULTS.get(refusal.status, diagnostics.INVALID)
        self._metrics.delivery(result)
        entry = IntakeEntry(
            time.time(),
            result,
            refusal.status,
            refusal.reason,
            delivery,
            _event_header(request),
            remote=request.remote,
        )
        self._store.record_intake(entry)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if refusal.status == 503 else None
        return web.json_response(
            {"status": "error", "reason": refusal.reason}, status=refusal.status, headers=headers
        )


def _event_header(request: web.Request) -> str | None:
    try:
        return event_kind(request.headers)
    except HeaderError:
        return None
