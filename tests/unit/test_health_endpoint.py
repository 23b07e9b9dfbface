"""`GET /webhook/health`: the full snapshot for loopback clients or the API token, a
reduced one for everyone else; and the receiver records each delivery's visibility."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from bot.sample import sample_push, sign_delivery
from core.store import Store
from receiver.app import create_app, health_view, is_loopback
from receiver.webhook import WebhookConfig, WebhookReceiver

SECRET = "s3cret-for-tests"
TOKEN = "api-token-for-tests"
FULL = {
    "status": "ok",
    "matrix": {"connected": True, "last_sync": 1.0, "last_error": None},
    "queue": {"pending": 3, "oldest_age_s": 2.0, "held": 0, "failed": 0},
    "repos": [{"repo": "hr/*", "rooms": ["!hr:x"]}],
    "signature_failures": {"last_remote": "10.1.2.3", "last_reason": "mismatch"},
}
REDUCED = {"status": "ok", "matrix": {"connected": True}, "queue": {"pending": 3}}


async def snapshot() -> dict[str, Any]:
    return FULL


def request_from(remote: str, headers: dict[str, str] | None = None) -> web.Request:
    """A request whose TCP peer is `remote` (aiohttp reads it from the transport)."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (remote, 40000) if name == "peername" else default
    )
    return make_mocked_request("GET", "/webhook/health", headers=headers, transport=transport)


async def answer(request: web.Request, token: str | None = TOKEN) -> dict[str, Any]:
    response = await health_view(snapshot, token)(request)
    assert response.status == 200
    assert isinstance(response, web.Response) and response.text is not None
    return dict(json.loads(response.text))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Store]]:
    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    receiver = WebhookReceiver(store, WebhookConfig(SECRET, 64 * 1024), on_accepted=lambda: None)
    test_client = TestClient(TestServer(create_app(receiver, snapshot, 64 * 1024, None, TOKEN)))
    await test_client.start_server()
    yield test_client, store
    await test_client.close()
    await store.close()


async def test_loopback_client_gets_the_full_snapshot(client: tuple[TestClient, Store]) -> None:
    response = await client[0].get("/webhook/health")  # the test server is on 127.0.0.1
    assert response.status == 200
    assert await response.json() == FULL


async def test_other_clients_get_status_link_and_queue_only() -> None:
    assert await answer(request_from("203.0.113.7")) == REDUCED


async def test_the_bearer_token_gets_the_full_snapshot() -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert await answer(request_from("203.0.113.7", headers)) == FULL


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN[:-1]}"],
)
async def test_a_wrong_token_gets_the_reduced_snapshot(authorization: str) -> None:
    request = request_from("203.0.113.7", {"Authorization": authorization})
    assert await answer(request) == REDUCED


async def test_without_a_configured_token_no_header_unlocks_it() -> None:
    request = request_from("203.0.113.7", {"Authorization": "Bearer "})
    assert await answer(request, token=None) == REDUCED
    assert await answer(request_from("203.0.113.7", {"Authorization": "Bearer None"}), None) == (
        REDUCED
    )


@pytest.mark.parametrize("header", ["Forwarded", "X-Forwarded-For", "X-Real-IP"])
async def test_a_loopback_request_through_a_proxy_counts_as_from_outside(
    client: tuple[TestClient, Store], header: str
) -> None:
    response = await client[0].get("/webhook/health", headers={header: "203.0.113.7"})
    assert await response.json() == REDUCED
    with_token = {header: "203.0.113.7", "Authorization": f"Bearer {TOKEN}"}
    response = await client[0].get("/webhook/health", headers=with_token)
    assert await response.json() == FULL


async def test_forwarded_headers_are_not_believed() -> None:
    headers = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=::1"}
    assert await answer(request_from("203.0.113.7", headers)) == REDUCED


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("", False),
        ("not-an-address", False),
    ],
)
def test_loopback_is_127_0_0_0_8_or_ipv6_loopback(remote: str, loopback: bool) -> None:
    assert is_loopback(remote) is loopback
    assert is_loopback(None) is False


async def test_the_receiver_stores_each_deliverys_visibility(
    client: tuple[TestClient, Store],
) -> None:
    test_client, store = client
    for n, private in enumerate([False, True, None]):
        payload = sample_push(f"acme/repo{n}", private=private)
        delivery = sign_delivery(payload, SECRET, delivery_id=f"d{n}")
        response = await test_client.post(
            "/webhook/gitea", data=delivery.body, headers=delivery.headers
        )
        assert response.status == 202
    stored = {d.delivery_id: bool(d.private) for d in await store.pending_deliveries()}
    assert stored == {"d0": False, "d1": True, "d2": True}
