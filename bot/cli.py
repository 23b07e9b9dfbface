"""The `forge-notifier` command line: run, demo, check-config, send-test.

Exit codes: 0 success, 1 runtime failure, 2 configuration error (with one line per
variable to fix).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

import aiohttp

from bot.app import serve
from bot.login import HomeserverUnavailable, LoginError, log_in
from bot.supervision import BackgroundTaskFailed
from core.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_CONFIG = 2


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
    return parser


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
    handlers = {"run": _run, "check-config": _check_config, "send-test": _send_test}
    return handlers[args.command](settings, args)


def _run(settings: Settings, _: argparse.Namespace) -> int:
    try:
        asyncio.run(_run_until_signalled(settings))
    except ConfigError as exc:
        print(f"forge-notifier: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
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


async def _run_until_signalled(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)


def _check_config(settings: Settings, _: argparse.Namespace) -> int:
    problems = settings.problems_for_run()
    for name, value in sorted(settings.model_dump().items()):
        shown = "****" if value is not None and "Secret" in type(value).__name__ else value
        print(f"  NOTIFIER_{name.upper()} = {shown}")
    if problems:
        print("Problems:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_check_login(settings))


async def _check_login(settings: Settings) -> int:
    from nio import AsyncClient

    client = AsyncClient(str(settings.homeserver), str(settings.user_id))
    try:
        how = await log_in(client, settings)
    except (LoginError, HomeserverUnavailable, aiohttp.ClientError, OSError) as exc:
        print(f"Homeserver check failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        await client.close()
    print(f"Logged in to {settings.homeserver} as {settings.user_id} ({how}).")
    return 0


def _send_test(settings: Settings, args: argparse.Namespace) -> int:
    from bot.sample import post_delivery, sample_push, sign_delivery

    host = "127.0.0.1" if settings.listen_host in ("0.0.0.0", "::") else settings.listen_host
    url = args.url or f"http://{host}:{settings.listen_port}/webhook/gitea"
    secret = settings.secret
    delivery = sign_delivery(sample_push(args.repo, message="forge-notifier send-test"), secret)

    async def post() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as session:
            return await post_delivery(session, url, delivery)

    try:
        status, answer = asyncio.run(post())
    except (aiohttp.ClientError, OSError) as exc:
        print(f"Could not reach {url}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{url} → HTTP {status} {answer}")
    return 0 if status in (200, 202) else EXIT_FAILURE
