"""Shared fixtures: where the real captured payloads are (when this checkout has them).

Without the captures, the tests that read them are skipped, saying where they were looked
for; under CI (`CI=true`) a missing corpus is a failure instead, so a CI job can never pass
green without ever having checked the real payloads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# ../shared/payloads beside the repository: real captures, read in place, never copied in.
PAYLOADS = Path(__file__).resolve().parents[2] / "shared" / "payloads"
# pytest's reason for a parametrize whose values (read from the captures) came out empty.
EMPTY_PARAMETER_SET = "got empty parameter set"


def in_ci() -> bool:
    """`CI=true` (or 1/yes), as GitHub Actions, GitLab CI and Woodpecker set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def payloads_missing() -> str | None:
    """Why the captures cannot be read, or None when they are there."""
    if PAYLOADS.is_dir():
        return None
    return f"real payload captures not present at {PAYLOADS}"


@pytest.fixture(scope="session")
def payloads_dir() -> Path:
    missing = payloads_missing()
    if missing and in_ci():
        reason = f"{missing} (CI=true: a missing corpus fails, it is not skipped)"
        pytest.fail(reason, pytrace=False)
    if missing:
        pytest.skip(missing)
    return PAYLOADS


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under CI without the captures, a test parametrized from them would be skipped for an
    empty parameter set before `payloads_dir` could fail it: take that skip away."""
    if not (in_ci() and payloads_missing()):
        return
    for item in items:
        if "payloads_dir" in getattr(item, "fixturenames", ()):
            item.own_markers = [m for m in item.own_markers if not _empty_parameter_skip(m)]


def _empty_parameter_skip(mark: pytest.Mark) -> bool:
    reason = str(mark.kwargs.get("reason", mark.args[0] if mark.args else ""))
    return mark.name == "skip" and reason.startswith(EMPTY_PARAMETER_SET)
