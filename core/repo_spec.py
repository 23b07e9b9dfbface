"""Repository specs as users write them in `!subscribe`: `OWNER/NAME` or `OWNER/*`.

Gitea treats owner and repository names case-insensitively, so specs are compared in
lower case; the display form is kept as the user typed it.
"""

from __future__ import annotations

import re

_PART = r"[A-Za-z0-9_.-]+"
_SPEC = re.compile(rf"^({_PART})/({_PART}|\*)$")


class RepoSpecError(ValueError):
    """A spec that is neither `OWNER/NAME` nor `OWNER/*`."""


def normalise_spec(text: str) -> str:
    """Return the canonical (lower-case) form of a spec, or raise RepoSpecError."""
    match = _SPEC.match(text.strip())
    if not match:
        raise RepoSpecError(f"{text.strip()!r} is not OWNER/NAME or OWNER/*")
    return f"{match.group(1)}/{match.group(2)}".lower()


def specs_matching(repo_full_name: str) -> tuple[str, str]:
    """The two specs that cover a repository: itself and its owner's wildcard."""
    key = repo_full_name.lower()
    owner = key.split("/", 1)[0]
    return key, f"{owner}/*"
