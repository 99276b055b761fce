"""worker.iterables.timed: where a pipeline's consumer waits for its producer."""

from __future__ import annotations

import time

from worker.iterables import timed


def test_each_wait_for_the_next_item_is_handed_over_and_the_items_pass_unchanged():
    waits: list[float] = []

    def slow():
        for item in range(3):
            time.sleep(0.03 * item)
            yield item

    assert list(timed(slow(), waits.append)) == [0, 1, 2]
    assert len(waits) == 4  # three items and the end of the stream
    assert waits[0] < 0.02 and 0.025 <= waits[1] < 0.06 and 0.055 <= waits[2] < 0.1


def test_closing_it_closes_the_producer_at_once():
    closed = []

    def producer():
        try:
            yield from range(10)
        finally:
            closed.append(True)

    items = producer()
    consumer = timed(items, lambda seconds: None)
    assert next(consumer) == 0
    consumer.close()
    assert closed == [True]
