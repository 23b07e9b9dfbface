"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real SQLite store (WAL, migrations applied) in the test's temporary directory."""
    opened = Store(tmp_path / "db.sqlite3")
    await opened.open()
    yield opened
    await opened.close()
