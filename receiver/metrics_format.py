"""Which exposition format `GET /metrics` answers in, from a scraper's Accept header.

prometheus-client's `choose_encoder` trusts the header: `version=abc` makes it compare a
string with integers (a TypeError, so a 500), and whatever version is asked for is echoed
into the Content-Type. Here only a well-formed `version` reaches it, and anything it still
cannot handle falls back to the Prometheus text format, which every scraper reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, generate_latest

Encoder = Callable[[CollectorRegistry], bytes]
_VERSION = re.compile(r"^\s*version\s*=\s*(\d{1,3}(\.\d{1,3}){0,2})\s*$", re.IGNORECASE)
_MAX_ACCEPT = 1024


def _well_formed(media_range: str) -> bool:
    """A media range whose `version` parameter (if any) is dotted digits."""
    params = media_range.split(";")[1:]
    versions = [p for p in params if p.strip().lower().startswith("version")]
    return all(_VERSION.match(p) for p in versions)


def metrics_encoder(accept: str) -> tuple[Encoder, str]:
    """The encoder and Content-Type for `accept`; the text format when in doubt."""
    ranges = [part for part in accept[:_MAX_ACCEPT].split(",") if _well_formed(part)]
    try:
        return choose_encoder(",".join(ranges))
    except Exception:  # the library's parsing, not ours: never a 500 for a header
        return generate_latest, CONTENT_TYPE_PLAIN_0_0_4


def encode(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The scrape's body and Content-Type."""
    encoder, content_type = metrics_encoder(accept)
    try:
        return encoder(registry), content_type
    except (TypeError, ValueError):  # e.g. a version the library parses but cannot write
        return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
