"""Repository specs as users write them in `!subscribe`: `OWNER/NAME` or `OWNER/*`.

Gitea treats owner and repository names case-insensitively, so specs are compared in
lower case; the display form is kept as the user typed it.

Every name segment is checked here, for chat commands and `hooks install` alike: a spec's
segments end up in Gitea API paths (`/api/v1/repos/OWNER/NAME/hooks`), where `..` would
climb out of the repository (`!subscribe ../admin` reached `/api/v1/admin/hooks` with the
operator's token). So `.`, `..`, empty segments and leading dots are refused outright.
"""

from __future__ import annotations

import re

# Letters, digits, `_`, `-` and `.`, not first: that also rules out `.` and `..`.
_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
SHOWN = 60  # how much of a refused spec a reply quotes


class RepoSpecError(ValueError):
    """A spec that is neither `OWNER/NAME` nor `OWNER/*`, or a name that is not one."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN else text[:SHOWN] + "…")


def check_name(segment: str) -> str:
    """Return one owner, organisation or repository name as given, or raise RepoSpecError."""
    if not segment:
        raise RepoSpecError("an empty name (nothing between the slashes)")
    if segment in (".", ".."):
        raise RepoSpecError(f"{segment!r} is not a name")
    if segment.startswith("."):
        raise RepoSpecError(f"{_shown(segment)}: a name cannot start with a dot")
    if not _SEGMENT.match(segment):
        raise RepoSpecError(f"{_shown(segment)}: only letters, digits, '_', '-' and '.'")
    return segment


def _names(text: str, wildcard: bool) -> list[str]:
    """The two names of `OWNER/NAME` (NAME may be `*` when `wildcard`), each checked."""
    names = text.split("/")
    for position, name in enumerate(names):
        if not (wildcard and position == 1 and name == "*"):
            check_name(name)
    if len(names) != 2:
        raise RepoSpecError("an owner and a name, with exactly one '/' between them")
    return names


def check_repo_name(text: str) -> str:
    """`OWNER/NAME` with both names valid (no wildcard), as given; else RepoSpecError."""
    try:
        _names(text, wildcard=False)
    except RepoSpecError as exc:
        raise RepoSpecError(f"{_shown(text)} is not OWNER/NAME: {exc}") from None
    return text


def normalise_spec(text: str) -> str:
    """Return the canonical (lower-case) form of a spec, or raise RepoSpecError."""
    spec = text.strip()
    try:
        _names(spec, wildcard=True)
    except RepoSpecError as exc:
        raise RepoSpecError(f"{_shown(spec)} is not OWNER/NAME or OWNER/*: {exc}") from None
    return spec.lower()


def specs_matching(repo_full_name: str) -> tuple[str, str]:
    """The two specs that cover a repository: itself and its owner's wildcard."""
    key = repo_full_name.lower()
    owner = key.split("/", 1)[0]
    return key, f"{owner}/*"
