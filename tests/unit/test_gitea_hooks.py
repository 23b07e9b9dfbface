"""`forge-notifier hooks install` against a local fake of Gitea's webhook API.

The fake implements what the command uses, with Gitea's shapes (API v1): list, create and
edit hooks of repositories and organisations, `Authorization: token ...`, 401 for a bad
token, 404 for an unknown repository, and — like Gitea — it never returns a secret.
It runs on 127.0.0.1 in a thread of its own, so the CLI is exercised as a user runs it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.cli import main
from bot.command_registry import COMMANDS
from bot.commands import CommandContext
from bot.gitea_hooks import DEFAULT_EVENTS, DesiredHook, webhook_note
from bot.health import HealthScope
from core.store import Store
from core.trust import TrustPolicy

TOKEN = "gitea-token-do-not-print"
SECRET = "webhook-secret-do-not-print"
PUBLIC = "https://notifier.example.org"
OURS = f"{PUBLIC}/webhook/gitea"


@dataclass
class StoredHook:
    id: int
    type: str
    url: str
    content_type: str
    secret: str
    events: list[str]
    active: bool
    branch_filter: str

    def api(self) -> dict[str, Any]:
        """As Gitea answers: config has url and content_type, never the secret."""
        return {
            "id": self.id,
            "type": self.type,
            "config": {"url": self.url, "content_type": self.content_type},
            "events": self.events,
            "active": self.active,
            "branch_filter": self.branch_filter,
        }


@dataclass
class FakeGitea:
    owners: dict[str, list[StoredHook]] = field(default_factory=dict)  # "acme/widgets", "org:acme"
    requests: list[str] = field(default_factory=list)
    next_id: int = 1
    url: str = ""
    max_page: int = 30  # Gitea's MAX_RESPONSE_ITEMS can cap a page below the limit asked

    def add(self, owner: str, **kw: Any) -> StoredHook:
        fields: dict[str, Any] = {
            "type": "gitea",
            "url": OURS,
            "content_type": "json",
            "secret": SECRET,
            "events": list(DEFAULT_EVENTS),
            "active": True,
            "branch_filter": "*",
        } | kw
        hook = StoredHook(self.next_id, **fields)
        self.next_id += 1
        self.owners[owner].append(hook)
        return hook

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        for prefix, key in (
            ("/api/v1/repos/{owner}/{name}", "repo"),
            ("/api/v1/orgs/{org}", "org"),
        ):
            app.router.add_get(f"{prefix}/hooks", self._handler(key, self._list))
            app.router.add_post(f"{prefix}/hooks", self._handler(key, self._create))
            app.router.add_patch(f"{prefix}/hooks/{{id}}", self._handler(key, self._edit))
        app.router.add_get("/api/v1/user", self._user)
        return app

    async def _user(self, _: web.Request) -> web.Response:
        return web.json_response({"id": 1, "login": "gitea-admin"})

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.headers.get("Authorization") != f"token {TOKEN}":
            return web.json_response({"message": "token is required"}, status=401)
        return await handler(request)

    def _handler(self, key: str, action: Any) -> Any:
        async def handle(request: web.Request) -> web.Response:
            info = request.match_info
            owner = f"{info['owner']}/{info['name']}" if key == "repo" else f"org:{info['org']}"
            if owner not in self.owners:
                return web.json_response({"message": "The target couldn't be found."}, status=404)
            return await action(request, self.owners[owner])

        return handle

    async def _list(self, request: web.Request, hooks: list[StoredHook]) -> web.Response:
        page = int(request.query.get("page", 1))
        limit = min(int(request.query.get("limit", 30)), self.max_page)
        chunk = hooks[(page - 1) * limit : page * limit]
        return web.json_response([hook.api() for hook in chunk])

    async def _create(self, request: web.Request, hooks: list[StoredHook]) -> web.Response:
        body = await request.json()
        config = body["config"]
        if "url" not in config or "content_type" not in config:
            return web.json_response({"message": "Missing config option"}, status=422)
        hook = StoredHook(
            self.next_id,
            body["type"],
            config["url"],
            config["content_type"],
            config.get("secret", ""),
            body.get("events") or ["push"],
            bool(body.get("active", False)),  # Gitea's default is inactive
            body.get("branch_filter", ""),
        )
        self.next_id += 1
        hooks.append(hook)
        return web.json_response(hook.api(), status=201)

    async def _edit(self, request: web.Request, hooks: list[StoredHook]) -> web.Response:
        hook = next((h for h in hooks if h.id == int(request.match_info["id"])), None)
        if hook is None:
            return web.json_response({"message": "The target couldn't be found."}, status=404)
        body = await request.json()
        config = body.get("config") or {}
        hook.url = config.get("url", hook.url)
        hook.content_type = config.get("content_type", hook.content_type)
        hook.secret = config.get("secret", hook.secret)
        hook.events = body.get("events") or ["push"]  # Gitea resets omitted events to push
        hook.branch_filter = body.get("branch_filter", "")
        if "active" in body:
            hook.active = body["active"]
        return web.json_response(hook.api())


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    fake = FakeGitea()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(fake.app())

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url = f"http://127.0.0.1:{port}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


@pytest.fixture
def configured(
    gitea: FakeGitea, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith("NOTIFIER_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOTIFIER_GITEA_URL", gitea.url)
    monkeypatch.setenv("NOTIFIER_GITEA_TOKEN", TOKEN)
    monkeypatch.setenv("NOTIFIER_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("NOTIFIER_PUBLIC_URL", PUBLIC)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["hooks", "install", *args])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert TOKEN not in output and SECRET not in output
    return code, output


def test_first_run_creates_second_run_creates_nothing(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners.update({"acme/widgets": [], "acme/gadgets": [], "org:acme": []})

    code, output = run(capsys, "--repo", "acme/widgets", "acme/gadgets", "--org", "acme")
    assert code == 0
    assert "acme/widgets: created hook #" in output
    assert "org acme: created hook #" in output
    assert "3 created" in output
    for hooks in gitea.owners.values():
        (hook,) = hooks
        assert (hook.url, hook.content_type, hook.secret) == (OURS, "json", SECRET)
        assert hook.active and hook.type == "gitea" and "push" in hook.events

    code, output = run(capsys, "--repo", "acme/widgets", "acme/gadgets", "--org", "acme")
    assert code == 0
    assert "0 created, 0 updated, 3 already up to date, 0 failed" in output
    assert all(len(hooks) == 1 for hooks in gitea.owners.values())
    assert sum(request.startswith("POST") for request in gitea.requests) == 3


def test_stale_url_secret_and_events_are_updated_in_place(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners["acme/widgets"] = []
    other = gitea.add("acme/widgets", url="https://ci.example.org/hook", secret="ci")
    stale = gitea.add(
        "acme/widgets",
        url="http://notifier.example.org:8500/webhook/gitea/",
        secret="old-secret",
        events=["push"],
        active=False,
    )

    code, output = run(capsys, "--repo", "acme/widgets")
    assert code == 0
    assert f"acme/widgets: updated hook #{stale.id}" in output
    assert "url was http://notifier.example.org:8500/webhook/gitea/" in output
    assert "secret re-sent" in output
    assert len(gitea.owners["acme/widgets"]) == 2
    assert (stale.url, stale.secret, stale.active) == (OURS, SECRET, True)
    assert set(DEFAULT_EVENTS) <= set(stale.events)
    assert (other.url, other.secret) == ("https://ci.example.org/hook", "ci")


def test_a_moved_receiver_is_taken_over_only_when_named(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners["acme/widgets"] = []
    old = gitea.add("acme/widgets", url="https://old-host.example.org/webhook/gitea")

    code, output = run(capsys, "--repo", "acme/widgets", "--dry-run")
    assert code == 0 and "would create" in output
    assert len(gitea.owners["acme/widgets"]) == 1  # a dry run changes nothing

    code, output = run(
        capsys, "--repo", "acme/widgets", "--replace-url", "https://old-host.example.org"
    )
    assert code == 0
    assert f"updated hook #{old.id}" in output
    assert [h.url for h in gitea.owners["acme/widgets"]] == [OURS]


def test_unknown_repository_and_bad_token_fail_per_target_with_nonzero_exit(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners["acme/widgets"] = []

    code, output = run(capsys, "--repo", "acme/widgets", "acme/ghost")
    assert code == 1
    assert "acme/widgets: created hook #" in output
    assert "acme/ghost: failed (404 Not Found: no such repository" in output
    assert "1 created, 0 updated, 0 already up to date, 1 failed" in output

    configured.setenv("NOTIFIER_GITEA_TOKEN", "wrong")
    code, output = run(capsys, "--repo", "acme/widgets", "--org", "acme")
    assert code == 1
    assert "acme/widgets: failed (401 Unauthorized: Gitea refused NOTIFIER_GITEA_TOKEN" in output
    assert "org acme: failed (401 Unauthorized" in output


def test_missing_settings_and_bad_names_are_configuration_errors(
    configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.delenv("NOTIFIER_PUBLIC_URL")
    code, output = run(capsys, "--repo", "acme/*")
    assert code == 2
    assert "NOTIFIER_PUBLIC_URL is required" in output
    assert "use --org OWNER" in output
    code, output = run(capsys)
    assert code == 2 and "--repo OWNER/NAME or --org ORG" in output


def test_gitea_reports_fine_grained_events_for_a_group_as_up_to_date() -> None:
    """Gitea lists the sub-events a group name turned on; ours are all among them."""
    desired = DesiredHook(OURS, SECRET, ("push", "issues"))
    listed = {
        "type": "gitea",
        "config": {"url": OURS, "content_type": "json"},
        "events": ["push", "issues", "issue_assign", "issue_comment"],
        "active": True,
    }
    assert desired.is_ours(listed)
    assert desired.differences(listed) == []
    assert not desired.is_ours({**listed, "type": "slack"})


def test_check_config_proves_the_gitea_token_and_masks_every_secret(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.setenv("NOTIFIER_HOMESERVER", "http://127.0.0.1:9")  # nothing listens there
    configured.setenv("NOTIFIER_USER_ID", "@notifier:example.org")
    configured.setenv("NOTIFIER_PASSWORD", "matrix-password-do-not-print")
    code = main(["check-config"])
    output = "".join(capsys.readouterr())
    assert code == 1  # the homeserver is unreachable
    assert f"Gitea must send webhooks to {OURS}" in output
    assert f"Gitea API at {gitea.url}: the token works (user gitea-admin)." in output
    assert "Homeserver check failed" in output
    for secret in (TOKEN, SECRET, "matrix-password-do-not-print"):
        assert secret not in output

    configured.setenv("NOTIFIER_GITEA_TOKEN", "wrong")
    main(["check-config"])
    assert "Gitea check failed: 401 Unauthorized" in "".join(capsys.readouterr())


def test_a_hook_beyond_the_first_page_is_found_not_duplicated(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners["acme/busy"] = []
    for n in range(gitea.max_page + 4):
        gitea.add("acme/busy", url=f"https://ci{n}.example.org/hook")
    ours = gitea.add("acme/busy")

    code, output = run(capsys, "--repo", "acme/busy")
    assert code == 0
    assert f"acme/busy: hook #{ours.id} already up to date" in output
    assert len(gitea.owners["acme/busy"]) == gitea.max_page + 5


async def test_subscribe_note_says_whether_gitea_already_calls_us(gitea: FakeGitea) -> None:
    gitea.owners["acme/widgets"] = []
    gitea.owners["org:acme"] = []
    gitea.owners["solo/tool"] = []
    missing = await webhook_note(gitea.url, TOKEN, OURS, "acme/widgets")
    assert missing == (
        "Gitea has no webhook pointing here for it yet: run "
        "`forge-notifier hooks install --repo acme/widgets` or add one in Gitea."
    )
    gitea.add("org:acme")
    assert await webhook_note(gitea.url, TOKEN, OURS, "acme/widgets") == (
        "Gitea already sends this organisation's events here."
    )
    assert "already" in await webhook_note(gitea.url, TOKEN, OURS, "acme/*")
    gitea.add("solo/tool")  # a user's repository: no organisation to ask (404)
    assert await webhook_note(gitea.url, TOKEN, OURS, "solo/tool") == (
        "Gitea already sends this repository's events here."
    )
    assert "--org nobody" in await webhook_note(gitea.url, TOKEN, OURS, "nobody/*")


# --- names that would climb out of the API path: refused before any request --------------


def test_hooks_install_sends_nothing_for_a_dot_segment(
    gitea: FakeGitea, configured: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gitea.owners.update({"acme/widgets": [], "org:acme": []})
    for args in (["--repo", "../admin"], ["--repo", "acme/widgets", "--org", ".."]):
        code, output = run(capsys, *args)
        assert code == 2
        assert "'..' is not a name" in output
    assert gitea.requests == []  # not even for the good name given alongside


async def test_subscribe_with_a_dot_segment_never_reaches_gitea(
    gitea: FakeGitea, store: Store
) -> None:
    """`!subscribe ../admin` used to send the operator's token to /api/v1/admin/hooks."""
    gitea.owners.update({"acme/widgets": [], "org:acme": []})

    async def health_text(_: HealthScope) -> str:
        return "ok"

    note = functools.partial(webhook_note, gitea.url, TOKEN, OURS)
    ctx = CommandContext(
        room_id="!r:x",
        sender="@admin:x",
        store=store,
        webhook_url=OURS,
        health_text=health_text,
        webhook_note=note,
        trust=TrustPolicy.of(["@admin:x"], []),
    )
    subscribe = COMMANDS["subscribe"].handler
    for spec in ("../admin", "acme/..", "./hooks", ".admin/x", "acme//x"):
        with pytest.raises(ValueError, match="is not OWNER/NAME or OWNER/"):
            await subscribe(ctx, [spec])
    assert gitea.requests == []
    assert await store.subscriptions("!r:x") == []

    assert "no webhook pointing here" in await subscribe(ctx, ["acme/widgets"])
    assert gitea.requests  # the same wiring asks Gitea for a good name


async def test_subscribe_note_never_asks_about_a_dot_segment(gitea: FakeGitea) -> None:
    for spec in ("../admin", "../*", "acme/.."):
        note = await webhook_note(gitea.url, TOKEN, OURS, spec)
        assert note == "That is not a name Gitea could have, so I did not ask it about webhooks."
    assert gitea.requests == []
