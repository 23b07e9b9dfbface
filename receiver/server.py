"""How the HTTP server itself treats slow, half-sent and malformed requests.

aiohttp's defaults suit an application behind a reverse proxy: an idle connection is kept
for 3,630 s and nothing bounds the time to send a request head. Facing the network (or a
proxy that buffers nothing), a client that sends half a head holds a connection for an
hour. Here, as nginx and Caddy do:

- the head must arrive within `head_timeout_s`: aiohttp's keep-alive timer runs from the
  connection's start (and from each answer) and closes a connection that is still waiting
  for a complete head when it fires, so it is the head timeout as well as the idle one;
- the body must arrive within the webhook handler's body timeout (`WebhookConfig`);
- a body left unread after an answer (a refusal) is drained for `lingering_s` at most;
- bodies are not decompressed by aiohttp: the handler refuses any `Content-Encoding`
  (Gitea never compresses), so no compressed bomb is ever inflated.

Errors aiohttp meets before a handler runs (a bad request line, an oversized header) are
logged through `ProtocolLog`: one rate-limited line each, no traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from receiver.refusal_log import RefusalLog, printable

log = logging.getLogger(__name__)

REFUSALS = web.AppKey("refusals", RefusalLog)
_SERVER_ERRORS_PER_WINDOW = 5


@dataclass(frozen=True)
class ServerLimits:
    head_timeout_s: float = 10.0  # also the idle keep-alive timeout (see the module doc)
    lingering_s: float = 2.0
    max_line_size: int = 8190  # request line and each header line, as aiohttp's default
    max_field_size: int = 8190


class ProtocolLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Stands in for aiohttp's `aiohttp.server` logger in its request handler.

    A malformed request is the client's fault: a refusal, one line through `RefusalLog`.
    Anything else aiohttp reports (an exception escaping a handler: a bug) keeps its
    traceback, but only the first few per minute; the rest are counted as 500s.
    """

    def __init__(self, refusals: RefusalLog, server_errors: RefusalLog) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._refusals = refusals
        self._server_errors = server_errors

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            remote = args[0] if args else "?"
            self._refusals.refused(
                exc_info.code or 400,
                "request from %s refused: %d %s",
                remote,
                exc_info.code or 400,
                printable(" ".join(exc_info.message.split())),
            )
            return
        self._server_errors.refused(500, str(msg), *args, exc_info=exc_info)


def server_error_log() -> RefusalLog:
    """Rate-limited ERROR lines with tracebacks, for what aiohttp calls unhandled."""
    return RefusalLog(
        logging.getLogger("aiohttp.server"),
        lines_per_window=_SERVER_ERRORS_PER_WINDOW,
        level=logging.ERROR,
        what="requests failed",
    )


def runner_options(app: web.Application, limits: ServerLimits | None = None) -> dict[str, Any]:
    """Keyword arguments for `web.AppRunner` (they reach aiohttp's per-connection handler).

    An unknown name would make aiohttp drop *all* of them silently, so keep to its own.
    """
    limits = limits or ServerLimits()
    refusals = app.get(REFUSALS) or RefusalLog(log)
    return {
        "access_log": None,
        "keepalive_timeout": limits.head_timeout_s,
        "lingering_time": limits.lingering_s,
        "max_line_size": limits.max_line_size,
        "max_field_size": limits.max_field_size,
        "auto_decompress": False,
        "logger": ProtocolLog(refusals, server_error_log()),
    }
