"""Refusal log lines: a few one by one, then a per-minute summary counting every refusal."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.http_exceptions import LineTooLong

from receiver.refusal_log import RefusalLog, printable
from receiver.server import ProtocolLog, server_error_log

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


def test_aiohttp_errors_a_handler_raised_keep_a_traceback_but_only_a_few_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol_log = ProtocolLog(RefusalLog(logging.getLogger(LOGGER)), server_error_log())
    for _ in range(20):
        try:
            raise RuntimeError("a bug")
        except RuntimeError as exc:
            protocol_log.exception("Error handling request from %s", "10.0.0.9", exc_info=exc)
    errors = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(errors) == 5
    assert all(r.levelno == logging.ERROR and r.exc_info for r in errors)


def test_aiohttp_parse_errors_are_refusals_of_one_line(caplog: pytest.LogCaptureFixture) -> None:
    protocol_log = ProtocolLog(RefusalLog(logging.getLogger(LOGGER)), server_error_log())
    exc = LineTooLong(b"x" * 9000, 8190)
    protocol_log.exception("Error handling request from %s", "10.0.0.9", exc_info=exc)
    [record] = caplog.records
    assert (record.name, record.levelno, record.exc_info) == (LOGGER, logging.WARNING, None)
    assert record.getMessage().startswith("request from 10.0.0.9 refused: 400 Got more than")
    assert len(record.getMessage()) < 200
