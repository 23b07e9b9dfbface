"""The benchmark's outputs: the figures table, docs/benchmarks.md and the latency plot."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.burst import BurstResult
from benchmarks.e2e_latency import SteadyResult
from benchmarks.intake import IntakeResult, WrkResult
from benchmarks.stats import Summary, median

TARGET_INTAKE_RATIO = 0.4
TARGET_P95_OVERHEAD_MS = 50.0
TARGET_PEAK_RSS_MB = 150.0


@dataclass
class Results:
    plan: dict[str, Any]
    command: str
    machine: dict[str, str] = field(default_factory=dict)
    intake: IntakeResult | None = None
    steady: SteadyResult | None = None
    peer: SteadyResult | None = None
    peer_wrk: WrkResult | None = None
    burst: BurstResult | None = None
    subscriptions: int = 0
    rss_before_mb: float = math.nan
    rss_burst_peak_mb: float = math.nan
    rss_peak_mb: float = math.nan
    rss_idle_mb: float = math.nan
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(measure, forge-notifier, reference, ratio or difference, target: met?)."""
        rows: list[tuple[str, str, str, str, str]] = []
        rows += self._intake_rows()
        rows += self._steady_rows()
        rows += self._peer_rows()
        rows += self._burst_rows()
        return rows

    def _intake_rows(self) -> list[tuple[str, str, str, str, str]]:
        i = self.intake
        if i is None:
            return []
        rounds = ", ".join(f"{r:.2f}" for r in i.round_ratios)
        ok = _met(i.ratio >= TARGET_INTAKE_RATIO)
        cpu = median([r.cpu_s / r.seconds * 100 for r in i.daemon])
        not_new = sum(r.duplicate + r.other + r.socket_errors for r in i.daemon)
        return [
            (
                f"Intake ceiling, req/s (rounds: {len(i.daemon)}, median; daemon CPU"
                f" {cpu:.0f}% of a core)",
                f"{i.daemon_rps:,.0f}" + (f" ({not_new} not 202)" if not_new else ""),
                f"bare aiohttp 202: {i.bare_rps:,.0f}",
                f"{i.ratio:.2f} (rounds: {rounds})",
                f"≥ {TARGET_INTAKE_RATIO}: {ok}",
            ),
            (
                "Intake latency at 50 connections, p50 / p99 (median of rounds)",
                f"{median([r.p50_ms for r in i.daemon]):.1f} / "
                f"{median([r.p99_ms for r in i.daemon]):.1f} ms",
                f"bare: {median([r.p50_ms for r in i.bare]):.1f} / "
                f"{median([r.p99_ms for r in i.bare]):.1f} ms",
                "",
                "",
            ),
        ]

    def _steady_rows(self) -> list[tuple[str, str, str, str, str]]:
        s = self.steady
        if s is None:
            return []
        ours = s.summaries()
        a, hs = ours["answered→seen"], ours["homeserver"]
        overhead = a.p95 - hs.p95
        return [
            (
                f"E2E webhook 202 → seen, p50 / p95 / p99 ({s.rate:g}/s, n={a.n}, lost {s.lost})",
                _pcts(a),
                f"homeserver send → seen: {_pcts(hs)}",
                f"p95 +{overhead:.0f} ms; p50 ratio {a.p50 / hs.p50:.2f}",
                f"p95 overhead ≤ {TARGET_P95_OVERHEAD_MS:.0f} ms: "
                + _met(overhead <= TARGET_P95_OVERHEAD_MS),
            ),
            (
                "E2E request sent → seen, p50 / p95 / p99",
                _pcts(ours["sent→seen"]),
                "",
                "",
                "",
            ),
        ]

    def _peer_rows(self) -> list[tuple[str, str, str, str, str]]:
        p, s = self.peer, self.steady
        if p is None or s is None:
            return []
        ours, theirs = s.summaries(), p.summaries()
        rows = [
            (
                f"Peer: request sent → seen, p50 / p95 / p99 (same {p.rate:g}/s load)",
                _pcts(ours["sent→seen"]),
                f"matrix-webhook: {_pcts(theirs['sent→seen'])} (lost {p.lost},"
                f" refused {p.refused}); its homeserver: {_pcts(theirs['homeserver'])}",
                f"p50 ratio {ours['sent→seen'].p50 / theirs['sent→seen'].p50:.2f}",
                "",
            ),
            (
                "Peer: time to answer the webhook, p50 / p95",
                f"{ours['answer'].p50:.1f} / {ours['answer'].p95:.1f} ms (after commit)",
                f"matrix-webhook: {theirs['answer'].p50:.1f} / {theirs['answer'].p95:.1f} ms"
                " (after the Matrix send)",
                "",
                "",
            ),
            (
                "Peer: steady requests/s achieved",
                f"{s.achieved_rate:.2f}",
                f"matrix-webhook: {p.achieved_rate:.2f}",
                "",
                "",
            ),
        ]
        if self.peer_wrk is not None and self.intake is not None:
            rows.append(
                (
                    "Peer: ceiling at 50 connections, req/s",
                    f"{self.intake.daemon_rps:,.0f} (accepted, sent later)",
                    f"matrix-webhook: {self.peer_wrk.rps:,.1f} (each one a Matrix send;"
                    f" {self.peer_wrk.other + self.peer_wrk.socket_errors} errors)",
                    f"{self.intake.daemon_rps / self.peer_wrk.rps:.0f} times"
                    if self.peer_wrk.rps
                    else "",
                    "",
                )
            )
        return rows

    def _burst_rows(self) -> list[tuple[str, str, str, str, str]]:
        b = self.burst
        if b is None:
            return []
        t = b.tally
        drained = f"{b.drained_s:.1f} s" if b.drained_s is not None else "not emptied"
        gaps, queued = b.gaps_s(), b.queued_gaps_s()
        queued_min = min(queued) if queued else math.nan
        queued_ok = not queued or queued_min >= b.window_s * 0.999
        return [
            (
                f"Burst: {b.pushes:,} pushes over {b.repos} repos, window {b.window_s:g} s",
                f"{t.total_pushes:,} accounted for, {b.duplicated_markers} twice,"
                f" {len(b.wrong_repos)} repos off",
                f"sent in {b.send_s:.1f} s ({b.send_rate:,.0f}/s), answers {_statuses(b)}",
                "",
                "every push exactly once: " + _met(b.exact),
            ),
            (
                "Burst: messages in the room",
                f"{t.singles + t.coalesced} ({t.singles} single, {t.coalesced} coalesced)",
                f"shortest gap between two of one repo: queued {queued_min:.2f} s,"
                f" in the room {min(gaps) if gaps else math.nan:.2f} s; most of one repo"
                f" within {b.window_s:g} s in the room: {b.max_in_window()}",
                "",
                "≤ 1 per repo per window: queued "
                + _met(queued_ok)
                + ", in the room "
                + _met(b.max_in_window() <= 1),
            ),
            (
                "Burst: first push sent → backlog empty (all accounted for, queue 0)",
                drained,
                "",
                "",
                "",
            ),
            (
                f"Memory: RSS peak / idle ({self.subscriptions:,} subscriptions)",
                f"{self.rss_peak_mb:.0f} / {self.rss_idle_mb:.0f} MiB",
                f"before burst {self.rss_before_mb:.0f} MiB; sampled burst peak"
                f" {self.rss_burst_peak_mb:.0f} MiB",
                "",
                f"peak ≤ {TARGET_PEAK_RSS_MB:.0f} MB: "
                + _met(self.rss_peak_mb <= TARGET_PEAK_RSS_MB),
            ),
        ]

    def table(self) -> str:
        head = "| measure | forge-notifier | reference (same run) | ratio / difference | target |"
        lines = [head, "|---|---|---|---|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows()]
        return "\n".join(lines)


def _pcts(s: Summary) -> str:
    return f"{s.p50:.0f} / {s.p95:.0f} / {s.p99:.0f} ms"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _statuses(b: BurstResult) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(b.statuses.items()))


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_description(peer_python: Path | None) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    peer = "not measured"
    if peer_python is not None and peer_python.exists():
        peer = subprocess.run(
            [
                str(peer_python),
                "-c",
                "import importlib.metadata as m; print(m.version('matrix-webhook'),"
                " 'with matrix-nio', m.version('matrix-nio'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "synapse": _version("matrix-synapse") + " (SQLite, 127.0.0.1, rate limits relaxed)",
        "matrix-nio": _version("matrix-nio"),
        "aiohttp": _version("aiohttp"),
        "sqlite": sqlite3.sqlite_version,
        "wrk": (wrk.stdout or wrk.stderr).split("\n", 1)[0].strip() or "not installed",
        "matrix-webhook": peer,
        "load_average_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def write_outputs(results: Results, markdown: Path, plot: Path) -> None:
    markdown.parent.mkdir(parents=True, exist_ok=True)
    plotted = write_plot(results, plot)
    markdown.write_text(render_markdown(results, plot.name if plotted else None))


def render_markdown(results: Results, plot_name: str | None) -> str:
    from benchmarks.report_text import document

    return document(results, plot_name)


def write_plot(results: Results, path: Path) -> bool:
    """Latency distributions (left) and the burst's progress and memory (right)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        results.notes.append("matplotlib not installed: no plot")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    _plot_latency(left, results)
    _plot_burst(right, results)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _cdf(axis: Any, values: list[float], label: str, **style: Any) -> None:
    if not values:
        return
    ordered = sorted(values)
    n = len(ordered)
    axis.plot(ordered, [(i + 1) / n * 100 for i in range(n)], label=label, **style)


def _plot_latency(axis: Any, results: Results) -> None:
    import matplotlib.ticker

    s, p = results.steady, results.peer
    if s is not None:
        _cdf(axis, s.from_answer_ms, "forge-notifier: webhook 202 → seen", color="C0", lw=2)
        _cdf(axis, s.from_sent_ms, "forge-notifier: request sent → seen", color="C0", ls="--")
        _cdf(axis, s.homeserver_ms, "homeserver send → seen (same period)", color="C2")
    if p is not None:
        _cdf(axis, p.from_sent_ms, "matrix-webhook: request sent → seen", color="C3", lw=2)
        _cdf(axis, p.homeserver_ms, "homeserver send → seen (peer's period)", color="C2", ls=":")
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.set_xlabel("latency, ms (log scale)")
    axis.set_ylabel("% of messages seen within")
    rate = f"{s.rate:g}" if s is not None else "?"
    axis.set_title(f"End to end at {rate} pushes/s (CDF)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")


def _plot_burst(axis: Any, results: Results) -> None:
    b = results.burst
    if b is None:
        axis.set_visible(False)
        return
    xs = [t for t, _ in b.progress]
    axis.step(xs, [n for _, n in b.progress], where="post", color="C0", label="pushes accounted")
    axis.axvline(b.send_s, color="grey", ls=":", label="last push answered")
    axis.set_xlabel("seconds since the first push")
    axis.set_ylabel("pushes accounted for in the room")
    axis.set_title(f"Burst: {b.pushes:,} pushes, {b.repos} repos, window {b.window_s:g} s")
    twin = axis.twinx()
    rss = [(at - b.start, mb) for at, mb in results.rss_samples]
    twin.plot([t for t, _ in rss], [mb for _, mb in rss], color="C1", label="daemon RSS")
    twin.set_ylabel("daemon RSS, MiB")
    twin.set_ylim(bottom=0)
    lines = axis.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    axis.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="center right")
    axis.grid(True, alpha=0.3)
