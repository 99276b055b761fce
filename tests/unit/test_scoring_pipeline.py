"""The scoring pipeline's parts: token-budget buckets, fast padding, the prefetch thread, pipelined
scoring (same scores as the plain loop) and the batch-size probe's search."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from worker.errors import DataError, ScoringError
from worker.scoring import Scorer, ScoringInput
from worker.scoring.batching import bucket, pad_encodings, prefetch, windows
from worker.scoring.engine import CPU_BATCH_SIZE, CPU_BATCH_TOKENS, probe_batch_tokens

WORDS = ["boring", "wonderful", "film", "dull", "smart", "a", "mess", "classic"]


def _records(count: int, seed: int = 0) -> list[ScoringInput]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 30))) for _ in range(count)]
    return [ScoringInput(f"r{i}", text, reference_label=str(rng.choice(["negative", "positive"])))
            for i, text in enumerate(texts)]


def test_buckets_respect_the_record_cap_and_the_token_budget():
    lengths = [2, 3, 3, 5, 8, 8, 20, 40]
    order = list(range(len(lengths)))  # already sorted by length

    capped = list(bucket(order, lengths, batch_size=3, batch_tokens=None))
    assert capped == [[0, 1, 2], [3, 4, 5], [6, 7]]

    budgeted = list(bucket(order, lengths, batch_size=100, batch_tokens=24))
    assert [index for members in budgeted for index in members] == order  # nothing lost, order kept
    for members in budgeted:
        assert len(members) == 1 or len(members) * max(lengths[i] for i in members) <= 24
    assert budgeted[-1] == [7]  # a text over the budget still gets its own batch


def test_fast_padding_equals_the_tokenizers_own(tiny_classifier):
    tokenizer = tiny_classifier.tokenizer
    encodings = [tokenizer(text) for text in ["boring", "a wonderful film , smart and funny", "dull"]]
    expected = tokenizer.pad([dict(encoding) for encoding in encodings], return_tensors="pt")

    padded = pad_encodings([dict(encoding) for encoding in encodings], tokenizer)

    assert set(padded) == set(expected)
    for key in expected:
        torch.testing.assert_close(padded[key], expected[key].long())


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_to_a_multiple_equals_the_tokenizers_own(tiny_classifier, side):
    """The padded length of CUDA-graph training batches: the longest rounded up to a multiple (16 for 9 tokens,
    still 16 for exactly 16), padded on the tokenizer's side."""
    import copy

    tokenizer = copy.deepcopy(tiny_classifier.tokenizer)
    tokenizer.padding_side = side
    for texts in (["boring", "a wonderful film , smart and funny", "dull"], ["great " * 14, "dull"]):
        encodings = [dict(tokenizer(text)) for text in texts]
        expected = tokenizer.pad(encodings, pad_to_multiple_of=16, return_tensors="pt")

        padded = pad_encodings(encodings, tokenizer, multiple_of=16)

        assert padded["input_ids"].shape[1] % 16 == 0
        for key in expected:
            torch.testing.assert_close(padded[key], expected[key].long())


@pytest.mark.parametrize("inputs", [["input_ids", "token_type_ids", "attention_mask"], ["input_ids", "attention_mask"]])
def test_the_rust_backend_path_encodes_exactly_like_the_tokenizers_call(tiny_classifier, inputs):
    """The fast path (the backend called directly) against ``tokenizer(...)``: the same ids, masks and token
    types, the same truncation at a small limit, single texts and text pairs, a model without token types."""
    import copy

    from worker.scoring.batching import _backend_encode, _model_input_keys, _truncating_backend, _wrapper_encode

    tokenizer = copy.deepcopy(tiny_classifier.tokenizer)
    tokenizer.model_input_names = inputs
    texts = [record.text for record in _records(60, seed=4)]
    pairs = [record.text for record in _records(60, seed=5)]
    for max_length, second in ((64, None), (9, None), (12, pairs), (64, pairs)):
        backend = _truncating_backend(tokenizer, max_length)
        assert backend is not None and backend is not tokenizer.backend_tokenizer  # a private, configured copy
        fast, fast_truncated = _backend_encode(backend, _model_input_keys(tokenizer), texts, max_length, second)
        reference, truncated = _wrapper_encode(tokenizer, texts, max_length, second)
        assert fast == [dict(encoding) for encoding in reference], (max_length, second is not None)
        assert fast_truncated == truncated and (truncated > 0) == (max_length < 20)
        assert list(fast[0]) == [key for key in ("input_ids", "token_type_ids", "attention_mask")
                                 if key in inputs or key == "attention_mask"]
    assert _truncating_backend(tokenizer, 9) is _truncating_backend(tokenizer, 9)  # configured once

    tokenizer.model_input_names = [*inputs, "pixel_values"]
    assert _truncating_backend(tokenizer, 9) is None  # inputs the backend does not give: the tokenizer's call


@pytest.mark.parametrize("inputs", [["input_ids", "token_type_ids", "attention_mask"], ["input_ids", "attention_mask"]])
@pytest.mark.parametrize("side", ["right", "left"])
def test_a_window_from_the_backend_pads_exactly_like_the_per_text_encodings(tiny_classifier, inputs, side):
    """The window path (one list a text, batches gathered from flat arrays) gives the arrays that padding the
    per-text encodings gives: same batches, same members, ids, masks and token types, truncation counted; single
    texts and pairs, right and left padding, a token budget, and a template that gives single texts type 1."""
    import copy

    from tokenizers import processors

    from worker.scoring.batching import (
        _backend_encode,
        _Encoded,
        _model_input_keys,
        _Shape,
        _truncating_backend,
        bucket,
        encode_texts,
        pad_arrays,
    )

    def per_text(tokenizer, texts, shape, pairs) -> _Encoded:  # the padding of each text's own encoding
        backend = _truncating_backend(tokenizer, shape.max_length)
        encodings, truncated = _backend_encode(backend, _model_input_keys(tokenizer), texts, shape.max_length, pairs)
        lengths = [len(encoding["input_ids"]) for encoding in encodings]
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        return _Encoded([(members, pad_arrays([encodings[i] for i in members], tokenizer))
                         for members in bucket(order, lengths, batch_size=shape.batch_size,
                                               batch_tokens=shape.batch_tokens)], truncated)

    tokenizer = copy.deepcopy(tiny_classifier.tokenizer)
    tokenizer.model_input_names = inputs
    tokenizer.padding_side = side
    texts = [record.text for record in _records(90, seed=6)]
    pairs = [record.text for record in _records(90, seed=7)]
    typed = copy.deepcopy(tokenizer)  # single texts get token type 1 from this template
    cls_id, sep_id = typed.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    typed.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A:1 [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    cases = [(tokenizer, _Shape(8, 64, None), None), (tokenizer, _Shape(16, 9, None), None),
             (tokenizer, _Shape(32, 64, 120), None), (tokenizer, _Shape(8, 12, 100), pairs),
             (typed, _Shape(8, 64, None), None)]
    for case, (source, shape, second) in enumerate(cases):
        window = encode_texts(texts, source, shape, second)
        expected = per_text(source, texts, shape, second)
        assert window.truncated == expected.truncated, case
        assert [members for members, _ in window.batches] == [members for members, _ in expected.batches], case
        for (_, arrays), (_, wanted) in zip(window.batches, expected.batches, strict=True):
            assert list(arrays) == list(wanted), case
            for key in wanted:
                np.testing.assert_array_equal(arrays[key], wanted[key], err_msg=f"case {case}: {key}")
    if "token_type_ids" in inputs:  # the typed template did reach the arrays
        typed_window = encode_texts(texts, typed, _Shape(8, 64, None))
        assert any(arrays["token_type_ids"].any() for _, arrays in typed_window.batches)
    assert encode_texts(texts, tokenizer, _Shape(16, 9, None)).truncated > 0


def test_prefetch_keeps_order_and_runs_ahead_on_another_thread():
    threads = []

    def produce():
        for item in range(10):
            threads.append(threading.current_thread().name)
            yield item

    assert list(prefetch(produce(), depth=2)) == list(range(10))
    assert set(threads) == {"scoring-prefetch"}


def test_prefetch_raises_the_producers_error_after_the_items_before_it():
    def produce():
        yield 1
        yield 2
        raise DataError("record 'r3': text must be a string")

    seen = []
    with pytest.raises(DataError, match="r3"):
        seen.extend(prefetch(produce()))
    assert seen == [1, 2]


def test_closing_a_prefetch_early_stops_its_thread():
    produced = []

    def produce():
        for item in range(1000):
            produced.append(item)
            yield item

    stream = prefetch(produce(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert len(produced) <= 4  # the producer stopped a few items ahead, not at the end
    assert not any(thread.name == "scoring-prefetch" and thread.is_alive() for thread in threading.enumerate())


@pytest.mark.parametrize("strategy", ["full", "partial"])
def test_pipelined_scoring_gives_the_same_scores_in_the_same_order(tiny_classifier, strategy):
    records = _records(150) + [ScoringInput("blank", "   ")]
    plain = Scorer(tiny_classifier, samples=4, strategy=strategy, batch_size=8, window_batches=3, pipeline=False)
    piped = Scorer(tiny_classifier, samples=4, strategy=strategy, batch_size=8, window_batches=3, pipeline=True)

    expected = list(plain.score(records))
    scores = list(piped.score(records))

    assert [s.record_id for s in scores] == [r.record_id for r in records]
    assert scores[-1].skipped and piped.stats.skipped == 1 and piped.stats.scored == 150
    for got, want in zip(scores[:-1], expected[:-1], strict=True):
        assert got.predicted_label == want.predicted_label
        assert got.bald == pytest.approx(want.bald, abs=1e-6)
        assert got.expected_loss == pytest.approx(want.expected_loss, abs=1e-6)


def test_token_budget_windows_score_every_record_once(tiny_classifier):
    records = _records(80)
    batches = [batch for window in windows(records, tiny_classifier.tokenizer, batch_size=64, max_length=32,
                                           window_batches=2, batch_tokens=64) for batch in window.batches]
    assert sorted(r.record_id for b in batches for r in b.records) == sorted(r.record_id for r in records)
    assert all(b.inputs["input_ids"].numel() <= 64 or len(b.records) == 1 for b in batches)


def test_auto_batch_size_is_the_cpu_default_off_cuda(tiny_classifier):
    scorer = Scorer(tiny_classifier, samples=2, batch_size="auto")
    list(scorer.score(_records(5)))
    assert scorer.batch_size == CPU_BATCH_SIZE and scorer.batch_tokens == CPU_BATCH_TOKENS  # a fixed budget, no probe
    with pytest.raises(ValueError, match="batch_size"):
        Scorer(tiny_classifier, samples=2, batch_size=0)


class _MemoryLimitedPredictor:
    """Stands in for a GPU with room for ``limit`` padded tokens × samples (CUDA is absent here)."""

    def __init__(self, classifier, limit: int, samples: int = 4):
        self.classifier, self.limit, self.samples, self.tried = classifier, limit, samples, []

    def launch(self, inputs):
        tokens = inputs["input_ids"].numel()
        self.tried.append(tokens)
        if tokens * self.samples > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return self

    def result(self):
        return None


def test_the_probe_halves_until_a_pass_fits(tiny_classifier):
    predictor = _MemoryLimitedPredictor(tiny_classifier, limit=64 * 32 * 4)

    budget = probe_batch_tokens(predictor, 32, max_records=256, headroom=1.0)

    assert predictor.tried == [256 * 32, 128 * 32, 64 * 32]
    assert budget == 64 * 32
    with pytest.raises(ScoringError, match="does not fit"):
        probe_batch_tokens(_MemoryLimitedPredictor(tiny_classifier, limit=1), 32, max_records=4)


def test_tokenizer_processes_give_the_same_windows_in_the_same_order(tiny_classifier):
    from worker.scoring.batching import tokenizer_pool

    records = _records(120, seed=3) + [ScoringInput("blank", ""), ScoringInput("late", "boring film")]
    options = {"batch_size": 8, "max_length": 32, "window_batches": 2, "batch_tokens": 96}
    local = list(windows(records, tiny_classifier.tokenizer, **options))
    pool = tokenizer_pool(tiny_classifier.tokenizer, 2)
    try:
        remote = list(windows(records, tiny_classifier.tokenizer, pool=pool, **options))
    finally:
        pool.shutdown()

    assert len(remote) == len(local)
    for got, want in zip(remote, local, strict=True):
        assert got.skipped == want.skipped and got.truncated == want.truncated
        assert [[r.record_id for r in b.records] for b in got.batches] == \
               [[r.record_id for r in b.records] for b in want.batches]
        for got_batch, want_batch in zip(got.batches, want.batches, strict=True):
            for key in want_batch.inputs:
                torch.testing.assert_close(got_batch.inputs[key], want_batch.inputs[key])


def test_a_scorer_with_tokenizer_processes_scores_like_one_without(tiny_classifier):
    records = _records(60, seed=4)
    expected = list(Scorer(tiny_classifier, samples=3, batch_size=8, window_batches=2).score(records))
    with Scorer(tiny_classifier, samples=3, batch_size=8, window_batches=2, pipeline=True,
                tokenizer_workers=2) as scorer:
        first = list(scorer.score(records))
        second = list(scorer.score(records[:10]))  # the pool is reused
    assert scorer._pool is None  # closed on exit
    assert [s.record_id for s in first] == [r.record_id for r in records] and len(second) == 10
    assert [s.loss for s in first] == pytest.approx([s.loss for s in expected], abs=1e-6)
    with pytest.raises(DataError, match="r_bad"), \
            Scorer(tiny_classifier, samples=2, batch_size=4, window_batches=1, tokenizer_workers=1) as failing:
        list(failing.score([*records[:9], ScoringInput("r_bad", 42)]))
