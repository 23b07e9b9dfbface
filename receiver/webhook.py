"""`POST /webhook/gitea`: verify, parse, deduplicate, commit, and only then answer 2xx.

Each failure has its own status and a short reason, logged with the delivery id, so an
operator can tell a wrong secret from a wrong proxy path from junk. Nothing here raises
into aiohttp for bad input: a request is either stored or refused with a 4xx.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from core.events import AnnouncedEvent, PayloadError, PushEvent, parse_event, repo_of
from core.records import NewDelivery
from core.store import Store
from receiver.body import ACCEPTED_TYPES, BodyError, media_type, signed_payload
from receiver.headers import HeaderError, delivery_id, event_kind
from receiver.signature import SignatureCheck, verify

log = logging.getLogger(__name__)

SIGNATURE_REASONS = {
    SignatureCheck.MISSING: "missing signature (is the webhook secret set on the forge?)",
    SignatureCheck.MISMATCH: "signature does not match (is the webhook secret the same?)",
}


@dataclass(frozen=True)
class WebhookConfig:
    secret: str | None  # None only when unsigned deliveries were explicitly allowed
    max_body_bytes: int
    ignore_pushers: frozenset[str] = frozenset()  # lower-case Gitea logins (bot loops)

    def ignores(self, event: AnnouncedEvent | None) -> bool:
        return isinstance(event, PushEvent) and event.actor.lower() in self.ignore_pushers


class Refusal(Exception):
    """A 4xx answer with a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookReceiver:
    """Turns a webhook request into a committed inbox row, or a precise refusal."""

    def __init__(self, store: Store, config: WebhookConfig, on_accepted: Callable[[], None]):
        self._store = store
        self._config = config
        self._on_accepted = on_accepted

    async def handle(self, request: web.Request) -> web.Response:
        try:
            delivery = delivery_id(request.headers) or f"local-{uuid.uuid4()}"
        except HeaderError as exc:
            return _refuse(Refusal(400, str(exc)), "?", request)
        try:
            record = await self._verified_record(request, delivery)
        except Refusal as refusal:
            return _refuse(refusal, delivery, request)
        return await self._commit(record)

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
            text = signed.decode("utf-8")
            payload = json.loads(text)
            event = parse_event(kind, payload)
        except PayloadError as exc:
            raise Refusal(400, str(exc)) from None
        except (UnicodeDecodeError, ValueError):  # ValueError: also int-size limits of json
            raise Refusal(400, "body is not valid UTF-8 JSON") from None
        except RecursionError:
            raise Refusal(400, "body is nested too deeply") from None
        ignored_pusher = self._config.ignores(event)
        return NewDelivery(
            delivery_id=delivery,
            event=kind,
            body_sha256=hashlib.sha256(signed).hexdigest(),
            repo=event.repo if event else repo_of(payload),
            payload=text,
            received_at=time.time(),
            status="pending" if event and not ignored_pusher else "ignored",
            note="pusher in NOTIFIER_IGNORE_PUSHERS" if ignored_pusher else None,
        )

    async def _signed_body(self, request: web.Request) -> bytes:
        content_type = media_type(request.headers.get("Content-Type", ""))
        if content_type not in ACCEPTED_TYPES:
            raise Refusal(415, "content type must be application/json or form-encoded")
        length = request.content_length
        if length is not None and length > self._config.max_body_bytes:
            raise Refusal(413, "body too large")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise Refusal(413, "body too large") from None
        if len(raw) > self._config.max_body_bytes:
            raise Refusal(413, "body too large")
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

    async def _commit(self, record: NewDelivery) -> web.Response:
        try:
            inserted = await self._store.record_delivery(record)
        except sqlite3.Error:
            # Not stored, so not accepted: a 5xx makes Gitea show the delivery as failed.
            log.exception("delivery %s could not be stored", record.delivery_id)
            return web.json_response(
                {"status": "error", "reason": "storage unavailable"}, status=503
            )
        if not inserted:
            log.info(
                "delivery %s (%s, %s) is a duplicate", record.delivery_id, record.event, record.repo
            )
            return web.json_response({"status": "duplicate"}, status=200)
        log.info(
            "delivery %s (%s, %s) %s",
            record.delivery_id,
            record.event,
            record.repo,
            "accepted" if record.status == "pending" else "ignored",
        )
        if record.status == "ignored":
            return web.json_response(
                {"status": "ignored", "delivery": record.delivery_id}, status=202
            )
        self._on_accepted()
        return web.json_response({"status": "accepted", "delivery": record.delivery_id}, status=202)


def _refuse(refusal: Refusal, delivery: str, request: web.Request) -> web.Response:
    log.warning(
        "delivery %s from %s refused: %d %s",
        delivery,
        request.remote,
        refusal.status,
        refusal.reason,
    )
    return web.json_response({"status": "error", "reason": refusal.reason}, status=refusal.status)
