"""HMAC-SHA256 webhook signatures as Gitea, Forgejo, Gogs and GitHub send them.

Gitea sends the same digest under several headers: bare lower-case hex in
`X-Gitea-Signature` / `X-Forgejo-Signature` / `X-Gogs-Signature`, and `sha256=`-prefixed
in `X-Hub-Signature-256`. With no secret configured on the forge, the headers are still
sent, empty: an empty signature never verifies.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping

BARE_HEX_HEADERS = ("X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature")
PREFIXED_HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


class SignatureCheck(enum.Enum):
    VALID = "valid"
    MISSING = "missing"
    MISMATCH = "mismatch"


def sign(secret: str, signed: bytes) -> str:
    """The bare hex digest the forge puts in `X-Gitea-Signature`."""
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def presented_signatures(headers: Mapping[str, str]) -> list[str]:
    """Every non-empty digest the request carries, prefix removed."""
    found = [headers.get(name, "").strip() for name in BARE_HEX_HEADERS]
    prefixed = headers.get(PREFIXED_HEADER, "").strip()
    if prefixed.lower().startswith(PREFIX):
        found.append(prefixed[len(PREFIX) :])
    return [value.lower() for value in found if value]


def verify(secret: str, signed: bytes, headers: Mapping[str, str]) -> SignatureCheck:
    """Check the request's signatures against the digest of `signed`, in constant time."""
    presented = presented_signatures(headers)
    if not presented:
        return SignatureCheck.MISSING
    expected = sign(secret, signed).encode()
    # Compare every presented value (no early exit) so timing says nothing either.
    matches = [hmac.compare_digest(expected, value.encode()) for value in presented]
    return SignatureCheck.VALID if any(matches) else SignatureCheck.MISMATCH
