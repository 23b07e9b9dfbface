"""One daemon per state directory, and the directory and its files private to the daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.session import StoredSession, load_session, save_session
from core import state_dir
from core.state_dir import StateDirBusy

REPO_ROOT = Path(__file__).resolve().parents[2]

# A second process, so the lock is another open file description, as for a second daemon.
HOLD_LOCK = """
import sys
from pathlib import Path
from core import state_dir
with state_dir.exclusive(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "state")],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirBusy) as busy, state_dir.exclusive(tmp_path / "state"):
            pass
        assert f"pid {holder.pid}, started " in str(busy.value)
        assert str(tmp_path / "state") in str(busy.value)
    finally:
        holder.communicate("")
    with state_dir.exclusive(tmp_path / "state"):  # its exit let go of the lock
        assert f"pid {os.getpid()}," in (tmp_path / "state" / "lock").read_text()


def test_the_lock_is_held_inside_one_process_too(tmp_path: Path) -> None:
    """flock locks open files, not processes: a second open in the same process is refused."""
    with (
        state_dir.exclusive(tmp_path),
        pytest.raises(StateDirBusy),
        state_dir.exclusive(tmp_path),
    ):
        pass


def test_the_state_directory_is_made_0700_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state_dir.make_private(tmp_path / "new")
        existing = tmp_path / "existing"
        existing.mkdir(mode=0o755)
        state_dir.make_private(existing)
        with state_dir.exclusive(tmp_path / "locked") as lock:
            lock_mode = lock.stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert existing.stat().st_mode & 0o777 == 0o700
    assert lock_mode == 0o600


SESSION = StoredSession("https://hs.example", "@bot:example", "DEVICE", "syt_secret_token")


def test_the_session_is_written_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "state" / "matrix-session.json"
    stale = path.with_name(path.name + ".tmp")  # left world-readable by an earlier crash
    stale.parent.mkdir()
    stale.write_text("{}")
    stale.chmod(0o644)
    old = os.umask(0o022)
    try:
        save_session(path, SESSION)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_session(path) == SESSION
    assert not stale.exists()


def test_the_session_is_fsynced_then_renamed_then_its_directory_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order that makes the write durable and atomic: a crash leaves old or new."""
    path = tmp_path / "matrix-session.json"
    path.write_text(json.dumps({"old": True}))
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        steps.append("fsync dir" if os.path.isdir(target) else f"fsync {Path(target).name}")
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        assert path.read_text() == json.dumps({"old": True})  # untouched until the rename
        steps.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_session(path, SESSION)
    assert steps == ["fsync matrix-session.json.tmp", "rename", "fsync dir"]
