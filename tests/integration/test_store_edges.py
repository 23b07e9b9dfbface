"""`forge-notifier run` at the store's edges, as a real process: an unusable database exits
1 within 10 s in one line (no hang, no traceback), a second daemon on a state directory
exits 2 naming the first, which carries on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.migrations import MIGRATIONS
from tests.daemon_process import Daemon
from tests.integration.conftest import WEBHOOK_SECRET, Homeserver, push
from tests.unit.test_store_failures import _read_only

pytestmark = pytest.mark.integration

DATABASE = "forge-notifier.sqlite3"
STARTUP_LIMIT_S = 10


def _run_once(daemon: Daemon, **env: str) -> subprocess.CompletedProcess[str]:
    """`run` to its end; TimeoutExpired (a failure) if it is still running after 10 s."""
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=daemon.env | env,
        cwd=daemon.state_dir.parent,
        capture_output=True,
        text=True,
        timeout=STARTUP_LIMIT_S,
        check=False,
    )


def _refusing_homeserver(tmp_path: Path) -> Daemon:
    """The store fails before the homeserver matters: port 9 refuses at once."""
    daemon = Daemon("http://127.0.0.1:9", "@bot:example.org", "pw", WEBHOOK_SECRET, tmp_path)
    daemon.state_dir.mkdir(mode=0o700)
    return daemon


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("forge-notifier:")]
    return line


def test_a_corrupt_database_exits_1_within_10_s_in_one_line(tmp_path: Path) -> None:
    daemon = _refusing_homeserver(tmp_path)
    (daemon.state_dir / DATABASE).write_bytes(b"\x00garbage, not SQLite" * 500)
    result = _run_once(daemon)
    assert result.returncode == 1
    line = _one_line(result)
    assert f"database {daemon.state_dir / DATABASE} is corrupt" in line
    assert "restore it from a backup or move it aside" in line


def test_a_newer_schema_exits_1_naming_both_versions(tmp_path: Path) -> None:
    daemon = _refusing_homeserver(tmp_path)
    db = sqlite3.connect(daemon.state_dir / DATABASE)
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 3}")
    db.close()
    result = _run_once(daemon)
    assert result.returncode == 1
    assert f"{len(MIGRATIONS) + 3}, newer than this program's {len(MIGRATIONS)}" in _one_line(
        result
    )


def test_a_read_only_database_exits_1_in_one_line(tmp_path: Path) -> None:
    daemon = _refusing_homeserver(tmp_path)
    db = sqlite3.connect(daemon.state_dir / DATABASE)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    with _read_only(daemon.state_dir / DATABASE):
        result = _run_once(daemon)
    assert result.returncode == 1
    assert "is read-only" in _one_line(result)


async def test_a_second_daemon_on_the_same_state_dir_exits_2_naming_the_first(
    daemon: Daemon,
) -> None:
    # Port 0: were the lock missing, the second would not fail merely on a taken port.
    second = await asyncio.to_thread(_run_once, daemon, NOTIFIER_LISTEN_PORT="0")
    assert second.returncode == 2
    line = _one_line(second)
    assert f"state directory {daemon.state_dir} is in use" in line
    assert f"pid {daemon.pid}, started " in line
    # The first one never noticed: still connected, still accepting.
    assert daemon.health()["matrix"]["connected"] is True
    status, answer, _ = await push(daemon, "acme/after-second", "still here")
    assert (status, answer["status"]) == (202, "accepted")


def test_everything_in_the_state_dir_is_private_under_umask_022(
    homeserver: Homeserver, tmp_path: Path
) -> None:
    bot = homeserver.bot
    daemon = Daemon(homeserver.url, bot.user_id, bot.password, WEBHOOK_SECRET, tmp_path)
    old = os.umask(0o022)  # inherited by the daemon: what a careless unit file gives it
    try:
        daemon.start()
    finally:
        os.umask(old)
    try:
        modes = {
            str(path.relative_to(daemon.state_dir)): path.stat().st_mode & 0o777
            for path in [daemon.state_dir, *daemon.state_dir.rglob("*")]
        }
    finally:
        daemon.stop()
    assert {"forge-notifier.sqlite3", "matrix-session.json", "lock"} <= modes.keys()
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
