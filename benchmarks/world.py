"""What every benchmark phase stands on: a throwaway Synapse, accounts, rooms, subscriptions.

The rooms are created by the second Matrix user (the "driver", like a person in Element);
the bot joins them once with a short-lived session before the daemon starts, and the
subscriptions are written into the daemon's store through `core.store.Store` — the
same code `!subscribe` runs — so 1,000 of them take a second, not 2,000 chat messages.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nio import AsyncClient, AsyncClientConfig, JoinResponse, LoginResponse

from bot.local_synapse import LocalSynapse, RegisteredUser
from core.settings import Settings
from core.store import Store


@dataclass(frozen=True)
class Accounts:
    bot: RegisteredUser  # the daemon measured for latency, burst and memory
    intake_bot: RegisteredUser  # the daemon measured for intake (its own state)
    driver: RegisteredUser  # the second Matrix user who watches the rooms
    peer: RegisteredUser  # matrix-webhook's account


def register_accounts(synapse: LocalSynapse) -> Accounts:
    def user(name: str) -> RegisteredUser:
        return synapse.register(name, secrets.token_hex(8))

    return Accounts(user("notifier"), user("notifier-intake"), user("bench"), user("peer"))


async def join_rooms(homeserver: str, account: RegisteredUser, rooms: Iterable[str]) -> None:
    """Join `rooms` as `account` from a throwaway device, then log that device out."""
    client = AsyncClient(
        homeserver,
        account.user_id,
        config=AsyncClientConfig(store_sync_tokens=False, encryption_enabled=False),
    )
    try:
        login = await client.login(account.password, device_name="bench-setup")
        if not isinstance(login, LoginResponse):
            raise RuntimeError(f"login of {account.user_id} failed: {login}")
        for room in rooms:
            joined = await client.join(room)
            if not isinstance(joined, JoinResponse):
                raise RuntimeError(f"{account.user_id} could not join {room}: {joined}")
        await client.logout()
    finally:
        await client.close()


def database_path(state_dir: Path) -> Path:
    """Where `forge-notifier run` keeps its SQLite file for this state directory."""
    return Settings.model_construct(state_dir=state_dir).database_path


async def seed_subscriptions(
    state_dir: Path, subscriptions: Iterable[tuple[str, str]], created_by: str
) -> int:
    """Write (room, repo) subscriptions into the daemon's store before it starts."""
    store = Store(database_path(state_dir))
    await store.open()
    count = 0
    try:
        for room, repo in subscriptions:
            await store.subscribe(room, repo, created_by)
            count += 1
    finally:
        await store.close()
    return count


def filler_subscriptions(count: int, server_name: str) -> list[tuple[str, str]]:
    """Subscriptions of repositories that get no pushes here, in rooms of their own.

    They make the store hold as many subscriptions as a large install does; the rooms
    need not exist, since nothing is ever posted to them.
    """
    return [(f"!filler{i % 200:03d}:{server_name}", f"filler/repo-{i:04d}") for i in range(count)]
