"""An unusable database is refused at open, in one line naming the file and what to do,
with every connection closed (a leftover aiosqlite thread kept the process from exiting)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.migrations import MIGRATIONS
from core.store import Store
from core.store_failures import StoreUnusable


def _worker_threads() -> set[threading.Thread]:
    """aiosqlite's per-connection threads (not daemon threads: each one blocks exit)."""
    return {t for t in threading.enumerate() if "_connection_worker_thread" in t.name}


async def _refused(path: Path) -> str:
    before = _worker_threads()
    store = Store(path)
    with pytest.raises(StoreUnusable) as refused:
        await store.open()
    message = str(refused.value)
    assert str(path) in message
    assert "\n" not in message
    for thread in _worker_threads() - before:  # each one told to stop: it ends at once
        thread.join(timeout=10)
        assert not thread.is_alive()
    return message


def _valid_database(path: Path, rows: int = 0) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE filler (x TEXT)")
    db.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,)] * rows)
    db.commit()
    db.close()


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[None]:
    """Read-only even for root (who ignores modes): the immutable attribute, undone after."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root without chattr: no way to make a file read-only for this test")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i refused here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_a_file_that_is_not_a_database_is_refused_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    path.write_bytes(os.urandom(8192))
    message = await _refused(path)
    assert "is corrupt" in message
    assert "restore it from a backup or move it aside" in message


async def test_damaged_pages_are_found_by_quick_check_at_start(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _valid_database(path, rows=2000)
    with path.open("r+b") as file:  # the header stays valid; b-tree pages in the middle do not
        file.seek(8 * 4096)
        file.write(os.urandom(16 * 4096))
    message = await _refused(path)
    assert "is corrupt" in message


async def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    newer = len(MIGRATIONS) + 1
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={newer}")
    db.close()
    message = await _refused(path)
    assert f"schema version {newer}, newer than this program's {len(MIGRATIONS)}" in message
    assert "downgrade" in message
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (newer,)  # left as it was
    db.close()


async def test_a_read_only_database_is_refused_at_open_not_at_the_first_webhook(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    store = Store(path)
    await store.open()
    await store.close()
    with _read_only(path):
        message = await _refused(path)
    assert "is read-only" in message
    assert "writable by the daemon's user" in message


async def test_a_read_only_directory_is_refused_naming_what_sqlite_must_create(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / "db.sqlite3"
    _valid_database(path)
    with _read_only(state):
        message = await _refused(path)
    assert "-wal and -shm" in message


async def test_database_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store(tmp_path / "db.sqlite3")
        await store.open()
        names = ["db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"]
        modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in names}
        await store.close()
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(names, 0o600)


async def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _valid_database(path)
    path.chmod(0o644)
    store = Store(path)
    await store.open()
    await store.close()
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_good_database_still_opens_after_a_refusal(tmp_path: Path) -> None:
    """The refusal changed nothing: moved aside, a fresh database starts empty."""
    path = tmp_path / "db.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    await _refused(path)
    path.rename(tmp_path / "db.sqlite3.corrupt")
    store = Store(path)
    await store.open()
    assert await store.recent_deliveries() == []
    await store.close()


async def test_close_closes_the_main_connection_even_when_the_intake_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "db.sqlite3")
    before = _worker_threads()
    await store.open()
    assert store._intake_db is not None

    async def failing_close() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    real_close = store._intake_db.close
    monkeypatch.setattr(store._intake_db, "close", failing_close)
    with pytest.raises(sqlite3.OperationalError):
        await store.close()
    await real_close()  # the test's own cleanup of the connection it broke
    for thread in _worker_threads() - before:
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_events_on_a_corrupt_database_exits_instead_of_hanging(tmp_path: Path) -> None:
    (tmp_path / "forge-notifier.sqlite3").write_bytes(os.urandom(4096))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-m", "bot", "events", "--state-dir", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=10,  # it hung for good before: TimeoutExpired fails the test
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
