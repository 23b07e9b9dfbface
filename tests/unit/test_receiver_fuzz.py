"""Hostile input, property-based: thousands of malformed bodies, headers, content types and
signatures. Never a 5xx, never a crash, always the right 4xx — and after a storm of them,
concurrent, the receiver still accepts and stores a genuine delivery, having stored nothing else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sample import sample_push, sign_delivery
from core.events import PayloadError, parse_event
from core.store import Store
from receiver.app import create_app
from receiver.headers import MAX_EVENT_HEADER
from receiver.signature import sign
from receiver.webhook import WebhookConfig, WebhookReceiver

SECRET = "fuzz-secret"
MAX_BODY = 16 * 1024
FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80)
# Standard JSON only: json.dumps would write Infinity, which no forge sends and the
# receiver refuses as invalid JSON (test_receiver.py).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
events = st.sampled_from(["push", "issues", "create", "pull_request", "", "PUSH", "x" * 300])


@pytest.fixture
async def client(store: Store) -> AsyncIterator[TestClient]:
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    receiver = WebhookReceiver(store, WebhookConfig(SECRET, MAX_BODY), on_accepted=lambda: None)
    test_client = TestClient(TestServer(create_app(receiver, health, MAX_BODY)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


def _acceptable(event: str, payload: Any) -> bool:
    """What the receiver must accept: an event header and a payload valid for that kind."""
    if not event or len(event) > MAX_EVENT_HEADER:  # an over-long header is refused unread
        return False
    try:
        parse_event(event.lower()[:200], payload)
    except PayloadError:
        return False
    return True


async def _post(client: TestClient, body: bytes, headers: dict[str, str]) -> int:
    response = await client.post("/webhook/gitea", data=body, headers=headers)
    await response.read()
    return response.status


@FUZZ
@given(body=st.binary(max_size=2048), content_type=header_text)
async def test_any_other_content_type_is_415(
    client: TestClient, body: bytes, content_type: str
) -> None:
    essence = content_type.split(";")[0].strip().lower()
    if essence in ("application/json", "application/x-www-form-urlencoded"):
        return
    headers = {"Content-Type": content_type or "text/plain", "X-Gitea-Event": "push"}
    status = await _post(client, body, headers | {"X-Gitea-Signature": sign(SECRET, body)})
    assert status == 415


@FUZZ
@given(body=st.binary(max_size=2048), signature=header_text, hub=header_text)
async def test_unverifiable_signatures_are_401(
    client: TestClient, body: bytes, signature: str, hub: str
) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Event": "push",
        "X-Gitea-Signature": signature,
        "X-Hub-Signature-256": hub,
    }
    assert await _post(client, body, headers) == 401


@FUZZ
@given(body=st.binary(max_size=4096), event=events)
async def test_signed_junk_is_400(client: TestClient, body: bytes, event: str) -> None:
    headers = {"Content-Type": "application/json", "X-Gitea-Signature": sign(SECRET, body)}
    if event:
        headers["X-Gitea-Event"] = event
    status = await _post(client, body, headers)
    assert status in (200, 202, 400)
    if status != 400:  # only a decodable object of an unannounced kind may pass
        payload = json.loads(body)
        assert _acceptable(event, payload)
        assert parse_event(event.lower()[:200], payload) is None


@FUZZ
@given(payload=json_values, event=events)
async def test_signed_json_is_accepted_exactly_when_it_is_a_valid_payload(
    client: TestClient, payload: Any, event: str
) -> None:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-Gitea-Signature": sign(SECRET, body)}
    if event:
        headers["X-Gitea-Event"] = event
    status = await _post(client, body, headers)
    assert status in ((200, 202) if _acceptable(event, payload) else (400,))


@FUZZ
@given(fields=st.dictionaries(header_text, header_text, max_size=4), raw=st.binary(max_size=512))
async def test_form_bodies_never_crash(
    client: TestClient, fields: dict[str, str], raw: bytes
) -> None:
    for body in (urlencode(fields).encode(), raw):
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Gitea-Event": "push",
            "X-Gitea-Signature": sign(SECRET, fields.get("payload", "").encode()),
        }
        assert await _post(client, body, headers) in (200, 202, 400, 401)


@FUZZ
@given(
    extra=st.dictionaries(
        st.sampled_from(
            [
                "X-Gitea-Delivery",
                "X-Gitea-Event",
                "X-Gitea-Event-Type",
                "X-Gogs-Event",
                "X-Forgejo-Delivery",
                "X-GitHub-Event",
                "Content-Length-Fake",
                "X-Hub-Signature-256",
            ]
        ),
        header_text,
        max_size=5,
    )
)
async def test_any_headers_with_a_genuine_body_never_5xx(
    client: TestClient, extra: dict[str, str]
) -> None:
    delivery = sign_delivery(sample_push(message=json.dumps(extra)), SECRET)
    status = await _post(client, delivery.body, delivery.headers | extra)
    assert status in (200, 202, 400, 401)


STORM_WAVES, STORM_WAVE = 8, 50  # 400 hostile requests, 50 in flight at a time


def _hostile(n: int) -> tuple[bytes, dict[str, str], int]:
    """Request n of the storm: body, headers and the status it must get."""
    junk = b"\x00{not json" + str(n).encode()
    signed_junk = {"X-Gitea-Event": "push", "X-Gitea-Signature": sign(SECRET, junk)}
    json_type = {"Content-Type": "application/json"}
    kinds = [
        (b"{" + b" " * (MAX_BODY + 10) + b"}", json_type | signed_junk, 413),
        (junk, json_type | {"X-Gitea-Event": "push", "X-Gitea-Signature": "00" * 32}, 401),
        (junk, {"Content-Type": "text/plain"} | signed_junk, 415),
        (junk, json_type | signed_junk, 400),
    ]
    return kinds[n % len(kinds)]


async def test_still_accepting_after_the_storm(client: TestClient, store: Store) -> None:
    for wave in range(STORM_WAVES):
        batch = [_hostile(wave * STORM_WAVE + i) for i in range(STORM_WAVE)]
        statuses = await asyncio.gather(*(_post(client, body, h) for body, h, _ in batch))
        assert list(statuses) == [expected for _, _, expected in batch]
    delivery = sign_delivery(sample_push(message="after the storm"), SECRET)
    assert await _post(client, delivery.body, delivery.headers) == 202
    stored = await store.recent_deliveries(limit=10)
    assert [d.delivery_id for d in stored] == [delivery.headers["X-Gitea-Delivery"]]
