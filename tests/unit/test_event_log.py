"""`forge-notifier events` and the store's intake log: what an operator reads when a
notice did not arrive."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cli import main
from core import diagnostics
from core.diagnostics import IntakeEntry, RoomPost
from core.records import NewDelivery, NewMessage
from core.store import INTAKE_LOG_MAX_ROWS, Store
from tests.unit.routing import route_delivery

ROOM_A = "!a:example.org"
ROOM_B = "!b:example.org"
DAY = 86400.0


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    opened = Store(state_dir / "forge-notifier.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


async def deliver(
    store: Store, delivery_id: str, repo: str, at: float, rooms: tuple[str, ...] = ()
) -> None:
    """A push accepted at `at` and routed to `rooms`, as the receiver and dispatcher do."""
    new = NewDelivery(delivery_id, "push", f"sha-{delivery_id}", repo, "{}", at, "pending")
    assert await store.record_delivery(new)
    row = next(d.id for d in await store.pending_deliveries() if d.delivery_id == delivery_id)
    messages = [NewMessage(room, repo, "body", "<p>body</p>") for room in rooms]
    note = f"sent to {len(rooms)} room(s), held for 0"
    await route_delivery(store, row, messages, "routed" if rooms else "unrouted", note, now=at)


def refusal(at: float, result: str = diagnostics.BAD_SIGNATURE, **kw: object) -> IntakeEntry:
    fields: dict[str, object] = {
        "status": 401,
        "reason": "signature does not match",
        "delivery_id": f"r-{at}",
        "event": "push",
        "remote": "10.0.0.5",
    } | kw
    return IntakeEntry(at, result, **fields)  # type: ignore[arg-type]


async def test_delivery_log_lists_rooms_with_message_status(store: Store) -> None:
    await deliver(store, "d-1", "acme/widgets", 100.0, rooms=(ROOM_A, ROOM_B))
    await deliver(store, "d-2", "acme/other", 200.0)
    (message, *_) = await store.due_messages(1e12)
    await store.mark_sent(message.id, "$event")

    newest, oldest = await store.delivery_log(10)
    assert (newest.delivery_id, newest.result, newest.rooms) == ("d-2", "unrouted", ())
    assert oldest.rooms == (RoomPost(ROOM_A, "sent"), RoomPost(ROOM_B, "pending"))
    only = await store.delivery_log(10, repo="ACME/Widgets")
    assert [d.delivery_id for d in only] == ["d-1"]


async def test_intake_log_is_pruned_by_age_and_bounded_in_size(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.log_intake(refusal(10.0))
    await store.log_intake(refusal(20.0))
    await store.log_intake(refusal(30.0))
    await store.prune(older_than=15.0)  # age is the shared retention's job
    assert [e.at for e in await store.intake_log(10)] == [30.0, 20.0]

    monkeypatch.setattr("core.store.INTAKE_LOG_MAX_ROWS", 3)
    for at in (40.0, 50.0, 60.0):
        await store.log_intake(refusal(at))
    assert [e.at for e in await store.intake_log(10)] == [60.0, 50.0, 40.0]
    assert INTAKE_LOG_MAX_ROWS >= 1000  # the real bound leaves room for a day of trouble


async def test_intake_summary_counts_one_result_in_the_window(store: Store) -> None:
    await store.log_intake(refusal(1.0))
    await store.log_intake(refusal(DAY + 5, reason="missing signature"))
    await store.log_intake(refusal(DAY + 6, diagnostics.DUPLICATE, status=200))

    summary = await store.intake_summary(diagnostics.BAD_SIGNATURE, since=DAY)
    assert (summary.count, summary.last_at, summary.last_reason) == (
        1,
        DAY + 5,
        "missing signature",
    )
    assert summary.last_remote == "10.0.0.5"
    assert (await store.intake_summary(diagnostics.INVALID, since=0.0)).count == 0


async def test_read_only_open_creates_nothing_and_refuses_a_missing_database(
    tmp_path: Path,
) -> None:
    absent = Store(tmp_path / "nowhere" / "db.sqlite3")
    with pytest.raises(FileNotFoundError):
        await absent.open_read_only()
    assert not (tmp_path / "nowhere").exists()


async def test_read_only_open_leaves_no_files_behind_and_sees_a_running_writer(
    tmp_path: Path,
) -> None:
    """As root beside the daemon, files it created would lock the daemon out."""
    path = tmp_path / "db.sqlite3"
    writer = Store(path)
    await writer.open()
    await deliver(writer, "d-1", "acme/widgets", 1.0)
    await writer.close()

    reader = Store(path)
    await reader.open_read_only()
    assert [d.delivery_id for d in await reader.delivery_log(5)] == ["d-1"]
    await reader.close()
    assert _files(tmp_path) == ["db.sqlite3"]

    await writer.open()
    await deliver(writer, "d-2", "acme/widgets", 2.0)  # still in the WAL, not checkpointed
    await reader.open_read_only()
    assert [d.delivery_id for d in await reader.delivery_log(5)] == ["d-2", "d-1"]
    await reader.close()
    await writer.close()


def _files(directory: Path) -> list[str]:
    return sorted(file.name for file in directory.iterdir())


def _events(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["events", *args])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


@pytest.fixture
def no_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NOTIFIER_") or name == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(name)


async def _record_history(path: Path) -> None:
    store = Store(path)
    await store.open()
    await deliver(store, "d-1", "acme/widgets", 1_700_000_000.0, rooms=(ROOM_A,))
    await store.log_intake(refusal(1_700_000_100.0, delivery_id="bad-1"))
    duplicate = refusal(
        1_700_000_200.0,
        diagnostics.DUPLICATE,
        status=200,
        reason=None,
        delivery_id="d-1b",
        repo="acme/widgets",
    )
    await store.log_intake(duplicate)
    await deliver(store, "d-2", "acme/other", 1_700_000_300.0)
    await store.close()


def test_events_cli_prints_deliveries_refusals_and_duplicates_in_order(
    state_dir: Path, no_settings: None, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_record_history(state_dir / "forge-notifier.sqlite3"))

    code, lines = _events(capsys, "--state-dir", str(state_dir))
    assert code == 0, lines
    header, *rows = lines
    assert header.split()[:3] == ["TIME", "(UTC)", "DELIVERY"]
    assert [row.split()[2] for row in rows] == ["d-1", "bad-1", "d-1b", "d-2"]
    assert rows[0].startswith("2023-11-14 22:13:20")
    assert "routed: sent to 1 room(s)" in rows[0] and f"{ROOM_A} (pending)" in rows[0]
    assert "bad_signature: 401 signature does not match, from 10.0.0.5" in rows[1]
    assert "duplicate" in rows[2] and "acme/widgets" in rows[2]

    code, lines = _events(capsys, "--state-dir", str(state_dir), "--repo", "acme/widgets")
    assert [row.split()[2] for row in lines[1:]] == ["d-1", "d-1b"]
    code, lines = _events(capsys, "--state-dir", str(state_dir), "--limit", "1")
    assert [row.split()[2] for row in lines[1:]] == ["d-2"]


def test_events_cli_explains_a_missing_database(
    tmp_path: Path, no_settings: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _events(capsys, "--state-dir", str(tmp_path / "empty"))
    assert code == 1
    assert "no database at" in lines[0] and "--state-dir" in lines[0]
    assert not (tmp_path / "empty").exists()
