"""A score run streams: the records it reads reach the first batch before the pull is exhausted, and the
reading stays a bounded distance ahead of the batches (a generator test, no timing). The source is a
generator standing in for ``ArgillaGateway.pull`` (the real paging is tested against the real server in
tests/integration/test_gateway_sync.py); what is tested here is the job's own plumbing."""

from __future__ import annotations

from worker.gateway.client import SUBMITTED_FILTER
from worker.iterables import batched
from worker.jobs import ScoreReport, _candidates, _todo
from worker.records import PulledRecord, ResponseState

N = 10_000
BATCH = 25


class CountingSource:
    """``pull`` yields N records lazily (every 7th reviewed) and counts what was read."""

    def __init__(self):
        self.read = 0
        self.passes: list[dict | None] = []

    def pull(self, *, since=None, reconciliation=None, condition=None, after=None):
        assert after is None  # a full run from the start
        self.passes.append(condition)
        for i in range(N):
            reviewed = i % 7 == 0
            if condition == SUBMITTED_FILTER and not reviewed:
                continue  # the server's filter
            self.read += 1
            responses = (ResponseState("u1", "positive", "submitted"),) if reviewed else ()
            yield PulledRecord(f"s{i}", f"r{i}", f"text {i}", {}, None, responses, None)


def test_batches_come_while_the_pull_goes_on_unreviewed_records_first():
    source = CountingSource()
    report = ScoreReport("v1")
    todo = _todo(_candidates(source, [], since=None, reconciliation=None, server_ids=None), "v1", "auto", report,
                 since=None, forced=set(), watermark=None)
    batches = batched(todo, BATCH)

    first = next(batches)
    assert len(first) == BATCH and source.read <= BATCH + BATCH // 6 + 1  # read ahead: only the reviewed it skipped
    assert all(not record.responses for record in first)

    seen = [record.record_id for batch in [first, *batches] for record in batch]
    assert len(seen) == len(set(seen)) == N  # every record once: unreviewed in pass 1, reviewed in pass 2
    reviewed_from = next(i for i, record_id in enumerate(seen) if int(record_id[1:]) % 7 == 0)
    assert reviewed_from == N - len(range(0, N, 7))  # every unreviewed record before every reviewed one
    assert source.passes == [None, SUBMITTED_FILTER]
    assert report.considered == N and report.up_to_date == 0


def test_a_reservoir_sample_is_uniform_bounded_and_in_stream_order():
    """Algorithm R keeps each of N items with probability size/N, holds at most ``size``, keeps all of a short
    stream."""
    import random
    from collections import Counter

    from worker.iterables import reservoir_sample

    assert reservoir_sample(iter("abc"), 5, random.Random(0)) == (["a", "b", "c"], 3)
    counts: Counter = Counter()
    for seed in range(2_000):
        sample, seen = reservoir_sample(iter(range(10)), 3, random.Random(seed))
        assert seen == 10 and len(sample) == 3 and sample == sorted(sample)
        counts.update(sample)
    assert all(abs(counts[item] / 2_000 - 0.3) < 0.04 for item in range(10)), counts
