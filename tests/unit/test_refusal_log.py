"""Refusal log lines: a few one by one, then a per-minute summary counting every refusal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from receiver.refusal_log import RefusalLog, printable

LOGGER = "tests.refusals"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_flood_is_logged_a_few_lines_then_one_summary(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(logging.getLogger(LOGGER), lines_per_window=3, clock=clock)
    for i in range(10_000):
        refusals.refused(401 if i % 2 else 400, "refused %d", i)
    assert _lines(caplog) == ["refused 0", "refused 1", "refused 2"]
    clock.now += 60
    refusals.refused(401, "refused %s", "next minute")
    assert _lines(caplog)[3:] == [
        "10000 requests refused in the last minute: 400x5000, 401x5000"
        " (9997 not logged one by one)",
        "refused next minute",
    ]


def test_no_summary_when_every_refusal_was_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    refusals = RefusalLog(logging.getLogger(LOGGER), lines_per_window=3, clock=clock)
    refusals.refused(401, "one")
    clock.now += 61
    refusals.refused(401, "two")
    refusals.close()
    assert _lines(caplog) == ["one", "two"]


async def test_the_summary_comes_at_the_end_of_the_window_without_more_refusals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusals = RefusalLog(logging.getLogger(LOGGER), lines_per_window=1, window_s=0.05)
    refusals.refused(400, "first")
    refusals.refused(400, "second")
    for _ in range(200):  # the timer fires ~50 ms later; poll the positive outcome
        if len(_lines(caplog)) == 2:
            break
        await asyncio.sleep(0.01)
    assert _lines(caplog) == [
        "first",
        "2 requests refused in the last minute: 400x2 (1 not logged one by one)",
    ]


def test_client_text_becomes_one_short_line() -> None:
    assert printable("a\nb\x1b[31m") == "a\\nb\\x1b[31m"
    assert printable("x" * 500, limit=10) == "x" * 9 + "…"
