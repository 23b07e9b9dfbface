"""systemd/forge-notifier.service: a valid unit, and hardened (exposure 2.0 or lower).

`systemd-analyze` reads the unit offline; no running systemd is needed. The tests skip,
saying why, only where the tool is missing or too old for `--offline`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bot.app import REQUEST_DRAIN_S, SENDER_DRAIN_S

REPO_ROOT = Path(__file__).resolve().parents[2]
UNIT = REPO_ROOT / "systemd" / "forge-notifier.service"
INSTALLED_EXEC = "/opt/forge-notifier/bin/forge-notifier"
MAX_EXPOSURE = 2.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)")
    return tool


def _unit_for_verify(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine:
    verify checks that it does, and /opt/forge-notifier is where production installs."""
    executable = shutil.which("forge-notifier") or str(REPO_ROOT / ".venv/bin/forge-notifier")
    if not Path(executable).is_file():
        pytest.skip("no forge-notifier executable to point ExecStart= at (pip install -e .)")
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_EXEC} run" in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_EXEC, executable))
    return copy


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        [_analyze(), "verify", "--man=no", str(_unit_for_verify(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # verify reports problems on stderr even when it exits 0 (unknown keys, bad values).
    assert UNIT.name not in result.stderr, result.stderr


def test_unit_exposure_is_at_most_two(tmp_path: Path) -> None:
    result = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip(f"systemd-analyze too old for --offline: {result.stderr.strip()}")
    match = EXPOSURE.search(result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_a_notify_service_with_watchdog_and_credentials() -> None:
    """The daemon's side of the contract (READY=1, WATCHDOG=1, $CREDENTIALS_DIRECTORY)
    only works with these settings; the analyzers above do not require them."""
    settings = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["Type"] == "notify"
    assert settings["WatchdogSec"].endswith("s")
    # The stop timeout covers the drain, with room left to close the store.
    stop_s = float(settings["TimeoutStopSec"].removesuffix("s"))
    assert stop_s >= REQUEST_DRAIN_S + SENDER_DRAIN_S + 5
    assert settings["Restart"] == "on-failure"
    assert settings["DynamicUser"] == "yes"
    assert settings["StateDirectory"] == "forge-notifier"
    assert settings["LoadCredential"].startswith("NOTIFIER_")
