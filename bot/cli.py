"""The `forge-notifier` command line: run, demo, check-config, send-test, hooks, events.

Exit codes: 0 success, 1 runtime failure (for `run`: also an unusable database, in one
line naming the file), 2 configuration error (with one line per variable to fix) or, for
`run`, a state directory another daemon holds. Secrets and tokens are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp

from bot import event_loop
from bot.app import serve
from bot.event_log import format_events, recent_events
from bot.gitea_hooks import (
    DEFAULT_EVENTS,
    DesiredHook,
    GiteaClient,
    GiteaError,
    Target,
    install_one,
    parse_targets,
    problems_for_hooks,
    summary,
)
from bot.login import HomeserverUnavailable, LoginError, log_in
from bot.supervision import BackgroundTaskFailed
from bot.systemd_notify import SystemdNotifier
from core import state_dir
from core.settings import ConfigError, Settings, load_settings
from core.state_dir import StateDirBusy
from core.store import Store
from core.store_failures import StoreUnusable

log = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_CONFIG = 2
GITEA_TIMEOUT = aiohttp.ClientTimeout(total=30)
CHECK_LOGIN_S = 30.0


def configure_logging(level: str) -> None:
    """Timestamps only outside journald, which stamps lines itself."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    # nio logs every room event at INFO; aiohttp's access log repeats ours.
    logging.getLogger("nio").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forge-notifier", description="Gitea/Forgejo/Gogs webhooks into Matrix rooms."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the daemon (receiver + Matrix bot)")
    demo = commands.add_parser("demo", help="try it all on a throwaway local homeserver")
    demo.add_argument("--once", action="store_true", help="exit after the sample push")
    commands.add_parser("check-config", help="validate configuration and log in once")
    send = commands.add_parser("send-test", help="post a signed sample push to the receiver")
    send.add_argument("repo", metavar="OWNER/NAME")
    send.add_argument("--url", help="receiver URL (default: the configured listen address)")
    _add_hooks_parser(commands)
    _add_events_parser(commands)
    return parser


def _add_hooks_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hooks = commands.add_parser("hooks", help="manage the webhooks on Gitea")
    actions = hooks.add_subparsers(dest="hooks_command", required=True)
    install = actions.add_parser(
        "install",
        help="create or update the webhook of repositories or organisations (idempotent)",
    )
    install.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="ORG",
        help="an organisation: its hook covers all its repositories, also future ones (repeatable)",
    )
    install.add_argument(
        "--repo",
        nargs="+",
        action="extend",
        default=[],
        metavar="OWNER/NAME",
        help="one or more repositories",
    )
    install.add_argument(
        "--events",
        default=",".join(DEFAULT_EVENTS),
        help="comma-separated Gitea hook events (default: %(default)s)",
    )
    install.add_argument(
        "--replace-url",
        action="append",
        default=[],
        metavar="URL",
        help="also take over hooks pointing at this old receiver address "
        "(after moving the notifier; repeatable)",
    )
    install.add_argument("--dry-run", action="store_true", help="show what would change")


def _add_events_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = commands.add_parser(
        "events", help="recent deliveries: did Gitea call us, and what became of it?"
    )
    events.add_argument("--repo", metavar="OWNER/NAME", help="only this repository")
    events.add_argument("--limit", type=int, default=20, metavar="N", help="default: 20")
    events.add_argument(
        "--state-dir", type=Path, help="the daemon's state directory (default: NOTIFIER_STATE_DIR)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        configure_logging(os.environ.get("NOTIFIER_LOG_LEVEL", "WARNING"))
        from bot.demo import run_demo

        return run_demo(once=args.once)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"forge-notifier: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level)
    handlers: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
        "run": _run,
        "check-config": _check_config,
        "send-test": _send_test,
        "hooks": _hooks_install,
        "events": _events,
    }
    return handlers[args.command](settings, args)


def _run(settings: Settings, _: argparse.Namespace) -> int:
    os.umask(os.umask(0o077) | 0o077)  # whatever the daemon creates is its user's alone
    warn_unsafe_settings(settings)
    try:
        with state_dir.exclusive(settings.state_dir):
            event_loop.run(_run_until_signalled(settings))
    except ConfigError as exc:
        print(f"forge-notifier: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateDirBusy as exc:
        print(f"forge-notifier: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnusable as exc:
        print(f"forge-notifier: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except LoginError as exc:
        print(f"forge-notifier: login refused: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BackgroundTaskFailed as exc:
        print(f"forge-notifier: stopped: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        print(f"forge-notifier: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def warn_unsafe_settings(settings: Settings) -> None:
    """At every start, not only in the docs: an operator reading the log must see it."""
    if not settings.allow_unsigned:
        return
    if settings.webhook_secret:
        log.warning(
            "NOTIFIER_ALLOW_UNSIGNED=true is set but has no effect: NOTIFIER_WEBHOOK_SECRET"
            " is set, so every webhook's signature is checked; remove the setting"
        )
    else:
        log.warning(
            "NOTIFIER_ALLOW_UNSIGNED=true: webhooks are accepted WITHOUT a signature; anyone"
            " who can reach the receiver can post to every subscribed room. Set"
            " NOTIFIER_WEBHOOK_SECRET unless this network is trusted and closed"
        )


async def _run_until_signalled(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop, SystemdNotifier.from_environ(os.environ))


def _check_config(settings: Settings, _: argparse.Namespace) -> int:
    problems = settings.problems_for_run()
    for name, value in sorted(settings.model_dump().items()):
        shown = "****" if value is not None and "Secret" in type(value).__name__ else value
        print(f"  NOTIFIER_{name.upper()} = {shown}")
    if problems:
        print("Problems:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_CONFIG
    print(f"Gitea must send webhooks to {settings.webhook_url}")
    return asyncio.run(_check_services(settings))


async def _check_services(settings: Settings) -> int:
    homeserver = await _check_login(settings)
    gitea = await _check_gitea(settings)
    return homeserver or gitea


async def _check_login(settings: Settings) -> int:
    """One bounded attempt: nio's default retries an unreachable homeserver for ever."""
    from nio import AsyncClient, AsyncClientConfig

    config = AsyncClientConfig(max_timeouts=0, max_limit_exceeded=0)
    client = AsyncClient(str(settings.homeserver), str(settings.user_id), config=config)
    try:
        async with asyncio.timeout(CHECK_LOGIN_S):
            how = await log_in(client, settings)
    except TimeoutError:  # before OSError, of which it is a subclass
        print(f"Homeserver check failed: no answer in {CHECK_LOGIN_S:.0f} s", file=sys.stderr)
        return EXIT_FAILURE
    except (LoginError, HomeserverUnavailable, aiohttp.ClientError, OSError) as exc:
        print(f"Homeserver check failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await client.close()
    print(f"Logged in to {settings.homeserver} as {settings.user_id} ({how}).")
    return 0


async def _check_gitea(settings: Settings) -> int:
    """The Gitea token is optional (hooks install); when set, prove that it works."""
    if not (settings.gitea_url and settings.gitea_token):
        print("Gitea API: not configured (NOTIFIER_GITEA_URL and NOTIFIER_GITEA_TOKEN unset).")
        return 0
    token = settings.gitea_token.get_secret_value()
    async with aiohttp.ClientSession(timeout=GITEA_TIMEOUT) as session:
        try:
            user = await GiteaClient(session, settings.gitea_url, token).current_user()
        except GiteaError as exc:
            print(f"Gitea check failed: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    print(f"Gitea API at {settings.gitea_url}: the token works (user {user}).")
    return 0


def _send_test(settings: Settings, args: argparse.Namespace) -> int:
    from bot.sample import post_delivery, send_test_delivery

    host = "127.0.0.1" if settings.listen_host in ("0.0.0.0", "::") else settings.listen_host
    url = args.url or f"http://{host}:{settings.listen_port}/webhook/gitea"
    delivery, nonce = send_test_delivery(args.repo, settings.secret)

    async def post() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as session:
            return await post_delivery(session, url, delivery)

    try:
        status, answer = asyncio.run(post())
    except (aiohttp.ClientError, OSError) as exc:
        print(f"Could not reach {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f'{url} → HTTP {status} {answer} (the room gets "forge-notifier send-test {nonce}")')
    return 0 if status in (200, 202) else EXIT_FAILURE


def _hooks_install(settings: Settings, args: argparse.Namespace) -> int:
    token = settings.gitea_token.get_secret_value() if settings.gitea_token else None
    problems = problems_for_hooks(settings.gitea_url, token, settings.public_url)
    if not settings.secret and not settings.allow_unsigned:
        problems.append("NOTIFIER_WEBHOOK_SECRET is required (it is set on every hook)")
    targets: list[Target] = []
    try:
        targets = parse_targets(args.repo, args.org)
    except ValueError as exc:
        problems.append(str(exc))
    if not (args.repo or args.org):
        problems.append("name at least one --repo OWNER/NAME or --org ORG")
    if problems:
        print("hooks install:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_CONFIG
    events = tuple(e.strip() for e in args.events.split(",") if e.strip())
    desired = DesiredHook(settings.webhook_url, settings.secret, events, tuple(args.replace_url))
    assert settings.gitea_url and token
    return asyncio.run(_install(settings.gitea_url, token, targets, desired, args.dry_run))


async def _install(
    gitea_url: str, token: str, targets: Sequence[Target], desired: DesiredHook, dry_run: bool
) -> int:
    """One progress line per target as it is done, then the summary; 1 if any failed."""
    mode = " (dry run: nothing is changed)" if dry_run else ""
    print(f"Webhook → {desired.url}, events: {', '.join(desired.events)}{mode}", flush=True)
    outcomes = []
    async with aiohttp.ClientSession(timeout=GITEA_TIMEOUT) as session:
        client = GiteaClient(session, gitea_url, token)
        for target in targets:
            outcome = await install_one(client, target, desired, dry_run)
            print(outcome.line(dry_run), flush=True)
            outcomes.append(outcome)
    print(summary(outcomes, dry_run))
    return EXIT_FAILURE if any(o.action == "failed" for o in outcomes) else 0


def _events(settings: Settings, args: argparse.Namespace) -> int:
    if args.limit < 1:
        print("events: --limit must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    path = (args.state_dir or settings.state_dir) / settings.database_path.name

    async def read() -> list[str]:
        store = Store(path)
        await store.open_read_only()
        try:
            return format_events(await recent_events(store, args.limit, args.repo))
        finally:
            await store.close()

    try:
        lines = asyncio.run(read())
    except (OSError, RuntimeError, sqlite3.Error) as exc:
        print(f"events: {exc} (is NOTIFIER_STATE_DIR or --state-dir right?)", file=sys.stderr)
        return EXIT_FAILURE
    print("\n".join(lines))
    return 0
