"""The test harness itself: CI cannot pass without the real captures, the `integration`
marker splits the tiers, and `make test` / `.ci/run` fail a run that tested nothing. Each
check runs pytest, make or .ci/run in a subprocess, as CI runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import pytest
from tests.conftest import PAYLOADS

def _captures():  # read at collection time, as the corpus tests do
    return sorted(p.name for p in PAYLOADS.glob("*/*.json")) if PAYLOADS.is_dir() else []

def test_reads_the_corpus(payloads_dir):
    assert payloads_dir.is_dir()

@pytest.mark.parametrize("name", _captures())
def test_each_capture(payloads_dir, name):
    assert (payloads_dir / "gitea" / name).is_file()

def test_without_the_corpus():
    pass
"""


def _pytest(cwd: Path, *args: str, ci: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with the real tests/conftest.py and a probe test, and no ../shared beside it."""
    root = tmp_path / "checkout"
    (root / "tests").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copy(REPO / "tests" / "conftest.py", root / "tests")
    (root / "tests" / "__init__.py").touch()
    (root / "tests" / "test_probe.py").write_text(PROBE)
    return root


def test_missing_captures_are_skipped_with_the_reason_outside_ci(checkout: Path) -> None:
    run = _pytest(checkout, ci="false")
    assert run.returncode == 0, run.stdout
    assert "1 passed, 2 skipped" in run.stdout
    assert f"real payload captures not present at {checkout.parent / 'shared'}" in run.stdout


def test_missing_captures_fail_under_ci(checkout: Path) -> None:
    run = _pytest(checkout, ci="true")
    assert run.returncode == 1, run.stdout
    assert "1 passed, 2 errors" in run.stdout  # the fixture's test and the parametrized one
    assert "CI=true: a missing corpus fails, it is not skipped" in run.stdout
    assert "SKIPPED" not in run.stdout


def test_present_captures_are_read_under_ci(checkout: Path) -> None:
    captures = checkout.parent / "shared" / "payloads" / "gitea"
    captures.mkdir(parents=True)
    for name in ("push.json", "issues.json"):
        (captures / name).write_text("{}")
    run = _pytest(checkout, ci="true")
    assert run.returncode == 0, run.stdout
    assert "4 passed" in run.stdout


def _collected(marker: str) -> list[str]:
    run = _pytest(REPO, "--collect-only", "-m", marker)
    assert run.returncode == 0, run.stdout + run.stderr
    return [line for line in run.stdout.splitlines() if "::" in line]


def test_the_integration_marker_splits_the_tiers() -> None:
    unit, integration = _collected("not integration"), _collected("integration")
    assert integration and all(test.startswith("tests/integration/") for test in integration)
    assert unit and not any(test.startswith("tests/integration/") for test in unit)
    assert (
        f"tests/unit/test_harness.py::{test_the_integration_marker_splits_the_tiers.__name__}"
        in unit
    )


# --- make test and .ci/run, with stand-ins for ruff, mypy and pytest ---------------------


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A venv whose ruff and mypy pass and whose `python -m pytest` prints $PYTEST_SAYS,
    shows the CI variable it was given, and exits with $PYTEST_EXIT."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed-test").touch()
    scripts = {
        "ruff": "exit 0",
        "mypy": "exit 0",
        "python": 'echo "CI is ${CI:-unset}"; echo "$PYTEST_SAYS"; exit "$PYTEST_EXIT"',
    }
    for name, body in scripts.items():
        script = venv / "bin" / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return venv


def _harness(
    venv: Path, command: list[str], exit_code: int, says: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MAKEFLAGS", "PYTEST_ARGS")}
    env |= {
        "VENV": str(venv),
        "MAKEFLAGS": f"-o {venv}/.installed-test",  # never install anything here
        "PYTEST_EXIT": str(exit_code),
        "PYTEST_SAYS": says,
    }
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_make_test_fails_when_pytest_ran_nothing(fake_venv: Path) -> None:
    nothing = _harness(fake_venv, ["make", "test"], 5, "===== 12 deselected in 0.1s =====")
    assert nothing.returncode != 0
    assert "make test: FAILED: pytest ran no tests (exit 5)" in nothing.stderr
    passed = _harness(fake_venv, ["make", "test"], 0, "===== 12 passed in 0.1s =====")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "mypy" in passed.stdout  # the type check is part of make test


def test_ci_run_is_ci_ends_with_the_count_and_needs_a_passed_test(fake_venv: Path) -> None:
    ok = _harness(fake_venv, [".ci/run"], 0, "==== 7 passed, 1 skipped in 2.0s ====")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "CI is true" in ok.stdout
    assert ok.stdout.splitlines()[-1] == "CI: 7 passed, 1 skipped in 2.0s"
    skipped = _harness(fake_venv, [".ci/run"], 0, "==== 8 skipped in 2.0s ====")
    assert skipped.returncode == 1
    assert "CI: FAILED: no test passed" in skipped.stderr
    nothing = _harness(fake_venv, [".ci/run"], 5, "==== no tests ran in 0.1s ====")
    assert nothing.returncode != 0
    assert nothing.stdout.splitlines()[-1] == "CI: no tests ran in 0.1s"
