"""Getting a Matrix session: reuse the stored one, else log in once and store it."""

from __future__ import annotations

import logging

from nio import AsyncClient, LoginResponse, WhoamiResponse

from bot.session import StoredSession, forget_session, load_session, save_session
from core.settings import Settings

log = logging.getLogger(__name__)


class LoginError(Exception):
    """The homeserver refused the credentials: a retry will not help, the operator must act."""


class HomeserverUnavailable(Exception):
    """The homeserver did not answer usefully; try again later."""


async def log_in(client: AsyncClient, settings: Settings) -> str:
    """Make `client` logged in; returns how ("restored", "access token" or "password")."""
    assert settings.homeserver and settings.user_id
    stored = load_session(settings.session_path)
    if stored and (stored.homeserver, stored.user_id) == (settings.homeserver, settings.user_id):
        client.restore_login(stored.user_id, stored.device_id, stored.access_token)
        if await _token_valid(client):
            return "restored"
        log.warning("the stored Matrix session was revoked; logging in again")
        forget_session(settings.session_path)
    how = await (
        _use_token(client, settings) if settings.access_token else _use_password(client, settings)
    )
    assert client.device_id
    save_session(
        settings.session_path,
        StoredSession(settings.homeserver, settings.user_id, client.device_id, client.access_token),
    )
    return how


async def _token_valid(client: AsyncClient) -> bool:
    response = await client.whoami()
    if isinstance(response, WhoamiResponse):
        return True
    if response.status_code == "M_UNKNOWN_TOKEN":
        return False
    raise HomeserverUnavailable(f"whoami failed: {response}")


async def _use_token(client: AsyncClient, settings: Settings) -> str:
    assert settings.access_token and settings.user_id
    # Not restore_login(): with encryption it would open a crypto store for no device yet.
    client.user_id, client.access_token = settings.user_id, settings.access_token.get_secret_value()
    response = await client.whoami()
    if not isinstance(response, WhoamiResponse):
        if response.status_code in ("M_UNKNOWN_TOKEN", "M_FORBIDDEN"):
            raise LoginError("NOTIFIER_ACCESS_TOKEN was refused by the homeserver")
        raise HomeserverUnavailable(f"whoami failed: {response}")
    if response.user_id != settings.user_id:
        raise LoginError(
            f"NOTIFIER_ACCESS_TOKEN belongs to {response.user_id}, "
            f"not NOTIFIER_USER_ID {settings.user_id}"
        )
    if not response.device_id:
        raise LoginError("NOTIFIER_ACCESS_TOKEN has no device id (use a device's token)")
    client.restore_login(settings.user_id, response.device_id, client.access_token)
    return "access token"


async def _use_password(client: AsyncClient, settings: Settings) -> str:
    assert settings.password
    client.user = settings.user_id or ""
    response = await client.login(
        settings.password.get_secret_value(), device_name=settings.device_name
    )
    if isinstance(response, LoginResponse):
        return "password"
    if response.status_code in ("M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_USERNAME"):
        raise LoginError(
            f"the homeserver refused NOTIFIER_USER_ID/NOTIFIER_PASSWORD ({response.status_code})"
        )
    raise HomeserverUnavailable(f"login failed: {response}")
