"""The shape of every message the bot posts; only the sender and replies use it."""

from __future__ import annotations

from html import escape
from typing import Any


def notice_content(body: str, html: str) -> dict[str, Any]:
    """An `m.notice` with HTML; `m.mentions: {}` so forge text such as `@room` pings nobody."""
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
        "m.mentions": {},
    }


def text_to_html(text: str) -> str:
    """Plain reply text as HTML: escaped, line breaks kept."""
    return "<br>".join(escape(line) for line in text.split("\n"))
