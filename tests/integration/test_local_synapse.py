"""The local Synapse harness against a real Synapse (two starts, ~3 s each)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from bot.local_synapse import LocalSynapse, RegisteredUser, SynapseError

pytest.importorskip("synapse", reason="matrix-synapse is not installed")

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _login(server: LocalSynapse, user: RegisteredUser) -> tuple[int, dict[str, Any]]:
    localpart = user.user_id[1:].split(":", 1)[0]
    return _http(
        f"{server.url}/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": user.password,
        },
    )


def _port_open(url: str) -> bool:
    port = urllib.parse.urlsplit(url).port
    assert port is not None
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stop_is_safe_before_start(tmp_path: Path) -> None:
    server = LocalSynapse(tmp_path / "never")
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(SynapseError):
        _ = server.url


def test_lifecycle_register_login_restart(tmp_path: Path) -> None:
    server = LocalSynapse(tmp_path / "synapse")
    try:
        server.start()
        assert server.running
        assert server.server_name == "localhost"
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        status, versions = _http(f"{url}/_matrix/client/versions")
        assert status == 200
        assert versions["versions"]

        alice = server.register("alice", "alice-pw", admin=True)
        assert alice == RegisteredUser("@alice:localhost", "alice-pw")
        bob = server.register("bob", "bob-pw")
        assert server.register("bob", "bob-pw") == bob  # idempotent

        status, reply = _login(server, alice)
        assert status == 200, reply
        assert reply["user_id"] == "@alice:localhost"
        assert reply["access_token"]
        statuses = [_login(server, bob)[0] for _ in range(15)]
        assert statuses == [200] * 15  # rate limits relaxed: no 429

        server.stop()
        server.stop()  # idempotent
        assert not server.running
        assert not _port_open(url)

        # The port is kept in the config: if someone else holds it, say so.
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT
            squatter.bind(("127.0.0.1", urllib.parse.urlsplit(url).port or 0))
            squatter.listen()
            with pytest.raises(SynapseError, match="in use"):
                server.start()
        assert not server.running

        with server:  # second start: same base_dir, same URL, same database
            assert server.url == url
            assert _port_open(url)
            status, reply = _login(server, bob)
            assert status == 200, reply
            assert reply["user_id"] == "@bob:localhost"
        assert not server.running
        assert not _port_open(url)
    finally:
        server.stop()
