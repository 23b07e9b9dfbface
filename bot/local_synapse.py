"""Start and stop a throwaway local Synapse homeserver.

Used by the integration-test session fixture and by ``forge-notifier demo``: both need a
real Matrix server that a newcomer can get without Docker, accounts or network access.
The server listens on 127.0.0.1 only, federates with nobody, stores everything in SQLite
under ``base_dir`` and has its rate limits relaxed, so it is for tests and demos only.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

CONFIG_NAME = "homeserver.yaml"
LOG_CONFIG_NAME = "log.config.yaml"
LOG_NAME = "homeserver.log"
STDOUT_NAME = "synapse.stdout.log"

# Every limiter a test or demo can trip quickly; see SYNAPSE-NOTES.md. Nested keys use dots.
_RATE_LIMIT_KEYS = (
    "rc_message",
    "rc_registration",
    "rc_registration_token_validity",
    "rc_login.address",
    "rc_login.account",
    "rc_login.failed_attempts",
    "rc_joins.local",
    "rc_joins.remote",
    "rc_joins_per_room",
    "rc_invites.per_room",
    "rc_invites.per_user",
    "rc_invites.per_issuer",
    "rc_third_party_invite",
    "rc_room_creation",
    "rc_admin_redaction",
    "rc_3pid_validation",
    "rc_key_requests",
    "rc_presence.per_user",
    "rc_profile",
    "rc_media_create",
    "rc_delayed_event_mgmt",
    "rc_reports",
    "rc_user_directory",
)
_RELAXED_LIMIT = {"per_second": 100000, "burst_count": 100000}

# Ignore http_proxy & co: a corporate proxy must never see (or break) calls to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class RegisteredUser:
    """A Matrix account on the local server, with what a client needs to log in."""

    user_id: str
    password: str


class SynapseError(RuntimeError):
    """Synapse could not be set up, started or asked something; the message says why."""


class LocalSynapse:
    """One throwaway Synapse process rooted at ``base_dir`` (config, SQLite DB, logs).

    Restarting on the same ``base_dir`` keeps the database and the port, so clients
    configured with :attr:`url` keep working across a restart.
    """

    def __init__(self, base_dir: Path, server_name: str = "localhost") -> None:
        self._base_dir = Path(base_dir).resolve()
        self._server_name = server_name
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._shared_secret: str | None = None
        self._log_offsets: dict[str, int] = {}

    # -- public API -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Client-API base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._port is None and self._config_path.exists():
            self._load_config()
        if self._port is None:
            raise SynapseError("LocalSynapse has no port yet: call start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Generate the config on first use, then run Synapse until it answers HTTP."""
        if self.running:
            return
        began = time.monotonic()
        self._base_dir.mkdir(parents=True, exist_ok=True)
        if not self._config_path.exists():
            self._create_config(timeout)
        self._load_config()
        self._ensure_port_free()
        self._spawn()
        try:
            self._wait_until_ready(began + timeout)
        except BaseException:
            # Its own session ignores our Ctrl-C: never leave it running behind us.
            self.stop()
            raise
        logger.info("Synapse ready at %s in %.1f s", self.url, time.monotonic() - began)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if Synapse has not exited after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is not None:
            _terminate(process, timeout)

    def register(self, localpart: str, password: str, admin: bool = False) -> RegisteredUser:
        """Create an account through the shared-secret admin API.

        Idempotent so fixtures and re-run demos can simply ask again; for an existing
        user the password is not checked (it is whatever the first call set).
        """
        user = RegisteredUser(f"@{localpart}:{self._server_name}", password)
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        status, reply = _request_json("GET", endpoint)
        nonce = reply.get("nonce")
        if status != 200 or not isinstance(nonce, str):
            raise SynapseError(f"could not get a registration nonce: HTTP {status} {reply}")
        request = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": self._registration_mac(nonce, localpart, password, admin),
        }
        status, reply = _request_json("POST", endpoint, request)
        if status == 200:
            return RegisteredUser(str(reply.get("user_id", user.user_id)), password)
        if reply.get("errcode") == "M_USER_IN_USE":
            return user
        raise SynapseError(f"could not register {user.user_id}: HTTP {status} {reply}")

    def __enter__(self) -> LocalSynapse:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- configuration ----------------------------------------------------------------

    @property
    def _config_path(self) -> Path:
        return self._base_dir / CONFIG_NAME

    def _create_config(self, timeout: float) -> None:
        """Let Synapse generate its config (keys, secrets), then make it test-friendly.

        Generating into a side file and renaming at the end means an existing
        homeserver.yaml is always a complete, patched one.
        """
        if importlib.util.find_spec("synapse") is None:
            raise SynapseError(
                f"matrix-synapse is not installed for {sys.executable}; "
                "run `pip install matrix-synapse` in this environment"
            )
        generated = self._base_dir / "homeserver.generated.yaml"
        self._generate(generated, timeout)
        config = _read_yaml(generated)
        self._patch_config(config, _free_port())
        _write_yaml(self._config_path, config)
        generated.unlink()
        # The generator's log config points at the *current directory*; ours replaces it.
        (self._base_dir / f"{self._server_name}.log.config").unlink(missing_ok=True)

    def _generate(self, config_path: Path, timeout: float) -> None:
        command = [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            f"--server-name={self._server_name}",
            f"--config-path={config_path}",
            f"--data-directory={self._base_dir}",
            "--generate-config",
            "--report-stats=no",
        ]
        try:
            done = subprocess.run(
                command, cwd=self._base_dir, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as error:
            raise SynapseError(f"Synapse config generation took over {timeout:.0f} s") from error
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()[-2000:]
            raise SynapseError(f"Synapse config generation failed:\n{output}")

    def _patch_config(self, config: dict[str, Any], port: int) -> None:
        """Loopback-only, no federation, fast hashing, quiet logs, no rate limits."""
        config["listeners"] = [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ]
        config.update(
            registration_shared_secret=secrets.token_hex(32),
            enable_registration=False,
            bcrypt_rounds=4,
            federation_domain_whitelist=[],
            trusted_key_servers=[],
            suppress_key_server_warning=True,
            report_stats=False,
            presence={"enabled": False},
            url_preview_enabled=False,
            log_config=str(self._write_log_config()),
        )
        for key in _RATE_LIMIT_KEYS:
            _set_nested(config, key, dict(_RELAXED_LIMIT))

    def _write_log_config(self) -> Path:
        """WARNING level: INFO logs every request and costs real CPU on small machines."""
        path = self._base_dir / LOG_CONFIG_NAME
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s"
                    " - %(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self._base_dir / LOG_NAME),
                    "encoding": "utf8",
                }
            },
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        _write_yaml(path, log_config)
        return path

    def _load_config(self) -> None:
        """Read back the port and secret so a restart reuses them."""
        config = _read_yaml(self._config_path)
        if config.get("server_name") != self._server_name:
            raise SynapseError(
                f"{self._config_path} is for server name {config.get('server_name')!r}, "
                f"not {self._server_name!r}; use another base_dir"
            )
        try:
            self._port = int(config["listeners"][0]["port"])
            self._shared_secret = str(config["registration_shared_secret"])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise SynapseError(f"{self._config_path} lacks a listener port or secret") from error

    # -- process ----------------------------------------------------------------------

    def _ensure_port_free(self) -> None:
        assert self._port is not None
        if not _port_is_free(self._port):
            raise SynapseError(
                f"port 127.0.0.1:{self._port} (kept in {self._config_path}) is in use: "
                "is another Synapse still running on this base_dir? Stop it or use a new base_dir"
            )

    def _spawn(self) -> None:
        # Logs append across restarts; remember where this run starts for _tail().
        self._log_offsets = {name: _size(self._base_dir / name) for name in (STDOUT_NAME, LOG_NAME)}
        command = [
            sys.executable,
            "-m",
            "synapse.app.homeserver",
            f"--config-path={self._config_path}",
        ]
        with (self._base_dir / STDOUT_NAME).open("ab") as output:
            self._process = subprocess.Popen(
                command,
                cwd=self._base_dir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # Its own session outlives us on a crash: stop it at interpreter exit at the latest.
        weakref.finalize(self, _terminate, self._process, 5.0)
        logger.debug("Started Synapse pid %d in %s", self._process.pid, self._base_dir)

    def _wait_until_ready(self, deadline: float) -> None:
        """Poll /versions: the only reliable sign that Synapse finished starting."""
        assert self._process is not None
        while True:
            code = self._process.poll()
            if code is not None:
                self._process = None
                raise SynapseError(f"Synapse exited with code {code} while starting{self._tail()}")
            if _answers(f"{self.url}/_matrix/client/versions"):
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise SynapseError(f"Synapse did not answer on {self.url} in time{self._tail()}")
            time.sleep(0.1)

    def _tail(self, lines: int = 30) -> str:
        """The end of this run's logs, for error messages that explain themselves."""
        parts = []
        for name in (STDOUT_NAME, LOG_NAME):
            path = self._base_dir / name
            with contextlib.suppress(OSError), path.open("rb") as log:
                log.seek(self._log_offsets.get(name, 0))
                text = log.read().decode("utf8", errors="replace").splitlines()
                if text:
                    parts.append(f"\n--- last lines of {path} ---\n" + "\n".join(text[-lines:]))
        return "".join(parts) or f" (no log output yet in {self._base_dir})"

    def _registration_mac(self, nonce: str, user: str, password: str, admin: bool) -> str:
        assert self._shared_secret is not None
        mac = hmac.new(self._shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, user, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        return mac.hexdigest()


# -- helpers --------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # lazily: importing this module must not require Synapse's dependencies

    data = yaml.safe_load(path.read_text(encoding="utf8"))
    if not isinstance(data, dict):
        raise SynapseError(f"{path} is not a YAML mapping")
    return data


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a crash never leaves a half-written config behind."""
    import yaml

    partial = path.with_name(path.name + ".tmp")
    partial.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf8")
    os.replace(partial, path)


def _set_nested(config: dict[str, Any], dotted_key: str, value: Any) -> None:
    *parents, leaf = dotted_key.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[leaf] = value


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.warning("Synapse (pid %d) ignored SIGTERM; killing it", process.pid)
        process.kill()
        process.wait()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    """Bind like Twisted does (SO_REUSEADDR), so TIME_WAIT leftovers do not count as busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _answers(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _request_json(
    method: str, url: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        raise SynapseError(f"{method} {url} failed: {error}") from error
    try:
        parsed = json.loads(raw or b"{}")
    except ValueError:
        parsed = {"raw": raw.decode("utf8", errors="replace")}
    return status, parsed if isinstance(parsed, dict) else {"value": parsed}
