"""`forge-notifier run` as a real child process, for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """`forge-notifier run` in a subprocess, restartable on the same state directory."""

    def __init__(
        self,
        homeserver: str,
        user_id: str,
        password: str,
        secret: str,
        workdir: Path,
        **extra_env: str,
    ) -> None:
        self.state_dir = workdir / "state"
        self.port = free_port()
        self.log_path = workdir / "daemon.log"
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        base = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
        self.env = base | {
            "NOTIFIER_HOMESERVER": homeserver,
            "NOTIFIER_USER_ID": user_id,
            "NOTIFIER_PASSWORD": password,
            "NOTIFIER_WEBHOOK_SECRET": secret,
            "NOTIFIER_LISTEN_PORT": str(self.port),
            "NOTIFIER_STATE_DIR": str(self.state_dir),
            "NOTIFIER_LOG_LEVEL": "INFO",
            # Off unless a test is about it: most tests push twice to one repo quickly.
            "NOTIFIER_RATE_LIMIT_SECONDS": "0",
            "PYTHONPATH": str(REPO_ROOT),
            **extra_env,
        }

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhook/gitea"

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env=self.env,
                cwd=self._workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_connected(time.monotonic() + timeout)

    def _wait_connected(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise RuntimeError(f"daemon exited {code}:\n{self.log()}")
            try:
                if self.health()["matrix"]["connected"]:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daemon not connected in time:\n{self.log()}")

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/webhook/health", timeout=5) as response:
            return dict(json.load(response))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
