"""The pusher's stage (worker.background): order, bounded waiting, errors raised in the caller's thread."""

from __future__ import annotations

import threading

import pytest

from worker.background import BackgroundStage


def test_items_are_handled_in_order_and_all_before_the_block_ends():
    handled = []
    with BackgroundStage(handled.append, depth=2) as stage:
        for i in range(50):
            stage.put(i)
    assert handled == list(range(50))


def test_the_producer_waits_when_depth_items_wait():
    """With the handler blocked, only `depth` items are accepted beyond the one being handled."""
    release, started = threading.Event(), threading.Event()
    handled = []

    def slow(item):
        started.set()
        release.wait(5)
        handled.append(item)

    accepted = []
    with BackgroundStage(slow, depth=2) as stage:
        producer = threading.Thread(target=lambda: [stage.put(i) or accepted.append(i) for i in range(6)])
        producer.start()
        started.wait(5)
        producer.join(0.5)
        assert accepted == [0, 1, 2]  # one in the handler, two waiting; the fourth put blocks
        release.set()
        producer.join(5)
    assert handled == list(range(6))


def test_an_error_in_the_handler_is_raised_in_the_callers_thread_and_later_items_are_dropped():
    handled = []

    def push(item):
        if item == 3:
            raise ConnectionError("server gone")
        handled.append(item)

    with pytest.raises(ConnectionError, match="server gone"), BackgroundStage(push, depth=1) as stage:
        for i in range(100):
            stage.put(i)
    assert handled == [0, 1, 2]


def test_what_was_handed_over_is_finished_when_the_producer_fails():
    handled = []
    with pytest.raises(ValueError, match="bad text"), BackgroundStage(handled.append, depth=4) as stage:
        stage.put("batch 1")
        stage.put("batch 2")
        raise ValueError("bad text")
    assert handled == ["batch 1", "batch 2"]


def test_the_time_the_producer_waits_for_a_slow_handler_is_counted():
    """put() blocked on a full queue and the wait for the last items at the end: the pipeline's back-pressure, which
    a score run reports as its time waiting for pushes."""
    def slow(item):
        threading.Event().wait(0.05)

    with BackgroundStage(slow, depth=1) as stage:
        for i in range(6):
            stage.put(i)
    assert 0.2 <= stage.blocked_seconds <= 0.5  # 6 × 50 ms handled, less what ran while the producer put

    with BackgroundStage(lambda item: None, depth=4) as fast:
        for i in range(6):
            fast.put(i)
    assert fast.blocked_seconds < 0.05
