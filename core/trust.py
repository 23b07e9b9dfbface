"""Who may see private repositories: NOTIFIER_ADMINS and NOTIFIER_TRUSTED_USERS.

A subscription is *trusted* when its author is an admin or matches a trusted-user entry
(an exact MXID or an fnmatch-style glob such as `@*:example.org`). Matching is
case-sensitive, as MXIDs are; a glob is only a glob when it has `*`, `?` or `[`, so a
plain MXID can never match more than itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class TrustPolicy:
    """The operator's lists, checked per user; the empty policy trusts nobody."""

    admins: frozenset[str] = frozenset()
    trusted_users: tuple[str, ...] = ()

    @classmethod
    def of(cls, admins: Iterable[str], trusted_users: Iterable[str] = ()) -> TrustPolicy:
        return cls(frozenset(admins), tuple(trusted_users))

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def is_trusted(self, user_id: str) -> bool:
        """Admins, and users named (or matched by a glob) in NOTIFIER_TRUSTED_USERS."""
        return self.is_admin(user_id) or any(
            _matches(user_id, entry) for entry in self.trusted_users
        )


def _matches(user_id: str, entry: str) -> bool:
    if _GLOB_CHARS.isdisjoint(entry):
        return user_id == entry
    return fnmatchcase(user_id, entry)
