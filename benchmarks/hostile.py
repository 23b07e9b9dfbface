"""10,000 hostile requests against the receiver on 127.0.0.1: 5xx, log records, held
connections and memory, before and after.

The server is a subprocess running the daemon's receiver (store, webhook handler, routes,
and the daemon's runner options where this tree has them) on the daemon's event loop; the
client is this process. Run from a tree's root, so the same script measures any commit:

    python -m benchmarks.hostile [--requests 10000] [--big 200]

Phases: (1) a flood of `--big` concurrent 4 MB bodies with bad signatures (memory), while
50 genuine deliveries are sent one by one;
(2) the mix in `_mix`, 50 at a time; (3) 200 stalled connections (half a head, half a
body) and how many the server still holds open after 15 s. `--requests` counts all three.
Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gzip
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.stats import memory_mb
from bot.sample import sample_push, sign_delivery
from receiver.signature import sign

SECRET = "hostile-bench-secret"
MAX_BODY = 5 * 1024 * 1024
BIG = 4 * 1024 * 1024
HELD_AFTER_S = 15.0
CONCURRENCY = 50
STALLED = 200
GENUINE = 50  # signed deliveries sent during the flood of large bodies


# --- the server (subprocess) -------------------------------------------------------------


class Counts(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.by_level: collections.Counter[str] = collections.Counter()
        self.errors_by_logger: collections.Counter[str] = collections.Counter()
        self.tracebacks = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.by_level[record.levelname] += 1
        self.tracebacks += bool(record.exc_info)
        if record.levelno >= logging.ERROR:
            self.errors_by_logger[record.name] += 1


async def _serve(port: int, db: Path) -> None:
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from core.metrics import Metrics
    from core.store import Store
    from receiver.app import create_app
    from receiver.webhook import WebhookConfig, WebhookReceiver

    counts = Counts()
    logging.basicConfig(level=logging.INFO, handlers=[counts])
    store = Store(db)
    writes = [0]
    original = store.log_intake

    async def counted(*entries: Any) -> None:
        writes[0] += 1
        await original(*entries)

    store.log_intake = counted  # type: ignore[method-assign]
    await store.open()
    metrics = Metrics(CollectorRegistry())
    receiver = WebhookReceiver(store, WebhookConfig(SECRET, MAX_BODY), lambda: None, metrics)

    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    async def scrape() -> CollectorRegistry:
        return metrics.registry

    app = create_app(receiver, health, MAX_BODY, scrape)
    try:
        from receiver.server import runner_options

        options = runner_options(app)
    except ImportError:  # a tree from before receiver/server.py: the daemon's old line
        options = {"access_log": None}
    runner = web.AppRunner(app, handle_signals=False, **options)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()
    await store.close()
    print(
        json.dumps(
            {
                "log_records": dict(counts.by_level),
                "errors_by_logger": dict(counts.errors_by_logger),
                "tracebacks": counts.tracebacks,
                "intake_transactions": writes[0],
            }
        ),
        flush=True,
    )


# --- the client ----------------------------------------------------------------------------


def _junk_json(n: int) -> bytes:
    return b'{"x": "' + b"a" * (n - 10) + b'"}'


def _mix(total: int) -> list[tuple[str, Callable[[str, aiohttp.ClientSession], Awaitable[int]]]]:
    """(kind, request) pairs adding up to `total`, shuffled."""
    plain = json.dumps(sample_push()).encode()
    named = sample_push()
    named["repository"]["full_name"] = "acme/" + "w" * 1_000_000
    big_name = sign_delivery(named, SECRET)
    long_ref = sign_delivery(sample_push(branch="b" * 2000), SECRET)
    kinds: dict[str, tuple[float, Callable[[str, aiohttp.ClientSession], Awaitable[int]]]] = {
        "bad signature": (0.20, _post(plain, {"X-Gitea-Signature": "00" * 32})),
        "gzip, garbage body": (0.10, _post(b"\x1f\x8bjunk", _signed(b"", "gzip"))),
        "deflate, plain body": (0.05, _post(plain, _signed(plain, "deflate"))),
        "gzip, valid body": (0.05, _post(gzip.compress(plain), _signed(plain, "gzip"))),
        "br, garbage body": (0.03, _post(b"\x0bjunk", _signed(b"", "br"))),
        "metrics, Accept version=abc": (
            0.05,
            _metrics("application/openmetrics-text; version=abc"),
        ),
        "malformed HTTP": (0.10, _raw(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")),
        "bad request line": (0.05, _raw(b"GET /\x00 HTTP/1.1\r\n\r\n")),
        "signed, 1 MB full_name": (0.005, _post(big_name.body, big_name.headers)),
        "signed, 2 KB ref": (0.045, _post(long_ref.body, long_ref.headers)),
        "200-char delivery id": (
            0.05,
            _post(plain, _signed(plain) | {"X-Gitea-Delivery": "d" * 200}),
        ),
        "signed invalid JSON": (0.10, _post(b"{nope", _signed(b"{nope"))),
        "wrong content type": (0.07, _post(plain, _signed(plain) | {"Content-Type": "text/xml"})),
        "broken chunked body": (0.05, _raw(_broken_chunked())),
        "bad signature, 64 KB": (0.05, _post(_junk_json(65536), {"X-Gitea-Signature": "00"})),
    }
    plan = [
        (kind, make) for kind, (share, make) in kinds.items() for _ in range(int(share * total))
    ]
    plan += [plan[0]] * (total - len(plan))
    random.Random(11).shuffle(plan)
    return plan


def _signed(body: bytes, encoding: str | None = None) -> dict[str, str]:
    headers = {"X-Gitea-Signature": sign(SECRET, body)}
    return headers | ({"Content-Encoding": encoding} if encoding else {})


def _post(
    body: bytes, headers: dict[str, str]
) -> Callable[[str, aiohttp.ClientSession], Awaitable[int]]:
    base = {"Content-Type": "application/json", "X-Gitea-Event": "push"}

    async def send(url: str, session: aiohttp.ClientSession) -> int:
        async with session.post(f"{url}/webhook/gitea", data=body, headers=base | headers) as r:
            await r.read()
            return r.status

    return send


def _metrics(accept: str) -> Callable[[str, aiohttp.ClientSession], Awaitable[int]]:
    async def send(url: str, session: aiohttp.ClientSession) -> int:
        async with session.get(f"{url}/metrics", headers={"Accept": accept}) as r:
            await r.read()
            return r.status

    return send


def _broken_chunked() -> bytes:
    return (
        b"POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'X-Gitea-Event: push\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nzz\r\n'
    )


def _raw(data: bytes) -> Callable[[str, aiohttp.ClientSession], Awaitable[int]]:
    async def send(url: str, _: aiohttp.ClientSession) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        try:
            writer.write(data)
            async with asyncio.timeout(30):
                line = await reader.readline()
            return int(line.split()[1]) if line else 0
        finally:
            writer.close()

    return send


async def _run_mix(url: str, total: int) -> dict[str, collections.Counter[int]]:
    plan = _mix(total)
    results: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def one(
            kind: str, send: Callable[[str, aiohttp.ClientSession], Awaitable[int]]
        ) -> None:
            async with gate:
                try:
                    results[kind][await send(url, session)] += 1
                except (aiohttp.ClientError, OSError, TimeoutError):
                    results[kind][0] += 1  # 0: the connection failed, no status

        await asyncio.gather(*(one(kind, send) for kind, send in plan))
    return results


async def _big_flood(url: str, n: int) -> collections.Counter[int]:
    body = _junk_json(BIG)
    statuses: collections.Counter[int] = collections.Counter()
    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:
        send = _post(body, {"X-Gitea-Signature": "00" * 32})

        async def one() -> None:
            try:
                statuses[await send(url, session)] += 1
            except (aiohttp.ClientError, OSError):
                statuses[0] += 1

        await asyncio.gather(*(one() for _ in range(n)))
    return statuses


async def _valid_meanwhile(url: str, n: int) -> collections.Counter[int]:
    """Genuine deliveries sent one after another (as Gitea does) with Gitea's 5 s timeout."""
    statuses: collections.Counter[int] = collections.Counter()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for i in range(n):
            delivery = sign_delivery(sample_push(message=f"genuine {i}"), SECRET)
            try:
                async with session.post(
                    f"{url}/webhook/gitea", data=delivery.body, headers=delivery.headers
                ) as r:
                    statuses[r.status] += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                statuses[0] += 1
    return statuses


async def _stalled(port: int, n: int) -> int:
    """Open `n` stalled connections; how many are still open after HELD_AFTER_S."""

    async def stall(i: int) -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if i % 2:
            writer.write(b"POST /webhook/gitea HTTP/1.1\r\nHost: x\r\n")
        else:
            writer.write(
                b"POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'X-Gitea-Event: push\r\nContent-Length: 1000\r\n\r\n{"a"'
            )
        try:
            async with asyncio.timeout(HELD_AFTER_S):
                await reader.read()
            return False
        except TimeoutError:
            return True
        finally:
            writer.close()

    return sum(await asyncio.gather(*(stall(i) for i in range(n))))


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    port = 18000 + os.getpid() % 1000
    with tempfile.TemporaryDirectory() as state:
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "benchmarks.hostile", "--serve", str(port), state),
            stdout=asyncio.subprocess.PIPE,
        )
        assert server.stdout is not None
        assert (await server.stdout.readline()).strip() == b"ready"
        results = await _phases(args, port, server.pid)
        server.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(server.communicate(), timeout=60)
    return {"requests": args.requests, **results, **json.loads(out.decode().splitlines()[-1])}


async def _phases(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    rss_start, _ = memory_mb(pid)
    started = time.monotonic()
    big, genuine = await asyncio.gather(_big_flood(url, args.big), _valid_meanwhile(url, GENUINE))
    rss_after_big, peak_big = memory_mb(pid)
    mix = await _run_mix(url, args.requests - args.big - GENUINE - STALLED)
    held = await _stalled(port, STALLED)
    rss_end, peak = memory_mb(pid)
    answers = [big, *mix.values()]
    return {
        "seconds": round(time.monotonic() - started, 1),
        "big_bodies": dict(big),
        "genuine_during_big_flood": dict(genuine),
        "mix": {kind: dict(counter) for kind, counter in sorted(mix.items())},
        # 503 with Retry-After is the body budget's answer (a bounded refusal); others are bugs.
        "5xx_not_503": sum(n for c in answers for s, n in c.items() if s >= 500 and s != 503),
        "503": sum(c[503] for c in answers),
        "no_status": sum(c[0] for c in answers),
        "held_after_15s": held,
        "rss_mib": {
            "start": round(rss_start, 1),
            "after_big_flood": round(rss_after_big, 1),
            "peak_during_big_flood": round(peak_big, 1),
            "end": round(rss_end, 1),
            "peak": round(peak, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=200)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "STATE_DIR"))
    args = parser.parse_args()
    from bot.event_loop import run

    if args.serve:
        run(_serve(int(args.serve[0]), Path(args.serve[1]) / "db.sqlite3"))
        return
    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(run(_client(args)), indent=2))


if __name__ == "__main__":
    main()
