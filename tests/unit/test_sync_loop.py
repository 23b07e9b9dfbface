"""bot/sync_loop.py with a scripted client and a real store: the position is stored after
each sync and a start resumes from it, so a quick restart is not handed old answers again."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from nio import AsyncClient, SyncError

from bot.sync_loop import CATCH_UP_MAX_AGE_S, POSITION_KEY, Phase, SyncLoop
from core.store import Store

NOW = 4_000_000_000.0


@dataclass
class SyncCall:
    since: str | None
    full_state: bool | None
    timeout: int | None
    phase: Phase  # the loop's phase while the sync (and nio's callbacks) ran
    answers_recent: bool
    answers_old: bool


@dataclass
class FakeSyncClient:
    """Hands out positions t1, t2, … like a homeserver; `refuse` answers 400 to a since."""

    loop: SyncLoop | None = None
    calls: list[SyncCall] = field(default_factory=list)
    next_batch: str = ""
    olm: Any = None
    refuse: set[str] = field(default_factory=set)

    async def sync(
        self,
        timeout: int | None = 0,
        sync_filter: Any = None,
        since: str | None = None,
        full_state: bool | None = None,
    ) -> Any:
        assert self.loop is not None
        recent, old = NOW * 1000 - 5_000, (NOW - CATCH_UP_MAX_AGE_S - 60) * 1000
        self.calls.append(
            SyncCall(
                since or self.next_batch or None,
                full_state,
                timeout,
                self.loop.phase,
                self.loop.answers(int(recent)),
                self.loop.answers(int(old)),
            )
        )
        if since in self.refuse:
            error = SyncError("Invalid stream token", "M_UNKNOWN")
            error.transport_response = SimpleNamespace(status=400)  # type: ignore[assignment]
            return error
        self.next_batch = f"t{len(self.calls)}"
        return SimpleNamespace(next_batch=self.next_batch)


def make_loop(store: Store) -> tuple[SyncLoop, FakeSyncClient]:
    client = FakeSyncClient()
    loop = SyncLoop(cast(AsyncClient, client), store, clock=lambda: NOW)
    client.loop = loop
    return loop, client


async def sync_twice(loop: SyncLoop) -> None:
    """The first sync of a run, then one live one (what `run` does, without its loop)."""
    assert await loop._sync_once(first=True)
    loop.live.set()
    assert await loop._sync_once(first=False)


async def test_without_a_stored_position_the_first_sync_is_history(store: Store) -> None:
    loop, client = make_loop(store)
    await sync_twice(loop)
    first, second = client.calls
    assert (first.since, first.full_state, first.timeout) == (None, True, 0)
    assert first.phase is Phase.HISTORY
    assert (first.answers_recent, first.answers_old) == (False, False)
    assert (second.since, second.full_state, second.phase) == ("t1", False, Phase.LIVE)
    assert second.answers_old  # live: every command is new
    assert await store.sync_value(POSITION_KEY) == "t2"  # stored after each sync
    assert not loop.answers(int(NOW * 1000))  # between syncs nothing is answered


async def test_a_restart_resumes_from_the_stored_position_with_full_state(store: Store) -> None:
    before, _ = make_loop(store)
    await sync_twice(before)
    after, client = make_loop(store)  # a new process on the same store
    await sync_twice(after)
    first = client.calls[0]
    # Not since=None: that request is what Synapse answered the previous run, from its cache.
    assert (first.since, first.full_state, first.timeout) == ("t2", True, 0)
    assert first.phase is Phase.CATCH_UP
    # What arrived while the bot was away is answered, unless nobody waits for it any more.
    assert (first.answers_recent, first.answers_old) == (True, False)
    assert await store.sync_value(POSITION_KEY) == "t2"  # this client's second position


async def test_a_refused_position_is_forgotten_and_the_next_start_is_history(
    store: Store,
) -> None:
    await store.set_sync_value(POSITION_KEY, "from-another-server")
    loop, client = make_loop(store)
    client.refuse = {"from-another-server"}
    assert not await loop._sync_once(first=True)
    assert await store.sync_value(POSITION_KEY) is None
    assert await loop._sync_once(first=True)
    assert [(c.since, c.phase) for c in client.calls] == [
        ("from-another-server", Phase.CATCH_UP),
        (None, Phase.HISTORY),
    ]


async def test_an_in_process_restart_continues_from_nios_position(store: Store) -> None:
    loop, client = make_loop(store)
    assert await loop._sync_once(first=True)
    await store.set_sync_value(POSITION_KEY, "stale")  # nio's own position is newer
    assert await loop._sync_once(first=True)  # the sync task died and starts again
    assert client.calls[1].since == "t1"
