"""The test doubles and fixtures that keep the suite independent of the machine's speed."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.conftest import StillClock
from tests.fakeduo import universal


def test_a_duo_call_delayed_past_a_reset_is_dropped_not_answered_in_the_next_test(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test that makes Duo slow ends before Duo's answer; the fixture then resets the fake. The delayed
    request, answered after that, counted a health check (or spent a code) in the next test."""
    duo = universal.FakeDuo("DIXXXXXXXXXXXXXXXXXX", "secret")
    duo.set_faults({"delay": 60})
    monkeypatch.setattr(time, "sleep", lambda seconds: duo.reset())  # the test ends while the call sleeps
    dropped: list[bool] = []
    handler = SimpleNamespace(server=SimpleNamespace(duo=duo), _reset_connection=lambda: dropped.append(True))
    assert universal.Handler._duo_endpoint(handler) is False  # type: ignore[arg-type]
    assert dropped == [True]


def test_a_delay_still_applies_when_nothing_was_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    duo = universal.FakeDuo("DIXXXXXXXXXXXXXXXXXX", "secret")
    duo.set_faults({"delay": 60})
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    handler = SimpleNamespace(server=SimpleNamespace(duo=duo), _reset_connection=lambda: None)
    assert universal.Handler._duo_endpoint(handler) is True  # type: ignore[arg-type]
    assert slept == [60.0]


def test_the_still_clock_stands_still_and_moves_when_told(still_clock: StillClock) -> None:
    wall, mono = time.time(), time.monotonic()
    sum(range(100_000))  # some real time passes
    assert (time.time(), time.monotonic()) == (wall, mono)
    still_clock.advance(61)
    assert (time.time(), time.monotonic()) == (wall + 61, mono + 61)


def test_a_sleep_moves_the_still_clock_so_a_deadline_is_reached(still_clock: StillClock) -> None:
    """single_flight waits for another worker's answer until a monotonic deadline, sleeping 20 ms at a
    time: with a clock that a sleep did not move, it would wait for ever."""
    wall, mono = time.time(), time.monotonic()
    time.sleep(0.02)
    assert (time.time(), time.monotonic()) == (wall + 0.02, mono + 0.02)
