"""The peer: nim65s/matrix-webhook (PyPI `matrix-webhook`) against the same Synapse.

It needs matrix-nio < 0.25 while forge-notifier needs 0.26, so it runs from its own venv
(`make bench` builds it inside the project's venv directory). Its API is synchronous:
`POST /` with `{"body", "key", "room_id"}` joins the room and sends the message, and
answers only after the homeserver accepted it. It keeps nothing on disk.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from benchmarks.e2e_latency import Probe, new_marker, post_json
from bot.local_synapse import RegisteredUser
from tests.daemon_process import free_port

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Peer:
    """`python -m matrix_webhook` as a child process on 127.0.0.1."""

    def __init__(self, python: Path, homeserver: str, account: RegisteredUser, workdir: Path):
        self.port = free_port()
        self.key = "bench-" + str(self.port)
        self.log_path = workdir / "matrix-webhook.log"
        self._command = [
            str(python),
            "-m",
            "matrix_webhook",
            "-H",
            "127.0.0.1",
            "-P",
            str(self.port),
            "-u",
            homeserver,
            "-i",
            account.user_id,
            "-p",
            account.password,
            "-k",
            self.key,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"matrix-webhook exited: {self.log_path.read_text()[-2000:]}")
            try:
                with _NO_PROXY.open(f"{self.url}health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("matrix-webhook did not answer in time")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def request_body(self, room: str, text: str) -> bytes:
        return json.dumps({"body": text, "key": self.key, "room_id": room}).encode()

    def raw_request(self, room: str, text: str) -> bytes:
        """The request as wrk replays it."""
        body = self.request_body(room, text)
        head = (
            f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def fire(
        self, session: aiohttp.ClientSession, room: str, repos: list[str]
    ) -> Callable[[int], Awaitable[Probe]]:
        """The same push announcement as forge-notifier's, through the peer's API."""

        async def fire(i: int) -> Probe:
            marker = new_marker("peer", i)
            body = self.request_body(room, announcement(repos[i % len(repos)], marker))
            headers = {"Content-Type": "application/json"}
            return await post_json(session, self.url, marker, body, headers)

        return fire


def announcement(repo: str, marker: str) -> str:
    """Markdown a Gitea → matrix-webhook bridge would post for a one-commit push."""
    return (
        f"[{repo}] alice pushed 1 commit to main\n"
        f"https://git.example.org/{repo}/compare/2f7267a10b...9577760cd3\n"
        f"9577760 {marker} (Alice)"
    )
