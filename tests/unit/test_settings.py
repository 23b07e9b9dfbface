"""core/settings.py: environment, systemd credentials and the operator-facing errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import ConfigError, Settings, load_settings

COMPLETE = {
    "NOTIFIER_HOMESERVER": "https://matrix.example.org/",
    "NOTIFIER_USER_ID": "@notifier:example.org",
    "NOTIFIER_PASSWORD": "pw",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No `.env` in the working directory and nothing inherited from the real environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert (settings.listen_host, settings.listen_port) == ("127.0.0.1", 8500)
    assert settings.rate_limit_seconds == 60
    assert settings.command_power_level == 50
    assert settings.admins == []
    assert settings.max_body_bytes == 5242880


def test_missing_webhook_secret_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = load(monkeypatch, **COMPLETE).problems_for_run()
    assert len(problems) == 1
    assert "NOTIFIER_WEBHOOK_SECRET" in problems[0]


def test_allow_unsigned_drops_the_secret_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, **COMPLETE, NOTIFIER_ALLOW_UNSIGNED="true")
    assert settings.problems_for_run() == []


def test_empty_secret_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = load(monkeypatch, **COMPLETE, NOTIFIER_WEBHOOK_SECRET="").problems_for_run()
    assert any("NOTIFIER_WEBHOOK_SECRET" in p for p in problems)


def test_nothing_set_names_every_required_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join(load(monkeypatch).problems_for_run())
    for name in ("HOMESERVER", "USER_ID", "PASSWORD", "ACCESS_TOKEN", "WEBHOOK_SECRET"):
        assert f"NOTIFIER_{name}" in text


def test_complete_configuration_has_no_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, **COMPLETE, NOTIFIER_WEBHOOK_SECRET="s")
    assert settings.problems_for_run() == []
    assert settings.homeserver == "https://matrix.example.org"


def test_admins_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, NOTIFIER_ADMINS=" @a:example.org, @b:example.org ,,")
    assert settings.admins == ["@a:example.org", "@b:example.org"]


def test_ignore_pushers_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch, NOTIFIER_IGNORE_PUSHERS="ci-bot,renovate").ignore_pushers == [
        "ci-bot",
        "renovate",
    ]


@pytest.mark.parametrize("bad", ["hunter2-secret-ish", "99999", "-1"])
def test_invalid_port_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(monkeypatch, NOTIFIER_LISTEN_PORT=bad)
    assert "NOTIFIER_LISTEN_PORT" in str(caught.value)
    assert bad not in str(caught.value)


def test_invalid_homeserver_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="NOTIFIER_HOMESERVER"):
        load(monkeypatch, NOTIFIER_HOMESERVER="matrix.example.org")


@pytest.mark.parametrize("file_name", ["NOTIFIER_WEBHOOK_SECRET", "notifier_webhook_secret"])
def test_secrets_from_credentials_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, file_name: str
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / file_name).write_text("from-systemd\n")
    (credentials / "NOTIFIER_PASSWORD").write_text("pw-file")
    settings = load(monkeypatch, CREDENTIALS_DIRECTORY=str(credentials))
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "from-systemd"
    assert settings.password is not None
    assert settings.password.get_secret_value() == "pw-file"


def test_secrets_are_masked_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch, NOTIFIER_WEBHOOK_SECRET="very-secret-value")
    assert "very-secret-value" not in repr(settings)


def test_state_dir_defaults_to_state(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load(monkeypatch)
    assert settings.state_dir == Path("state")
    assert settings.database_path.parent == Path("state")


def test_state_dir_follows_systemd(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load(monkeypatch, STATE_DIRECTORY=str(tmp_path / "lib"))
    assert settings.state_dir == tmp_path / "lib"


def test_explicit_state_dir_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load(
        monkeypatch, STATE_DIRECTORY=str(tmp_path / "lib"), NOTIFIER_STATE_DIR=str(tmp_path / "x")
    )
    assert settings.state_dir == tmp_path / "x"


def test_webhook_url_from_public_url_or_listen_address(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(monkeypatch).webhook_url == "http://127.0.0.1:8500/webhook/gitea"
    public = load(monkeypatch, NOTIFIER_PUBLIC_URL="https://notifier.example.org/")
    assert public.webhook_url == "https://notifier.example.org/webhook/gitea"


def test_dotenv_in_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NOTIFIER_COMMAND_POWER_LEVEL=75\n")
    assert load(monkeypatch).command_power_level == 75
