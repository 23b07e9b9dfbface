"""The encryption policy's decisions, without a homeserver."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bot.encryption import SHARE_WITH_ALL, SHARE_WITH_HOMESERVER, apply_share_policy, e2e_status


def test_encryption_is_on_when_wanted_and_available() -> None:
    assert e2e_status(True).enabled  # vodozemac is a runtime dependency
    off = e2e_status(False)
    assert (off.enabled, off.reason) == (False, "turned off by NOTIFIER_ENCRYPTION=false")


class FakeClient:
    def __init__(self, members: list[str]) -> None:
        self.user_id = "@notifier:example.org"
        self.olm = object()
        self.rooms = {"!r:x": SimpleNamespace(users={m: None for m in members})}
        self.devices = {m: [SimpleNamespace(user_id=m, blacklisted=False)] for m in members}
        self.device_store = SimpleNamespace(active_user_devices=lambda u: self.devices[u])
        self.blacklisted: list[str] = []

    def blacklist_device(self, device: Any) -> bool:
        self.blacklisted.append(device.user_id)
        device.blacklisted = True
        return True


def test_homeserver_policy_keeps_keys_from_other_servers() -> None:
    client = FakeClient(["@alice:example.org", "@mallory:elsewhere.net"])
    apply_share_policy(client, "!r:x", SHARE_WITH_HOMESERVER)  # type: ignore[arg-type]
    assert client.blacklisted == ["@mallory:elsewhere.net"]
    apply_share_policy(client, "!r:x", SHARE_WITH_HOMESERVER)  # type: ignore[arg-type]
    assert client.blacklisted == ["@mallory:elsewhere.net"]  # once is enough


def test_default_policy_shares_with_every_member() -> None:
    client = FakeClient(["@alice:example.org", "@bob:elsewhere.net"])
    apply_share_policy(client, "!r:x", SHARE_WITH_ALL)  # type: ignore[arg-type]
    assert client.blacklisted == []
