"""Ending signals: a raise that Python drops (in a destructor, a garbage-collector callback) is not lost."""

import os
import signal
import sys

import pytest

from multibackend.runtime import signals


class SignalsWhenCollected:
    """Sends `number` to this process from its destructor, where Python prints and drops what the handler raises."""

    def __init__(self, number: int):
        self.number = number

    def __del__(self):
        os.kill(os.getpid(), self.number)


@pytest.fixture(autouse=True)
def sigint_as_in_a_foreground_job():
    """Ctrl-C as Python sets it up in a terminal: a background job (`nohup nox -s tests &`, many CI runners) starts
    with SIGINT ignored, and verify then leaves it so; these tests are about the foreground case."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def dropped(monkeypatch) -> list:
    """The exceptions Python dropped ("Exception ignored in ...") during the test."""
    found = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: found.append(unraisable.exc_value))
    return found


@pytest.mark.parametrize(
    ("number", "raised"),
    [(signal.SIGTERM, signals.Terminated), (signal.SIGHUP, signals.Terminated), (signal.SIGINT, KeyboardInterrupt)],
)
def test_a_signal_whose_raise_a_destructor_dropped_ends_the_block_all_the_same(dropped, number, raised):
    reached_the_end = False
    with pytest.raises(raised) as ended:
        with signals.ending_signals_raise():
            SignalsWhenCollected(number)  # collected at once: its handler's raise is dropped
            reached_the_end = True
    assert [type(error) for error in dropped] == [raised], "the raise was not dropped: nothing was tested"
    assert reached_the_end
    message, code = signals.ending(ended.value)
    assert code == 128 + number
    signals.raise_if_ended()  # handled: not raised again


def test_a_dropped_signal_is_raised_again_at_the_next_safe_point(dropped):
    with signals.ending_signals_raise():
        SignalsWhenCollected(signal.SIGTERM)
        assert len(dropped) == 1
        with pytest.raises(signals.Terminated) as ended:
            signals.raise_if_ended()
        signals.ending(ended.value)
    assert signal.getsignal(signal.SIGTERM) is not signals._terminated, "the handler outlived its block"


def test_without_a_signal_the_safe_point_and_the_block_end_quietly():
    with signals.ending_signals_raise():
        signals.raise_if_ended()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
