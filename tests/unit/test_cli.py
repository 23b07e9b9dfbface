"""The command line's refusals: a bad configuration exits 2 naming every variable to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import build_parser, main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    clean |= {"PYTHONPATH": str(REPO_ROOT), **env}
    clean.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_without_configuration_names_every_missing_variable(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 2
    for name in (
        "NOTIFIER_HOMESERVER",
        "NOTIFIER_USER_ID",
        "NOTIFIER_PASSWORD",
        "NOTIFIER_WEBHOOK_SECRET",
    ):
        assert name in result.stderr


def test_run_with_an_invalid_value_names_it_without_echoing_secrets(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        NOTIFIER_LISTEN_PORT="eighty",
        NOTIFIER_PASSWORD="hunter2-do-not-print",
    )
    assert result.returncode == 2
    assert "NOTIFIER_LISTEN_PORT" in result.stderr
    assert "hunter2-do-not-print" not in result.stderr + result.stdout


def test_unknown_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["frobnicate"])
    assert exit_info.value.code == 2


def test_send_test_reports_an_unreachable_receiver(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    code = main(["send-test", "acme/widgets", "--url", "http://127.0.0.1:9/webhook/gitea"])
    assert code == 1
    assert "Could not reach" in capsys.readouterr().err
