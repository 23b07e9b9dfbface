"""`make bench`: every benchmark in one run, side by side, then a table and a plot.

One throwaway Synapse on 127.0.0.1 serves all phases, in this order:
1. intake ceiling — wrk against the daemon and a bare aiohttp handler, alternating rounds;
2. steady end-to-end latency — forge-notifier, with the homeserver's own round trip;
3. the same steady load through the peer, matrix-webhook, with the homeserver's again;
4. burst — thousands of pushes as fast as possible, counted in the room, memory sampled;
5. the peer's own ceiling — wrk at 50 connections (it answers after sending to Matrix).
Timings are medians and ratios of this run only; nothing here is asserted.

    python -m benchmarks.run [--quick] [--only intake,steady,peer,burst]
                             [--set burst_pushes=2000] [--peer-python PATH]
                             [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import secrets
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks import burst as burst_mod
from benchmarks import intake as intake_mod
from benchmarks.e2e_latency import Follower, SteadyResult, notifier_fire, steady_phase
from benchmarks.peer import Peer
from benchmarks.report import Results, machine_description, write_outputs
from benchmarks.stats import RssSampler, memory_mb
from benchmarks.world import (
    Accounts,
    database_path,
    filler_subscriptions,
    join_rooms,
    register_accounts,
    seed_subscriptions,
)
from bot.local_synapse import LocalSynapse
from bot.room_driver import RoomDriver
from tests.daemon_process import Daemon

SUBSCRIPTIONS = 1000
PHASES = ("intake", "steady", "peer", "burst")


@dataclass(frozen=True)
class Plan:
    intake_rounds: int = 5
    intake_seconds: float = 5
    wrk_threads: int = 1
    rate: float = 5
    steady_seconds: float = 60
    steady_repos: int = 50
    burst_pushes: int = 5000
    burst_repos: int = 100
    window_s: float = 5
    burst_timeout_s: float = 240
    idle_s: float = 10
    peer_wrk_seconds: float = 5

    @classmethod
    def quick(cls) -> Plan:
        return cls(1, 4, 1, 5, 12, 50, 500, 20, 5, 120, 3, 3)

    def with_settings(self, settings: list[str]) -> Plan:
        """`name=value` overrides, typed like the field they replace."""
        changes: dict[str, Any] = {}
        for setting in settings:
            name, _, value = setting.partition("=")
            if name not in self.__dataclass_fields__:
                raise SystemExit(
                    f"unknown plan setting {name!r}; known: {', '.join(self.__dict__)}"
                )
            changes[name] = type(getattr(self, name))(float(value))
        return dataclasses.replace(self, **changes)


@dataclass
class Context:
    """Everything one run shares; whatever it starts is stopped by `stop_all`."""

    base: Path
    synapse: LocalSynapse
    plan: Plan
    phases: frozenset[str]
    peer_python: Path | None
    results: Results
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    started: list[Any] = field(default_factory=list)

    def keep(self, thing: Any) -> Any:
        self.started.append(thing)
        return thing

    def stop_all(self) -> None:
        for thing in reversed(self.started):
            with contextlib.suppress(Exception):
                thing.stop()
        self.synapse.stop()


@dataclass(frozen=True)
class Rooms:
    steady: str
    burst: str
    echo: str  # the driver alone: the homeserver's own round trip
    peer: str
    peer_load: str  # the peer's ceiling run floods this one


def log(text: str) -> None:
    print(text, flush=True)


def daemon_pid(daemon: Daemon) -> int:
    # tests.daemon_process keeps the child private; the benchmark needs its pid for /proc.
    process = daemon._process
    assert process is not None
    return process.pid


async def run(ctx: Context) -> None:
    accounts = register_accounts(ctx.synapse)
    driver = RoomDriver(ctx.synapse.url, accounts.driver.user_id, accounts.driver.password)
    await driver.login()
    try:
        rooms = await _rooms(ctx, accounts, driver)
        if "intake" in ctx.phases:
            await _intake(ctx, accounts)
        if ctx.phases & {"steady", "peer", "burst"}:
            await _measured_daemon(ctx, accounts, driver, rooms)
    finally:
        await driver.close()


async def _rooms(ctx: Context, accounts: Accounts, driver: RoomDriver) -> Rooms:
    bot, peer = accounts.bot.user_id, accounts.peer.user_id
    rooms = Rooms(
        steady=await driver.create_room(invite=[bot]),
        burst=await driver.create_room(invite=[bot]),
        echo=await driver.create_room(invite=[]),
        peer=await driver.create_room(invite=[peer]),
        peer_load=await driver.create_room(invite=[peer]),
    )
    await join_rooms(ctx.synapse.url, accounts.bot, [rooms.steady, rooms.burst])
    await join_rooms(ctx.synapse.url, accounts.peer, [rooms.peer, rooms.peer_load])
    return rooms


async def _intake(ctx: Context, accounts: Accounts) -> None:
    """Phase 1, on a daemon of its own: fresh store, nobody subscribed."""
    if not intake_mod.wrk_available():
        ctx.results.notes.append("wrk not found: intake ceiling not measured")
        return
    log(f"1/5 intake ceiling (wrk, {intake_mod.CONNECTIONS} connections)")
    workdir = ctx.base / "intake"
    workdir.mkdir()
    bot = accounts.intake_bot
    daemon = ctx.keep(Daemon(ctx.synapse.url, bot.user_id, bot.password, ctx.secret, workdir))
    await asyncio.to_thread(daemon.start)
    ctx.results.intake = await asyncio.to_thread(
        intake_mod.intake_rounds,
        daemon.webhook_url,
        daemon_pid(daemon),
        lambda: int(daemon.health()["queue"]["pending"]),
        ctx.secret,
        workdir,
        ctx.plan.intake_rounds,
        ctx.plan.intake_seconds,
        ctx.plan.wrk_threads,
        log,
    )
    daemon.stop()


async def _measured_daemon(
    ctx: Context, accounts: Accounts, driver: RoomDriver, rooms: Rooms
) -> None:
    """Phases 2-5 on one daemon that has 1,000 subscriptions in its store from the start."""
    plan = ctx.plan
    steady_repos = [f"steady/r{i:02d}" for i in range(plan.steady_repos)]
    burst_repos = [f"burst/r{i:03d}" for i in range(plan.burst_repos)]
    real = [(rooms.steady, r) for r in steady_repos] + [(rooms.burst, r) for r in burst_repos]
    fillers = filler_subscriptions(max(0, SUBSCRIPTIONS - len(real)), ctx.synapse.server_name)
    workdir = ctx.base / "daemon"
    workdir.mkdir()
    ctx.results.subscriptions = await seed_subscriptions(
        workdir / "state", real + fillers, driver.user_id
    )
    bot = accounts.bot
    daemon = ctx.keep(
        Daemon(
            ctx.synapse.url,
            bot.user_id,
            bot.password,
            ctx.secret,
            workdir,
            NOTIFIER_RATE_LIMIT_SECONDS=f"{plan.window_s:g}",
        )
    )
    await asyncio.to_thread(daemon.start)
    follower = Follower(driver)
    follower.start()
    try:
        if "steady" in ctx.phases:
            await _steady(ctx, daemon, follower, rooms, steady_repos)
        peer = None
        if "peer" in ctx.phases:
            peer = await _peer(ctx, accounts, follower, rooms, steady_repos)
        if "burst" in ctx.phases:
            await _burst(ctx, daemon, follower, rooms, workdir)
        if peer is not None and intake_mod.wrk_available():
            log(f"5/5 peer ceiling (wrk, {intake_mod.CONNECTIONS} connections)")
            ctx.results.peer_wrk = await asyncio.to_thread(
                _peer_ceiling, peer, rooms.peer_load, ctx.base, plan
            )
            log(f"  matrix-webhook: {ctx.results.peer_wrk.rps:,.1f} req/s")
            await asyncio.sleep(3)  # requests still in flight finish before it is stopped
    finally:
        await follower.stop()


async def _steady(
    ctx: Context, daemon: Daemon, follower: Follower, rooms: Rooms, repos: list[str]
) -> None:
    plan = ctx.plan
    log(f"2/5 steady load: {plan.rate:g} pushes/s for {plan.steady_seconds:g} s")
    async with aiohttp.ClientSession() as session:
        fire = notifier_fire(session, daemon.webhook_url, ctx.secret, repos)
        result = await steady_phase(
            "forge-notifier", follower, rooms.echo, plan.rate, plan.steady_seconds, fire
        )
    ctx.results.steady = result
    _log_steady(result)


async def _peer(
    ctx: Context, accounts: Accounts, follower: Follower, rooms: Rooms, repos: list[str]
) -> Peer | None:
    if ctx.peer_python is None:
        ctx.results.notes.append("matrix-webhook venv not found: peer not measured")
        return None
    plan = ctx.plan
    log(f"3/5 peer (matrix-webhook): {plan.rate:g} requests/s for {plan.steady_seconds:g} s")
    peer = ctx.keep(Peer(ctx.peer_python, ctx.synapse.url, accounts.peer, ctx.base))
    await asyncio.to_thread(peer.start)
    async with aiohttp.ClientSession() as session:
        fire = peer.fire(session, rooms.peer, repos)
        result = await steady_phase(
            "matrix-webhook", follower, rooms.echo, plan.rate, plan.steady_seconds, fire
        )
    ctx.results.peer = result
    _log_steady(result)
    return peer


async def _burst(
    ctx: Context, daemon: Daemon, follower: Follower, rooms: Rooms, workdir: Path
) -> None:
    """Phase 4, with the daemon's memory sampled from before the burst to idle after it."""
    plan, results = ctx.plan, ctx.results
    log(f"4/5 burst: {plan.burst_pushes} pushes over {plan.burst_repos} repositories")
    pid = daemon_pid(daemon)
    results.rss_before_mb = memory_mb(pid)[0]
    sampler = RssSampler(pid)
    sampling_done = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(sampling_done))

    async def queue_empty() -> bool:
        queue = (await asyncio.to_thread(daemon.health))["queue"]
        return bool(queue["pending"] == 0 and queue["held"] == 0)

    burst = await burst_mod.run_burst(
        follower,
        rooms.burst,
        daemon.env["NOTIFIER_USER_ID"],
        daemon.webhook_url,
        ctx.secret,
        plan.burst_pushes,
        plan.burst_repos,
        plan.window_s,
        plan.burst_timeout_s,
        queue_empty,
    )
    with contextlib.suppress(sqlite3.Error):
        burst.queued = burst_mod.queued_times(database_path(workdir / "state"), rooms.burst)
    await asyncio.sleep(plan.idle_s)
    results.rss_idle_mb, results.rss_peak_mb = memory_mb(pid)
    sampling_done.set()
    await sampling
    results.burst = burst
    results.rss_samples = sampler.samples
    results.rss_burst_peak_mb = sampler.peak_between(burst.start, burst.end)
    _log_burst(results)


def _peer_ceiling(peer: Peer, room: str, base: Path, plan: Plan) -> intake_mod.WrkResult:
    replay = base / "peer.bin"
    intake_mod.write_replay_file(
        replay, (peer.raw_request(room, f"peer ceiling request {i}") for i in range(2000))
    )
    return intake_mod.with_cpu(
        peer.pid,
        lambda: intake_mod.run_wrk(peer.url, replay, plan.peer_wrk_seconds, plan.wrk_threads),
    )


def _log_steady(result: SteadyResult) -> None:
    s = result.summaries()
    key = "answered→seen" if result.name == "forge-notifier" else "sent→seen"
    log(
        f"  {result.name}: {key} p50 {s[key].p50:.0f} / p95 {s[key].p95:.0f} /"
        f" p99 {s[key].p99:.0f} ms; homeserver p50 {s['homeserver'].p50:.0f} /"
        f" p95 {s['homeserver'].p95:.0f} ms; lost {result.lost}, refused {result.refused}"
    )


def _log_burst(results: Results) -> None:
    b = results.burst
    assert b is not None
    drained = f"{b.drained_s:.1f} s" if b.drained_s is not None else "not within the timeout"
    first = f"{b.progress[1][0]:.1f} s" if len(b.progress) > 1 else "never"
    log(
        f"  sent in {b.send_s:.1f} s ({b.send_rate:,.0f}/s), answers {dict(b.statuses)};"
        f" first message after {first}; {b.tally.total_pushes} pushes accounted for in"
        f" {b.tally.singles + b.tally.coalesced} messages; backlog empty after {drained};"
        f" exact: {b.exact}; RSS peak {results.rss_peak_mb:.0f} MiB,"
        f" idle {results.rss_idle_mb:.0f} MiB"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, for development")
    parser.add_argument("--only", help=f"comma-separated phases out of {','.join(PHASES)}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--peer-python", type=Path, help="python of the matrix-webhook venv")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--plot", type=Path, help="the PNG plot (default: beside --out)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = (Plan.quick() if args.quick else Plan()).with_settings(args.set)
    phases = frozenset(args.only.split(",")) if args.only else frozenset(PHASES)
    if unknown := phases - set(PHASES):
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    command = shlex.join(
        ["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]
    )
    if os.environ.get("MAKELEVEL"):
        command = f"make bench (runs {command})"
    peer_python = args.peer_python if args.peer_python and args.peer_python.exists() else None
    base = Path(tempfile.mkdtemp(prefix="fn-bench-"))
    log(f"working directory {base}")
    results = Results(plan=plan.__dict__, command=command)
    results.machine = machine_description(peer_python)
    began = time.monotonic()
    ctx = Context(base, LocalSynapse(base / "synapse"), plan, phases, peer_python, results)
    try:
        ctx.synapse.start()
        asyncio.run(run(ctx))
    finally:
        ctx.stop_all()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    results.wall_s = time.monotonic() - began
    results.machine["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(results.table())
    if args.out:
        write_outputs(results, args.out, args.plot or args.out.with_suffix(".png"))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
