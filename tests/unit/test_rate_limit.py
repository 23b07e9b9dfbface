"""The pure rate limiter, driven by a fake clock."""

from __future__ import annotations

import pytest

from core.rate_limit import Decision, decide, window_open

WINDOW = 60.0


def test_first_message_of_a_pair_goes_at_once() -> None:
    assert decide(None, holding=False, now=1000.0, window_s=WINDOW) == Decision(True, 1000.0)


@pytest.mark.parametrize(("now", "send"), [(1000.0, False), (1059.9, False), (1060.0, True)])
def test_window_closes_for_its_length(now: float, send: bool) -> None:
    decision = decide(1000.0, holding=False, now=now, window_s=WINDOW)
    assert decision.send_now is send
    assert decision.open_at == max(now, 1060.0)


def test_a_newcomer_joins_held_events_even_when_the_window_is_open() -> None:
    decision = decide(1000.0, holding=True, now=2000.0, window_s=WINDOW)
    assert decision == Decision(False, 2000.0)


def test_zero_window_turns_limiting_off() -> None:
    assert decide(1000.0, holding=False, now=1000.0, window_s=0).send_now


def test_zero_window_still_lets_events_held_before_a_restart_go_first() -> None:
    assert decide(1000.0, holding=True, now=1000.0, window_s=0) == Decision(False, 1000.0)
    assert window_open(1000.0, now=1000.0, window_s=0)


def test_window_open_for_release() -> None:
    assert window_open(None, now=5.0, window_s=WINDOW)
    assert not window_open(1000.0, now=1059.0, window_s=WINDOW)
    assert window_open(1000.0, now=1060.0, window_s=WINDOW)


def test_twenty_pushes_in_a_window_make_one_send_and_nineteen_holds() -> None:
    """A simulated burst: the limiter alone, with the clock advancing 0.1 s per push."""
    last_sent, holding, decisions = None, False, []
    for i in range(20):
        decision = decide(last_sent, holding, now=100.0 + i * 0.1, window_s=3.0)
        decisions.append(decision.send_now)
        if decision.send_now:
            last_sent = 100.0 + i * 0.1
        else:
            holding = True
    assert decisions == [True] + [False] * 19
