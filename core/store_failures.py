"""Why the database cannot be used, in one line that names the file and what to do.

The daemon cannot run without its store, and a store that is corrupt, read-only or from a
newer version will not mend itself: `run` exits at once with this line instead of a
traceback (or, worse, a process that hangs on a half-opened connection).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class StoreUnusable(Exception):
    """The database cannot be opened as it is; str() is the operator's one line."""


CORRUPT_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
RESTORE_ADVICE = "restore it from a backup or move it aside (with its -wal and -shm) to start empty"


def corrupt(path: Path, detail: str) -> StoreUnusable:
    return StoreUnusable(f"database {path} is corrupt ({_short(detail)}): {RESTORE_ADVICE}")


def newer_schema(path: Path, found: int, known: int) -> StoreUnusable:
    return StoreUnusable(
        f"database {path} has schema version {found}, newer than this program's {known}"
        " (a downgrade is refused): run the newer forge-notifier again, or restore a backup"
        " taken before the upgrade"
    )


def describe(path: Path, exc: sqlite3.Error | OSError) -> StoreUnusable:
    """Translate what SQLite (or the file system) said into the operator's one line."""
    if isinstance(exc, OSError):
        return _cannot_open(path, exc.strerror or str(exc))
    code = getattr(exc, "sqlite_errorname", "") or ""
    if code in CORRUPT_CODES or "malformed" in str(exc):
        return corrupt(path, str(exc))
    if code.startswith("SQLITE_READONLY"):
        return StoreUnusable(
            f"database {path} is read-only ({exc}): make it, its -wal and -shm files and"
            f" {path.parent} writable by the daemon's user (uid {os.geteuid()})"
        )
    if code.startswith("SQLITE_CANTOPEN") or code.startswith("SQLITE_PERM"):
        return _cannot_open(path, str(exc))
    if code.startswith("SQLITE_FULL"):
        return StoreUnusable(f"database {path}: the disk is full ({exc}): free space there")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreUnusable(
            f"database {path} is locked by another process ({exc}): stop whatever else"
            " has it open (another forge-notifier? a sqlite3 shell?)"
        )
    return StoreUnusable(f"database {path} cannot be used ({_short(str(exc))}): {RESTORE_ADVICE}")


def _cannot_open(path: Path, detail: str) -> StoreUnusable:
    return StoreUnusable(
        f"cannot open database {path} ({detail}): the daemon's user (uid {os.geteuid()}) needs"
        f" read and write access to it and to {path.parent}, where SQLite creates its -wal"
        " and -shm files"
    )


def _short(detail: str, limit: int = 200) -> str:
    """One line, bounded: quick_check can report thousands of problems."""
    line = " ".join(detail.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
