"""Escaping and cutting of forge text: everything that came from outside passes through here."""

from __future__ import annotations

from html import escape

TITLE_LIMIT = 72
# Names (repositories, people, branches, tags) longer than this are cut: a forge may send a
# 1 MB ref, and one field must not take a message's whole byte budget (formatters.budget).
NAME_LIMIT = 200
# Longer URLs are not shown at all: a cut URL would lead nowhere.
URL_LIMIT = 2_048


def esc(text: str) -> str:
    """HTML-escape text from the forge, quotes included (it may land in attributes)."""
    return escape(text, quote=True)


def cut(text: str, limit: int = TITLE_LIMIT) -> str:
    """Cut to `limit` characters with an ellipsis, so one commit cannot fill a screen."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clip(text: str, limit: int = NAME_LIMIT) -> str:
    """Cut a name to `limit` characters with an ellipsis; unlike `cut`, spacing is kept."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: str) -> str | None:
    """Only http(s) URLs become links (a `javascript:` URL from a payload must not), and
    only those of a sane length."""
    ok = url.startswith(("https://", "http://")) and len(url) <= URL_LIMIT
    return url if ok else None


def link(url: str, label_html: str) -> str:
    """An <a> around already-escaped label HTML, or the bare label when the URL is unsafe."""
    href = safe_url(url)
    return f'<a href="{esc(href)}">{label_html}</a>' if href else label_html
