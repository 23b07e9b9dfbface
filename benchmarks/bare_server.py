"""The intake limit: a bare aiohttp handler that reads the body and answers 202, nothing else.

Same aiohttp, same event loop policy and the same `access_log=None` as the daemon, so the
gap between the two is what the daemon does per request (verify, parse, commit, route).

    python -m benchmarks.bare_server PORT
"""

from __future__ import annotations

import sys

from aiohttp import web

from bot.event_loop import loop_factory


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "accepted"}, status=202)


def main() -> None:
    app = web.Application(client_max_size=5 * 1024 * 1024)
    app.router.add_post("/webhook/gitea", accept)
    factory = loop_factory()  # the daemon's loop: uvloop where installed
    loop = factory() if factory else None
    web.run_app(
        app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop
    )


if __name__ == "__main__":
    main()
