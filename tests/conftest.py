"""Shared fixtures: where the real captured payloads are (when this checkout has them)."""

from __future__ import annotations

from pathlib import Path

import pytest

# ../shared/payloads beside the repository: real captures, read in place, never copied in.
PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "payloads"


@pytest.fixture(scope="session")
def payloads_dir() -> Path:
    if not PAYLOADS.is_dir():
        pytest.skip(f"real payload captures not present at {PAYLOADS}")
    return PAYLOADS
