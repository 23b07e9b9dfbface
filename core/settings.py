"""Configuration from `NOTIFIER_*` variables, `.env` and systemd credentials.

Settings are built once by the composition root and passed down; nothing reads the
environment at import time, so tests can build as many configurations as they like.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "NOTIFIER_"


def _default_state_dir() -> Path:
    """systemd's `StateDirectory=` exports `$STATE_DIRECTORY`; elsewhere use `./state`."""
    return Path(os.environ.get("STATE_DIRECTORY", "state"))


class ConfigError(Exception):
    """A configuration problem, phrased for the operator (names the variable)."""


class Settings(BaseSettings):
    """Every knob of the daemon; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        extra="ignore",
        case_sensitive=False,
    )

    homeserver: str | None = None
    user_id: str | None = Field(default=None, pattern=r"^@[^:]+:.+$")
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    device_name: str = "forge-notifier"
    webhook_secret: SecretStr | None = None
    allow_unsigned: bool = False
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8500, ge=0, le=65535)
    state_dir: Path = Field(default_factory=_default_state_dir)
    rate_limit_seconds: float = Field(default=60, ge=0)
    command_power_level: int = 50
    admins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # MXIDs or globs (`@*:example.org`) whose subscriptions may see private repositories.
    trusted_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Bearer token for the full `/webhook/health` from non-loopback clients (and the API).
    api_token: SecretStr | None = None
    # The bot declines invites beyond this many joined rooms.
    max_rooms: int = Field(default=500, gt=0)
    ignore_pushers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    # How long delivered rows and dedup keys are kept; a replay older than this is new again.
    retention_days: float = Field(default=7, gt=0)
    gitea_url: str | None = None
    gitea_token: SecretStr | None = None
    public_url: str | None = None
    log_level: str = "INFO"
    # End-to-end encryption (on by default; see the README for the trust policy).
    encryption: bool = True
    e2e_share_with: Literal["all", "homeserver"] = "all"

    @field_validator("admins", "trusted_users", "ignore_pushers", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        """Operators write lists as `a,b,c` in env files, not as JSON."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("homeserver", "public_url", "gitea_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @property
    def secret(self) -> str | None:
        """The webhook secret in clear, or None (only allowed with NOTIFIER_ALLOW_UNSIGNED)."""
        return self.webhook_secret.get_secret_value() if self.webhook_secret else None

    @property
    def database_path(self) -> Path:
        return self.state_dir / "forge-notifier.sqlite3"

    @property
    def session_path(self) -> Path:
        return self.state_dir / "matrix-session.json"

    @property
    def webhook_url(self) -> str:
        """Where Gitea must send its webhooks, as told to users in `!subscribe` replies."""
        base = self.public_url or f"http://{self.listen_host}:{self.listen_port}"
        return f"{base}/webhook/gitea"

    def problems_for_run(self) -> list[str]:
        """What stops `run` from starting, each line naming the variable to fix."""
        problems = []
        if not self.homeserver:
            problems.append(f"{ENV_PREFIX}HOMESERVER is required (e.g. https://matrix.example.org)")
        if not self.user_id:
            problems.append(f"{ENV_PREFIX}USER_ID is required (e.g. @notifier:example.org)")
        if not (self.password or self.access_token):
            problems.append(f"{ENV_PREFIX}PASSWORD or {ENV_PREFIX}ACCESS_TOKEN is required")
        if not self.webhook_secret and not self.allow_unsigned:
            problems.append(
                f"{ENV_PREFIX}WEBHOOK_SECRET is required (the secret set on the Gitea webhook); "
                f"set {ENV_PREFIX}ALLOW_UNSIGNED=true only for a trusted, closed network"
            )
        return problems


def load_settings(**overrides: Any) -> Settings:
    """Build settings, reading secrets from `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).

    Raises ConfigError with one line per invalid variable.
    """
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and not Path(credentials).is_dir():
        raise ConfigError(f"CREDENTIALS_DIRECTORY: {credentials} is not a directory")
    try:
        return Settings(_secrets_dir=credentials, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into lines like `NOTIFIER_LISTEN_PORT: ...`, never echoing values."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "configuration"
        lines.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
    return "\n".join(lines)
