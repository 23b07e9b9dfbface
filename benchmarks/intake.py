"""Intake ceiling: requests/s of signed ~8 KB pushes at 50 connections, driven by wrk.

Two targets in the same run, alternating round by round so the machine's noise falls on
both: the real daemon's `POST /webhook/gitea` (verify, parse, commit, then 202) and a bare
aiohttp handler that only reads the body and answers 202 (the limit). wrk replays
pre-built requests (`replay.lua`), each with its own body and delivery id; the daemon's
rounds never repeat a request, so every one is a new delivery. Between rounds the daemon
is left to finish routing what it accepted, so its background work never lands in the
bare handler's round.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.e2e_latency import new_marker
from benchmarks.payloads import raw_request, signed_push, write_replay_file
from benchmarks.stats import cpu_seconds, median
from tests.daemon_process import free_port

REPLAY_LUA = Path(__file__).with_name("replay.lua")
CONNECTIONS = 50
DRAIN_TIMEOUT_S = 120.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    accepted: int
    duplicate: int
    other: int
    wrapped: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    cpu_s: float = math.nan  # the target's CPU time during the round

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, replay_file: Path, seconds: float, threads: int = 1) -> WrkResult:
    """One wrk run with replay.lua; its JSON line is parsed into a WrkResult."""
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{CONNECTIONS}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "10s",
        "-s",
        str(REPLAY_LUA),
        url,
    ]
    env = os.environ | {"REPLAY_FILE": str(replay_file), "REPLAY_THREADS": str(threads)}
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("REPLAY_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("REPLAY_RESULT "))
    errors = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        accepted=data["accepted"],
        duplicate=data["duplicate"],
        other=data["other"],
        wrapped=data["wrapped"],
        socket_errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


class BareServer:
    """benchmarks.bare_server as a child process."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhook/gitea"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bare_server", str(self.port)],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(self.url, data=b"{}", method="POST")
                with _NO_PROXY.open(request, timeout=2) as response:
                    if response.status == 202:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the bare aiohttp server did not start")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(10)


@dataclass
class IntakeResult:
    daemon: list[WrkResult] = field(default_factory=list)
    bare: list[WrkResult] = field(default_factory=list)
    drain_s: list[float] = field(default_factory=list)  # routing the round's backlog after it

    @property
    def daemon_rps(self) -> float:
        return median([r.rps for r in self.daemon])

    @property
    def bare_rps(self) -> float:
        return median([r.rps for r in self.bare])

    @property
    def ratio(self) -> float:
        return self.daemon_rps / self.bare_rps if self.bare_rps else math.nan

    @property
    def round_ratios(self) -> list[float]:
        return [d.rps / b.rps for d, b in zip(self.daemon, self.bare, strict=False) if b.rps]


def _replay_file(path: Path, count: int, secret: str, round_no: int) -> Path:
    """`count` unique signed pushes over 50 repositories nobody subscribed to."""

    def requests():  # type: ignore[no-untyped-def]
        for i in range(count):
            repo = f"intake/r{i % 50:02d}"
            push = signed_push(repo, new_marker(f"intake{round_no}", i), secret, 1 + i % 5)
            yield raw_request(push.delivery)

    write_replay_file(path, requests())
    return path


def with_cpu(pid: int, run: Callable[[], WrkResult]) -> WrkResult:
    before = cpu_seconds(pid)
    result = run()
    used = cpu_seconds(pid) - before
    return WrkResult(**{**result.__dict__, "cpu_s": used})


def intake_rounds(
    daemon_url: str,
    daemon_pid: int,
    queue_pending: Callable[[], int],
    secret: str,
    workdir: Path,
    rounds: int,
    seconds: float,
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> IntakeResult:
    """Alternate bare and daemon rounds; the daemon gets fresh requests every round."""
    bare = BareServer()
    bare.start()
    result = IntakeResult()
    expected_rps = 3000.0
    try:
        for round_no in range(1, rounds + 1):
            count = int(max(expected_rps, 1000) * 1.5 * seconds) + 1000
            replay = _replay_file(workdir / f"intake-{round_no}.bin", count, secret, round_no)
            wrk = functools.partial(run_wrk, replay_file=replay, seconds=seconds, threads=threads)
            b = with_cpu(bare.pid, functools.partial(wrk, bare.url))
            result.bare.append(b)
            d = with_cpu(daemon_pid, functools.partial(wrk, daemon_url))
            result.daemon.append(d)
            expected_rps = max(expected_rps, d.rps)
            started = time.monotonic()
            _wait_drained(queue_pending)
            result.drain_s.append(time.monotonic() - started)
            replay.unlink()
            log(
                f"  intake round {round_no}: bare {b.rps:,.0f} req/s, daemon {d.rps:,.0f} req/s"
                f" ({d.accepted} accepted, {d.duplicate} duplicate, {d.other} other),"
                f" backlog routed in {result.drain_s[-1]:.1f} s"
            )
    finally:
        bare.stop()
    return result


def _wait_drained(queue_pending: Callable[[], int]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while queue_pending() > 0 and time.monotonic() < deadline:
        time.sleep(0.25)
