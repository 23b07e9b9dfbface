"""What `run` says at start, and what no command ever prints: a secret."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli import warn_unsafe_settings
from bot.demo import keeps_running_note
from core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "NOTIFIER_PASSWORD": "pw-never-printed-1",
    "NOTIFIER_WEBHOOK_SECRET": "hook-never-printed-2",
    "NOTIFIER_GITEA_TOKEN": "gitea-never-printed-3",
    "NOTIFIER_API_TOKEN": "api-never-printed-4",
}


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_allow_unsigned_warns_at_every_start(
    caplog: pytest.LogCaptureFixture, secret: str | None
) -> None:
    with caplog.at_level(logging.WARNING):
        warn_unsafe_settings(_settings(allow_unsigned=True, webhook_secret=secret))
    (record,) = caplog.records
    assert "NOTIFIER_ALLOW_UNSIGNED=true" in record.getMessage()
    assert "s3cret" not in record.getMessage()


def test_no_warning_without_allow_unsigned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_unsafe_settings(_settings(webhook_secret="s3cret"))
    assert caplog.records == []


def test_the_demo_names_the_secret_file_instead_of_printing_the_secret(tmp_path: Path) -> None:
    settings = _settings(webhook_secret="demo-never-printed", state_dir=tmp_path)
    note = keeps_running_note(settings)
    assert "demo-never-printed" not in note
    secret_file = tmp_path / "webhook-secret"
    assert str(secret_file) in note
    assert secret_file.read_text().strip() == "demo-never-printed"
    assert secret_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "argv",
    [
        ["check-config"],
        ["send-test", "acme/widgets", "--url", "http://127.0.0.1:9/webhook/gitea"],
        ["hooks", "install", "--repo", "acme/widgets", "--dry-run"],
        ["events"],
    ],
)
def test_no_command_prints_a_secret(tmp_path: Path, argv: list[str]) -> None:
    """Every service address refuses at once (port 9), so each command fails fast,
    printing its errors: those must not carry a secret either."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.pop("CREDENTIALS_DIRECTORY", None)
    env |= SECRETS | {
        "PYTHONPATH": str(REPO_ROOT),
        "NOTIFIER_HOMESERVER": "http://127.0.0.1:9",
        "NOTIFIER_USER_ID": "@bot:example.org",
        "NOTIFIER_GITEA_URL": "http://127.0.0.1:9",
        "NOTIFIER_PUBLIC_URL": "https://notifier.example.org",
        "NOTIFIER_STATE_DIR": str(tmp_path / "state"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "bot", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert output.strip()  # it did say something
    for value in SECRETS.values():
        assert value not in output
