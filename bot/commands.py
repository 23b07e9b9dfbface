"""Chat commands: `!subscribe`, `!unsubscribe`, `!subscriptions`, `!health`, `!help`.

Every command gets a reply: a confirmation, a one-line reason for a refusal, or a hint
for anything unknown or malformed; a reply never echoes an argument longer than a name can
be, and never outgrows a few KB (bot/command_limit.py). A command runs at most once: its
event id is recorded before it runs, and one already recorded is skipped. A sender over
the rate limit gets one "slow down", then silence for the window.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nio import MatrixRoom, RoomMessageText

from bot.command_limit import CommandRateLimit, Verdict, cap_reply, too_long_argument
from bot.command_registry import COMMANDS, command, help_text
from bot.health import HealthScope
from bot.permissions import PermissionChecker
from core.events import CATEGORIES, DEFAULT_CATEGORIES
from core.filters import FilterError, describe, parse_events
from core.records import Subscription
from core.repo_spec import RepoSpecError, normalise_spec
from core.store import Store, SubscribeResult
from core.trust import TrustPolicy

log = logging.getLogger(__name__)

Reply = Callable[[str, str], Awaitable[None]]  # (room_id, text)
Claim = Callable[[str, str], Awaitable[bool]]  # (event_id, room_id) → first time seen
Answers = Callable[[int], bool]  # origin_server_ts (ms) → whether to answer it


@dataclass(frozen=True)
class CommandContext:
    room_id: str
    sender: str
    store: Store
    webhook_url: str
    health_text: Callable[[HealthScope], Awaitable[str]]
    # With a Gitea token: whether Gitea already calls us for a spec, in one sentence.
    webhook_note: Callable[[str], Awaitable[str]] | None = None
    # Who is trusted with private repositories, and who is an admin (scoped !health).
    trust: TrustPolicy = field(default_factory=TrustPolicy)


@dataclass(frozen=True)
class SubscribeRequest:
    spec: str
    branch_glob: str | None = None
    events: str | None = None


def _spec(text: str, usage: str) -> str:
    try:
        return normalise_spec(text)
    except RepoSpecError as exc:
        raise ValueError(f"{exc}. Usage: {usage}") from None


def _parse_subscribe(args: list[str], usage: str) -> SubscribeRequest:
    """`OWNER/NAME [--branch GLOB] [--events KIND,...]`; ValueError carries the reply."""
    positional: list[str] = []
    options: dict[str, str] = {}
    tokens = iter(args)
    for token in tokens:
        if not token.startswith("--"):
            positional.append(token)
            continue
        name, has_value, value = token[2:].partition("=")
        value = value if has_value else next(tokens, "")
        if name not in ("branch", "events"):
            raise ValueError(f"Unknown option --{name[:40]}. Usage: {usage}")
        if not value or value.startswith("--") or len(value) > 200:
            raise ValueError(f"--{name} needs a value. Usage: {usage}")
        options[name] = value
    if len(positional) != 1:
        raise ValueError(f"Usage: {usage}")
    try:
        events = parse_events(options["events"]) if "events" in options else None
    except FilterError as exc:
        raise ValueError(f"{exc}. Usage: {usage}") from None
    return SubscribeRequest(_spec(positional[0], usage), options.get("branch"), events)


def _one_spec(args: list[str], usage: str) -> str:
    if len(args) != 1 or args[0].startswith("--"):
        raise ValueError(f"Usage: {usage}")
    return _spec(args[0], usage)


@command(
    "subscribe",
    "!subscribe OWNER/NAME [--branch GLOB] [--events KIND,...]",
    "post this repository's events here (OWNER/* for a whole organisation). Default events: "
    f"{', '.join(c for c in CATEGORIES if c in DEFAULT_CATEGORIES)}; also: "
    f"{', '.join(c for c in CATEGORIES if c not in DEFAULT_CATEGORIES)}",
    privileged=True,
)
async def subscribe(ctx: CommandContext, args: list[str]) -> str:
    request = _parse_subscribe(args, COMMANDS["subscribe"].usage)
    before = await _subscription(ctx, request.spec)
    result = await ctx.store.subscribe(
        ctx.room_id,
        request.spec,
        ctx.sender,
        request.branch_glob,
        request.events,
        trusted=ctx.trust.is_trusted(ctx.sender),
    )
    current = await _subscription(ctx, request.spec)
    assert current is not None  # just written, under this room's own command
    reply = await _subscribe_reply(ctx, request.spec, result, current, before)
    return reply + _trust_note(current, before)


async def _subscription(ctx: CommandContext, spec: str) -> Subscription | None:
    return next((s for s in await ctx.store.subscriptions(ctx.room_id) if s.repo == spec), None)


async def _subscribe_reply(
    ctx: CommandContext,
    spec: str,
    result: SubscribeResult,
    current: Subscription,
    before: Subscription | None,
) -> str:
    if result is SubscribeResult.UNCHANGED:
        return f"This room is already subscribed to {spec} ({describe(current)})."
    if result is SubscribeResult.UPDATED:
        if before is not None and _same_filters(before, current):  # only its trust changed
            return f"This room's subscription to {spec} now includes private repositories."
        return f"Updated this room's subscription to {spec}: {describe(current)}."
    reply = (
        f"Subscribed this room to {spec} ({describe(current)}). Gitea must send its "
        f"webhook to {ctx.webhook_url} (content type application/json, with the shared secret)."
    )
    # The note asks Gitea with the operator's token: it would tell anyone whether a private
    # repository exists and is hooked up, so only trusted subscribers get it.
    if ctx.webhook_note is not None and current.trusted:
        reply += " " + await ctx.webhook_note(spec)
    return reply


def _same_filters(one: Subscription, other: Subscription) -> bool:
    return (one.branch_glob, one.events) == (other.branch_glob, other.events)


def _trust_note(current: Subscription, before: Subscription | None) -> str:
    """One line when the room sees public repositories only, and how to change that."""
    if current.trusted:
        return ""
    lead = (
        "Your change made this subscription public only"
        if before is not None and before.trusted
        else "This room will see public repositories only"
    )
    return (
        f"\n{lead}: you are not in NOTIFIER_ADMINS or NOTIFIER_TRUSTED_USERS. An admin"
        " re-running this !subscribe, or the operator adding you to NOTIFIER_TRUSTED_USERS,"
        " includes private ones."
    )


@command(
    "unsubscribe",
    "!unsubscribe OWNER/NAME",
    "stop posting that repository's events here",
    privileged=True,
)
async def unsubscribe(ctx: CommandContext, args: list[str]) -> str:
    spec = _one_spec(args, COMMANDS["unsubscribe"].usage)
    result = await ctx.store.unsubscribe(ctx.room_id, spec)
    if result is None:
        return f"This room is not subscribed to {spec}. See !subscriptions."
    reply = f"Unsubscribed this room from {spec}."
    if result.dropped_held:
        reply += f" {result.dropped_held} event(s) held back by the rate limit will not be posted."
    return reply


@command("subscriptions", "!subscriptions", "list this room's subscriptions")
async def subscriptions(ctx: CommandContext, args: list[str]) -> str:
    subs = await ctx.store.subscriptions(ctx.room_id)
    if not subs:
        return "This room has no subscriptions. Add one with !subscribe OWNER/NAME."
    lines = [f"This room follows {len(subs)} subscription(s):"]
    for sub in subs:
        since = datetime.fromtimestamp(sub.created_at, UTC).strftime("%Y-%m-%d")
        scope = "" if sub.trusted else ", public only"
        lines.append(f"• {sub.repo} — {describe(sub)}{scope} (added {since} by {sub.created_by})")
    return "\n".join(lines)


@command("health", "!health", "how the notifier is doing: homeserver link, queue, deliveries")
async def health(ctx: CommandContext, args: list[str]) -> str:
    """This room's business; other rooms and signature-failure details only for admins."""
    return await ctx.health_text(HealthScope(ctx.room_id, ctx.trust.is_admin(ctx.sender)))


@command("help", "!help", "this list")
async def help_(ctx: CommandContext, args: list[str]) -> str:
    return help_text()


class CommandRouter:
    """The nio callback for room messages: dedup, rate-limit, parse, check, run, reply."""

    def __init__(
        self,
        bot_user_id: str,
        permissions: PermissionChecker,
        make_context: Callable[[str, str], CommandContext],
        reply: Reply,
        answers: Answers,
        claim: Claim,
        limit: CommandRateLimit | None = None,
    ) -> None:
        """`answers` tells history (not answered) from new commands by their send time;
        `claim` records a command's event id, False if it was handled already."""
        self._bot = bot_user_id
        self._permissions = permissions
        self._make_context = make_context
        self._reply = reply
        self._answers = answers
        self._claim = claim
        self._limit = limit or CommandRateLimit()

    async def on_message(self, room: MatrixRoom, event: RoomMessageText) -> None:
        if event.sender == self._bot or not self._answers(event.server_timestamp):
            return
        text = event.body.strip()
        if not text.startswith("!"):
            return
        if not await self._claim(event.event_id, room.room_id):
            log.info("command %s in %s was handled already; skipped", event.event_id, room.room_id)
            return
        verdict = self._limit.check(event.sender)
        if verdict is Verdict.SILENT:
            return
        if verdict is Verdict.SLOW_DOWN:
            log.info("%s is over the command rate limit; silent for a while", event.sender)
            answer = self._limit.slow_down_text()
        else:
            answer = await self.answer(room, event.sender, text)
        await self._reply(room.room_id, cap_reply(answer))

    async def answer(self, room: MatrixRoom, sender: str, text: str) -> str:
        name, *args = text[1:].split() or [""]
        cmd = COMMANDS.get(name.lower())
        if cmd is None:
            return f"Unknown command !{name[:40]}. Try !help."
        if (length := too_long_argument(args)) is not None:
            return f"An argument of {length:,} characters is too long. Usage: {cmd.usage}"
        if cmd.privileged:
            verdict = await self._permissions.check(room, sender)
            if not verdict.allowed:
                return (
                    f"!{cmd.name} needs power level {self._permissions.required_level} "
                    f"in this room (you have {verdict.level})."
                )
        try:
            return await cmd.handler(self._make_context(room.room_id, sender), args)
        except ValueError as exc:
            return str(exc)
