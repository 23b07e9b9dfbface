"""Extracting the signed payload from a request body, for both content types Gitea offers.

JSON: the signature covers the raw bytes, which are used as they are (never re-serialised).
Form: the body is `payload=<url-encoded JSON>` and the signature covers the decoded JSON.
"""

from __future__ import annotations

from urllib.parse import parse_qs

JSON_TYPES = frozenset({"application/json"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded"})
ACCEPTED_TYPES = JSON_TYPES | FORM_TYPES


def media_type(header: str) -> str:
    """The `type/subtype` of a Content-Type header, lower-case, parameters dropped.

    Parsed here rather than by aiohttp, whose parser (the stdlib email package) raises on
    some malformed parameters (e.g. `;0*`) and would turn junk into a 500.
    """
    return header.split(";", 1)[0].strip().lower()


class BodyError(ValueError):
    """The body cannot carry a payload; the message is short and safe to return."""


def signed_payload(content_type: str, raw: bytes) -> bytes:
    """The bytes the forge signed, which are also the payload's JSON text."""
    if content_type in JSON_TYPES:
        return raw
    if content_type in FORM_TYPES:
        return _form_payload(raw)
    raise BodyError(f"unsupported content type {content_type!r}")


def _form_payload(raw: bytes) -> bytes:
    try:
        fields = parse_qs(raw.decode("utf-8"), strict_parsing=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise BodyError("form body is not valid url-encoded UTF-8") from None
    values = fields.get("payload")
    if not values or len(values) != 1:
        raise BodyError("form body has no single 'payload' field")
    return values[0].encode("utf-8")
