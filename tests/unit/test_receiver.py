"""The receiver's answers, each status of the contract, through aiohttp's test client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.sample import sample_push, sign_delivery
from core.store import Store
from receiver.app import create_app
from receiver.signature import sign
from receiver.webhook import WebhookConfig, WebhookReceiver

SECRET = "s3cret-for-tests"
URL = "/webhook/gitea"


class Intake:
    """A receiver on a real store, counting the wake-ups it sends the dispatcher."""

    def __init__(self, store: Store, client: TestClient) -> None:
        self.store = store
        self.client = client
        self.wakeups = 0

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        response = await self.client.post(URL, data=body, headers=headers)
        return response.status, await response.json()

    async def rows(self) -> int:
        return len(await self.store.pending_deliveries())


async def _intake(
    tmp_path: Path, secret: str | None, max_body: int, ignore: frozenset[str] = frozenset()
) -> AsyncIterator[Intake]:
    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    holder: list[Intake] = []

    def woke() -> None:
        holder[0].wakeups += 1

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    receiver = WebhookReceiver(store, WebhookConfig(secret, max_body, ignore), on_accepted=woke)
    client = TestClient(TestServer(create_app(receiver, health, max_body)))
    await client.start_server()
    holder.append(Intake(store, client))
    yield holder[0]
    await client.close()
    await store.close()


@pytest.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Intake]:
    async for value in _intake(tmp_path, SECRET, 64 * 1024):
        yield value


async def test_valid_push_is_committed_before_202(intake: Intake) -> None:
    delivery = sign_delivery(sample_push(), SECRET, delivery_id="d-1")
    status, answer = await intake.post(delivery.body, delivery.headers)
    assert (status, answer) == (202, {"status": "accepted", "delivery": "d-1"})
    pending = await intake.store.pending_deliveries()
    assert [(d.delivery_id, d.event, d.repo) for d in pending] == [("d-1", "push", "acme/widgets")]
    assert intake.wakeups == 1


async def test_same_delivery_id_again_is_a_duplicate(intake: Intake) -> None:
    delivery = sign_delivery(sample_push(), SECRET, delivery_id="d-1")
    await intake.post(delivery.body, delivery.headers)
    status, answer = await intake.post(delivery.body, delivery.headers)
    assert (status, answer) == (200, {"status": "duplicate"})
    assert await intake.rows() == 1


async def test_replay_under_a_new_id_is_a_duplicate(intake: Intake) -> None:
    payload = sample_push()
    first = sign_delivery(payload, SECRET, delivery_id="d-1")
    replay = sign_delivery(payload, SECRET, delivery_id="d-2")
    await intake.post(first.body, first.headers)
    status, answer = await intake.post(replay.body, replay.headers)
    assert (status, answer["status"]) == (200, "duplicate")
    assert await intake.rows() == 1
    assert intake.wakeups == 1


async def test_distinct_pushes_are_all_accepted(intake: Intake) -> None:
    for n in range(3):
        delivery = sign_delivery(sample_push(message=f"change {n}"), SECRET)
        assert (await intake.post(delivery.body, delivery.headers))[0] == 202
    assert await intake.rows() == 3


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing signature"),
        ({"X-Gitea-Signature": ""}, "missing signature"),
        ({"X-Gitea-Signature": "0" * 64}, "does not match"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "does not match"),
        ({"X-Gitea-Signature": "not-hex"}, "does not match"),
    ],
)
async def test_bad_signatures_get_401(intake: Intake, headers: dict[str, str], reason: str) -> None:
    delivery = sign_delivery(sample_push(), None)
    base = {"Content-Type": "application/json", "X-Gitea-Event": "push"}
    status, answer = await intake.post(delivery.body, base | headers)
    assert status == 401
    assert reason in answer["reason"]
    assert await intake.rows() == 0


async def test_signature_by_another_secret_is_refused(intake: Intake) -> None:
    delivery = sign_delivery(sample_push(), "another-secret")
    assert (await intake.post(delivery.body, delivery.headers))[0] == 401


@pytest.mark.parametrize("header", ["X-Gogs-Signature", "X-Forgejo-Signature"])
async def test_gogs_and_forgejo_signature_headers(intake: Intake, header: str) -> None:
    body = json.dumps(sample_push()).encode()
    headers = {"Content-Type": "application/json", "X-Gogs-Event": "push"}
    status, _ = await intake.post(body, headers | {header: sign(SECRET, body)})
    assert status == 202


async def test_prefixed_hub_signature_alone(intake: Intake) -> None:
    body = json.dumps(sample_push()).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Gitea-Event": "push",
        "X-Hub-Signature-256": "sha256=" + sign(SECRET, body),
    }
    assert (await intake.post(body, headers))[0] == 202


async def test_form_content_type_signs_the_decoded_payload(intake: Intake) -> None:
    payload_json = json.dumps(sample_push())
    body = urlencode({"payload": payload_json}).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Gitea-Event": "push",
        "X-Gitea-Signature": sign(SECRET, payload_json.encode()),
    }
    status, answer = await intake.post(body, headers)
    assert (status, answer["status"]) == (202, "accepted")


async def test_form_without_payload_field_is_400(intake: Intake) -> None:
    body = b"other=1"
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Gitea-Event": "push",
        "X-Gitea-Signature": sign(SECRET, b""),
    }
    status, answer = await intake.post(body, headers)
    assert (status, answer["reason"]) == (400, "form body has no single 'payload' field")
    assert await intake.rows() == 0


def _signed(body: bytes, event: str | None = "push") -> dict[str, str]:
    headers = {"Content-Type": "application/json", "X-Gitea-Signature": sign(SECRET, body)}
    if event:
        headers["X-Gitea-Event"] = event
    return headers


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"this is not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe\x00", "not valid UTF-8 JSON"),
        (b'{"ref": Infinity}', "not valid UTF-8 JSON"),  # Python's json would take it
        (b"[1, 2, 3]", "JSON object"),
        (b'{"ref": "refs/heads/main"}', "repository"),
        (b'{"repository": {"full_name": "acme/widgets"}}', "ref"),
        (b'{"ref": "x", "repository": {"full_name": "no slash"}}', "full_name"),
        (b'{"ref": "x", "repository": {"full_name": "a/b"}, "commits": [{"id": 5}]}', "commits"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    ],
)
async def test_invalid_payloads_get_400(intake: Intake, body: bytes, reason: str) -> None:
    status, answer = await intake.post(body, _signed(body))
    assert status == 400
    assert reason in answer["reason"]
    assert await intake.rows() == 0


async def test_missing_event_header_is_400(intake: Intake) -> None:
    body = json.dumps(sample_push()).encode()
    status, answer = await intake.post(body, _signed(body, event=None))
    assert status == 400
    assert "X-Gitea-Event" in answer["reason"]


async def test_unannounced_event_is_recorded_and_ignored(intake: Intake) -> None:
    body = json.dumps({"action": "starred", "repository": {"full_name": "acme/widgets"}}).encode()
    status, answer = await intake.post(body, _signed(body, event="repository"))
    assert (status, answer["status"]) == (202, "ignored")
    assert await intake.rows() == 0  # recorded, but not pending for announcement
    recorded = await intake.store.recent_deliveries()
    assert [(d.delivery_id, d.status, d.repo) for d in recorded] == [
        (answer["delivery"], "ignored", "acme/widgets")
    ]


async def test_body_over_the_limit_gets_413(intake: Intake) -> None:
    payload = sample_push(message="x" * (70 * 1024))
    body = json.dumps(payload).encode()
    status, answer = await intake.post(body, _signed(body))
    assert status == 413
    assert answer["reason"] == "body too large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
async def test_other_content_types_get_415(intake: Intake, content_type: str) -> None:
    body = json.dumps(sample_push()).encode()
    status, _ = await intake.post(body, _signed(body) | {"Content-Type": content_type})
    assert status == 415


async def test_unsigned_mode_accepts_without_signature(tmp_path: Path) -> None:
    async for unsigned in _intake(tmp_path, None, 64 * 1024):
        body = json.dumps(sample_push()).encode()
        headers = {"Content-Type": "application/json", "X-Gitea-Event": "push"}
        assert (await unsigned.post(body, headers))[0] == 202


async def test_receiver_keeps_answering_after_junk(intake: Intake) -> None:
    for junk in (b"", b"{", b"\x00" * 10, b'{"ref": null}'):
        assert (await intake.post(junk, _signed(junk)))[0] == 400
    response = await intake.client.get("/webhook/health")
    assert response.status == 200
    delivery = sign_delivery(sample_push(), SECRET)
    assert (await intake.post(delivery.body, delivery.headers))[0] == 202


async def test_pushes_by_ignored_pushers_are_recorded_not_announced(tmp_path: Path) -> None:
    async for quiet in _intake(tmp_path, SECRET, 64 * 1024, ignore=frozenset({"ci-bot"})):
        delivery = sign_delivery(sample_push(pusher="CI-Bot"), SECRET, delivery_id="loop-1")
        status, answer = await quiet.post(delivery.body, delivery.headers)
        assert (status, answer["status"]) == (202, "ignored")
        (recorded,) = await quiet.store.recent_deliveries()
        assert (recorded.delivery_id, recorded.status) == ("loop-1", "ignored")
        assert await quiet.rows() == 0
        assert quiet.wakeups == 0
