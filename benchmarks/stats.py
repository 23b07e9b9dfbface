"""Small measuring helpers: percentiles, a process's memory, and a sampler for it."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """p50/p95/p99/max of a sample, in the sample's unit."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        top = max(values) if values else math.nan
        return cls(
            len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99), top
        )


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS over the process's life) in MiB, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    import os

    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RssSampler:
    """Samples a process's RSS every `interval` seconds while running (for the burst plot)."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, MiB)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                rss, _ = memory_mb(self.pid)
            except (OSError, KeyError):
                return
            self.samples.append((time.monotonic(), rss))
            try:
                async with asyncio.timeout(self.interval):
                    await stop.wait()
            except TimeoutError:
                pass

    def peak_between(self, start: float, end: float) -> float:
        inside = [rss for at, rss in self.samples if start <= at <= end]
        return max(inside) if inside else math.nan
