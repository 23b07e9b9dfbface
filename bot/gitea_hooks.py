"""Gitea's webhook API, for `forge-notifier hooks install` (onboarding many repositories).

Endpoints (Gitea and Forgejo, API v1): `GET`/`POST /repos/{owner}/{repo}/hooks`,
`PATCH /repos/{owner}/{repo}/hooks/{id}`, and the same under `/orgs/{org}/hooks`; an
organisation hook also covers repositories created later.

Gitea never returns a hook's secret, so a stale secret cannot be detected: every hook
that points at this receiver is PATCHed with the full configuration, secret included.
That is idempotent, so running the command twice still leaves exactly one hook. A hook
is this receiver's when its URL has the receiver's host and path (`/webhook/gitea`),
whatever its scheme or port, or when it points at an old address given with
`--replace-url`; hooks of other services are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp

from core.repo_spec import RepoSpecError, check_name, check_repo_name

HOOK_PATH = "/webhook/gitea"
# The kinds a team wants announced. A group name covers its sub-events (`issues` includes
# comments, `pull_request` reviews and syncs); names an older Gitea does not know are
# ignored by it, and kinds the daemon does not announce are recorded as "ignored".
DEFAULT_EVENTS = (
    "push",
    "create",
    "delete",
    "release",
    "pull_request",
    "issues",
    "status",
    "workflow_run",
    "workflow_job",
)
FORGE_HOOK_TYPES = frozenset({"gitea", "forgejo", "gogs"})
PAGE_SIZE = 50
MAX_PAGES = 20


@dataclass(frozen=True)
class Target:
    """A repository (`OWNER/NAME`) or an organisation whose hooks are managed."""

    kind: Literal["repo", "org"]
    name: str

    def __post_init__(self) -> None:
        """Its names go into API paths: `.`, `..`, leading dots and empty ones never do."""
        if self.kind == "repo":
            check_repo_name(self.name)
        else:
            check_name(self.name)

    @property
    def label(self) -> str:
        return self.name if self.kind == "repo" else f"org {self.name}"

    @property
    def noun(self) -> str:
        return "repository" if self.kind == "repo" else "organisation"

    @property
    def hooks_path(self) -> str:
        if self.kind == "org":
            return f"/api/v1/orgs/{_segment(self.name)}/hooks"
        owner, repo = self.name.split("/", 1)
        return f"/api/v1/repos/{_segment(owner)}/{_segment(repo)}/hooks"


def _segment(name: str) -> str:
    """One path segment, checked again and percent-encoded (a `/` or `%` stays inside it)."""
    return quote(check_name(name), safe="")


def parse_targets(repos: Sequence[str], orgs: Sequence[str]) -> list[Target]:
    """Validate names as written on the command line; ValueError names the bad one."""
    targets = []
    for org in orgs:
        try:
            targets.append(Target("org", org))
        except RepoSpecError as exc:
            raise ValueError(f"--org {org[:60]!r} is not an organisation name: {exc}") from None
    for repo in repos:
        try:
            targets.append(Target("repo", repo))
        except RepoSpecError as exc:
            hint = " (use --org OWNER for a whole organisation)" if repo.endswith("/*") else ""
            raise ValueError(f"--repo {exc}{hint}") from None
    return targets


def _address(url: str) -> tuple[str, str]:
    """What identifies a receiver: host and path, not scheme, port or trailing slash."""
    parts = urlsplit(url.strip())
    return (parts.hostname or "").lower(), parts.path.rstrip("/")


def _receiver_address(url: str) -> tuple[str, str]:
    """`--replace-url` takes an old base URL or an old webhook URL."""
    url = url.strip().rstrip("/")
    return _address(url if url.endswith(HOOK_PATH) else url + HOOK_PATH)


@dataclass(frozen=True)
class DesiredHook:
    """The hook every target should have."""

    url: str
    secret: str | None
    events: tuple[str, ...] = DEFAULT_EVENTS
    replaces: tuple[str, ...] = ()  # old receiver URLs whose hooks are taken over

    def edit_body(self) -> dict[str, Any]:
        # Gitea's edit resets what is left out (events to push only, branch filter and
        # authorization header to empty), so the body always says everything.
        config = {"url": self.url, "content_type": "json"}
        if self.secret is not None:
            config["secret"] = self.secret
        return {
            "config": config,
            "events": list(self.events),
            "active": True,
            "branch_filter": "*",
        }

    def create_body(self) -> dict[str, Any]:
        return {"type": "gitea", **self.edit_body()}

    def is_ours(self, hook: dict[str, Any]) -> bool:
        if hook.get("type", "gitea") not in FORGE_HOOK_TYPES:
            return False
        address = _address(_hook_url(hook))
        if not address[1].endswith(HOOK_PATH):
            return False
        old = {_receiver_address(url) for url in self.replaces}
        return address == _address(self.url) or address in old

    def differences(self, hook: dict[str, Any]) -> list[str]:
        """The visible settings that differ from ours (the secret is never visible)."""
        config = hook.get("config") or {}
        found = []
        if _hook_url(hook).rstrip("/") != self.url.rstrip("/"):
            found.append(f"url was {_hook_url(hook)}")
        if config.get("content_type", "json") != "json":
            found.append(f"content type was {config.get('content_type')}")
        missing = [e for e in self.events if e not in set(hook.get("events") or ())]
        if missing:
            found.append("events lacked " + ", ".join(missing))
        if not hook.get("active", True):
            found.append("it was inactive")
        return found


def _hook_url(hook: dict[str, Any]) -> str:
    # `config.url` in every version; the top-level `url` was the settings page in older ones.
    return str((hook.get("config") or {}).get("url", ""))


class GiteaError(Exception):
    """A refused or failed API call, phrased for the operator, per target."""


def explain(status: int, message: str, target: Target | None) -> str:
    """One line per failure that says what to fix; `target` is None outside hook calls."""
    if status == 401:
        return "401 Unauthorized: Gitea refused NOTIFIER_GITEA_TOKEN (wrong, expired or revoked)"
    if target is not None and status == 403:
        scope = "write:repository" if target.kind == "repo" else "write:organization"
        return (
            f"403 Forbidden: the token's user cannot manage this {target.noun}'s webhooks "
            f"(needs admin rights on it, and a token with the {scope} scope)"
        )
    if target is not None and status == 404:
        return f"404 Not Found: no such {target.noun}, or the token's user cannot see it"
    detail = f": {message[:200]}" if message else ""
    if status == 422:
        return f"422: Gitea rejected the hook{detail}"
    return f"HTTP {status}{detail}"


class GiteaClient:
    """The few calls `hooks install` needs; the token goes in a header, never in a URL."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"token {token}", "Accept": "application/json"}

    async def list_hooks(self, target: Target) -> list[dict[str, Any]]:
        """Every page, until an empty one: Gitea may cap a page below the limit asked for
        (MAX_RESPONSE_ITEMS), and a hook missed here would be created a second time."""
        hooks: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            params = {"page": str(page), "limit": str(PAGE_SIZE)}
            batch = await self._call("GET", target, target.hooks_path, params=params)
            if not isinstance(batch, list):
                raise GiteaError("unexpected answer to the hook list (not a JSON list)")
            if not batch:
                break
            hooks.extend(batch)
        return hooks

    async def create_hook(self, target: Target, body: dict[str, Any]) -> dict[str, Any]:
        made = await self._call("POST", target, target.hooks_path, body=body)
        return made if isinstance(made, dict) else {}

    async def edit_hook(self, target: Target, hook_id: int, body: dict[str, Any]) -> None:
        await self._call("PATCH", target, f"{target.hooks_path}/{hook_id}", body=body)

    async def current_user(self) -> str:
        """The token's user: `check-config` proves the token works with it."""
        me = await self._call("GET", None, "/api/v1/user")
        return str(me.get("login", "?")) if isinstance(me, dict) else "?"

    async def _call(
        self,
        method: str,
        target: Target | None,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = self._base + path
        try:
            async with self._session.request(
                method, url, json=body, params=params, headers=self._headers
            ) as response:
                answer = await _json_or_none(response)
                if response.status >= 400:
                    message = answer.get("message", "") if isinstance(answer, dict) else ""
                    raise GiteaError(explain(response.status, str(message), target))
                return answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise GiteaError(f"cannot reach Gitea at {self._base}: {type(exc).__name__}") from None


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


Action = Literal["created", "updated", "up to date", "failed"]


@dataclass(frozen=True)
class Outcome:
    target: Target
    action: Action
    hook_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def line(self, dry_run: bool) -> str:
        hook = f"hook #{self.hook_id}"
        done = {
            "created": "would create a hook" if dry_run else f"created {hook}",
            "updated": f"would update {hook}" if dry_run else f"updated {hook}",
            "up to date": f"{hook} already up to date",
            "failed": "failed",
        }[self.action]
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"  {self.target.label}: {done}{notes}"


async def install_one(
    client: GiteaClient, target: Target, desired: DesiredHook, dry_run: bool = False
) -> Outcome:
    """Create the hook, or bring the one pointing here up to date; never raises GiteaError."""
    try:
        hooks = await client.list_hooks(target)
        ours = [hook for hook in hooks if desired.is_ours(hook)]
        if not ours:
            if dry_run:
                return Outcome(target, "created")
            made = await client.create_hook(target, desired.create_body())
            return Outcome(target, "created", made.get("id"))
        exact = [h for h in ours if _hook_url(h).rstrip("/") == desired.url.rstrip("/")]
        hook, *others = exact + [h for h in ours if h not in exact]
        if not dry_run:
            await client.edit_hook(target, int(hook["id"]), desired.edit_body())
    except GiteaError as exc:
        return Outcome(target, "failed", notes=[str(exc)])
    changes = desired.differences(hook)
    resent = "secret would be re-sent" if dry_run else "secret re-sent"
    notes = [*changes, f"{resent}: Gitea never shows it"]
    notes += [f"hook #{h.get('id')} also points at {_hook_url(h)}, left alone" for h in others]
    return Outcome(target, "updated" if changes else "up to date", hook.get("id"), notes)


def summary(outcomes: Sequence[Outcome], dry_run: bool) -> str:
    counts = {action: 0 for action in ("created", "updated", "up to date", "failed")}
    for outcome in outcomes:
        counts[outcome.action] += 1
    created, updated = (
        ("would be created", "would be updated") if dry_run else ("created", "updated")
    )
    return (
        f"{len(outcomes)} target(s): {counts['created']} {created}, {counts['updated']} {updated},"
        f" {counts['up to date']} already up to date, {counts['failed']} failed"
    )


def problems_for_hooks(
    gitea_url: str | None, gitea_token: str | None, public_url: str | None
) -> list[str]:
    """What `hooks install` needs, one line per variable to set."""
    problems = []
    if not gitea_url:
        problems.append("NOTIFIER_GITEA_URL is required (e.g. https://git.example.org)")
    if not gitea_token:
        problems.append(
            "NOTIFIER_GITEA_TOKEN is required (a Gitea access token with the write:repository"
            " scope, and write:organization for --org)"
        )
    if not public_url:
        problems.append(
            "NOTIFIER_PUBLIC_URL is required: the address at which Gitea reaches the receiver"
            " (hooks will point at it + /webhook/gitea)"
        )
    return problems


HOOK_CHECK_S = 5.0


async def webhook_note(base_url: str, token: str, webhook_url: str, spec: str) -> str:
    """One sentence for the `!subscribe` reply: does Gitea already call us for `spec`?

    A repository is covered by its own hook or its organisation's; `OWNER/*` by the
    organisation's. Bounded in time: a slow Gitea must not hold up the chat reply.
    """
    owner, _, name = spec.partition("/")
    try:
        targets = (
            [Target("org", owner)] if name == "*" else [Target("repo", spec), Target("org", owner)]
        )
    except RepoSpecError:  # `!subscribe` refuses such a spec before asking: never ask Gitea
        return "That is not a name Gitea could have, so I did not ask it about webhooks."
    desired = DesiredHook(webhook_url, None)
    try:
        async with asyncio.timeout(HOOK_CHECK_S), aiohttp.ClientSession() as session:
            client = GiteaClient(session, base_url, token)
            for target in targets:
                with contextlib.suppress(GiteaError):  # e.g. the owner is a user, not an org
                    if any(desired.is_ours(hook) for hook in await client.list_hooks(target)):
                        return f"Gitea already sends this {target.noun}'s events here."
    except TimeoutError:
        return "Gitea did not answer in time, so I could not check its webhooks."
    command = f"forge-notifier hooks install --{'org ' + owner if name == '*' else 'repo ' + spec}"
    return f"Gitea has no webhook pointing here for it yet: run `{command}` or add one in Gitea."
