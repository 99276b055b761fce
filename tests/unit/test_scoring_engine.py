"""The scoring engine on a tiny real BERT: MC sampling, fast MC, streaming, bad input."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from tests.tiny_models import save_tiny_classifier
from worker.errors import DataError, ScoringError
from worker.scoring import MCPredictor, Scorer, ScoringInput, check_label_set, load_classifier
from worker.scoring.batching import windows

TEXTS = [
    "a wonderful , moving film",
    "dull and lifeless",
    "the best movie of the year , funny and smart and charming and clever",
    "boring",
    "an instant classic",
    "i want those two hours of my life back , a tedious mess",
]


def _inputs(classifier, texts=TEXTS):
    return dict(classifier.tokenizer(texts, padding=True, return_tensors="pt"))


def test_mc_samples_differ_and_the_deterministic_pass_is_reproducible(tiny_classifier):
    for predictor in (MCPredictor(tiny_classifier, samples=8, strategy="full"),
                      MCPredictor(tiny_classifier, samples=8, mc_layers=1),
                      MCPredictor(tiny_classifier, samples=8, mc_layers=0)):
        first = predictor.predict(_inputs(tiny_classifier))
        second = predictor.predict(_inputs(tiny_classifier))

        assert first.mc.shape == (len(TEXTS), 2, 8)
        assert first.mc.exp().std(dim=2).min() > 0, f"{predictor!r}: MC samples are identical"
        torch.testing.assert_close(first.deterministic, second.deterministic)
        with torch.inference_mode():
            plain = torch.log_softmax(tiny_classifier.model(**_inputs(tiny_classifier)).logits, dim=-1)
        torch.testing.assert_close(first.deterministic, plain)


def test_partial_mc_with_all_layers_reproduces_full_mc_for_the_same_seed(tiny_classifier):
    full = MCPredictor(tiny_classifier, samples=5, strategy="full")
    partial = MCPredictor(tiny_classifier, samples=5, strategy="partial", mc_layers="all")

    torch.manual_seed(123)
    full_mc = full.predict(_inputs(tiny_classifier)).mc
    torch.manual_seed(123)
    partial_mc = partial.predict(_inputs(tiny_classifier)).mc

    torch.testing.assert_close(partial_mc, full_mc, atol=1e-5, rtol=1e-4)
    torch.manual_seed(124)
    assert not torch.allclose(partial.predict(_inputs(tiny_classifier)).mc, full_mc, atol=1e-3)


@pytest.mark.parametrize("consistent", [True, False])
def test_head_only_mc_pools_once_and_draws_the_same_samples_as_repeating_the_hidden_states(
        tiny_classifier, monkeypatch, consistent):
    """k = 0 with a BERT head: the pooled vectors are repeated instead of the hidden states [n, seq, hidden]; the
    head's dropouts see the same inputs, so the samples are the same (consistent masks, and BaaL's for a seed)."""
    from worker.scoring.mc import _StochasticSuffix

    predictor = MCPredictor(tiny_classifier, samples=6, mc_layers=0, consistent=consistent)
    assert predictor._suffix_parts.pools_once
    torch.manual_seed(7)
    pooled = predictor.predict(_inputs(tiny_classifier)).mc
    monkeypatch.setattr(_StochasticSuffix, "pools_once", property(lambda self: False))
    torch.manual_seed(7)
    repeated = predictor.predict(_inputs(tiny_classifier)).mc

    torch.testing.assert_close(pooled, repeated, atol=1e-6, rtol=1e-5)
    assert pooled.exp().std(dim=2).min() > 0  # still samples, not one value repeated
    assert not MCPredictor(tiny_classifier, samples=6, mc_layers=1)._suffix_parts.pools_once  # a layer to run


def test_the_original_model_stays_deterministic_after_mc(tiny_classifier):
    MCPredictor(tiny_classifier, samples=3, mc_layers="all").predict(_inputs(tiny_classifier))
    MCPredictor(tiny_classifier, samples=3, strategy="full").predict(_inputs(tiny_classifier))
    with torch.inference_mode():
        a = tiny_classifier.model(**_inputs(tiny_classifier)).logits
        b = tiny_classifier.model(**_inputs(tiny_classifier)).logits
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("attention_dropout", [False, True])
def test_attention_dropout_is_sampled_only_with_eager_attention(tmp_path, caplog, attention_dropout):
    """A BERT whose only dropout is attention dropout: under SDPA MC leaves it off, so its samples would be
    identical: the probe finds that and samples its (zero-rate) dropout layers at the fallback rate, saying so;
    with eager attention the attention dropout itself is sampled (no warning)."""
    model_dir = save_tiny_classifier(tmp_path / "m", hidden_dropout=0.0, attention_dropout=0.5)
    classifier = load_classifier(model_dir, device="cpu", attention_dropout=attention_dropout,
                                 version=f"attention-{attention_dropout}")

    with caplog.at_level("WARNING", logger="worker.scoring.mc"):
        mc = MCPredictor(classifier, samples=6, mc_layers="all").predict(_inputs(classifier)).mc

    assert mc.exp().std(dim=2).max() > 1e-6
    fell_back = any("has no dropout that MC dropout samples" in message for message in caplog.messages)
    assert fell_back is not attention_dropout
    unsampled = MCPredictor(classifier, samples=6, mc_layers="all", dropout_rate=0.0).predict(_inputs(classifier)).mc
    assert unsampled.exp().std(dim=2).max() < 1e-6  # rate 0 everywhere: nothing is sampled at all


def test_mc_layers_out_of_range_is_refused_naming_the_setting_and_the_models_layers(tiny_classifier):
    """`scoring.mc_layers = 99` was a ValueError traceback from every score run."""
    from worker.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^scoring.mc_layers = 3: model .* has 2 encoder layers, so mc_layers must "
                                          r"be in 0\.\.2, 'all' or 'auto'$"):
        MCPredictor(tiny_classifier, mc_layers=3)


def test_scores_come_back_in_input_order_and_do_not_depend_on_batching(tiny_classifier):
    records = [ScoringInput(f"r{i}", text, ("negative", "positive")[i % 2]) for i, text in enumerate(TEXTS * 3)]

    small = list(Scorer(tiny_classifier, samples=4, batch_size=2, window_batches=2).score(records))
    large = list(Scorer(tiny_classifier, samples=4, batch_size=64).score(records))

    assert [score.record_id for score in small] == [record.record_id for record in records]
    for a, b in zip(small, large, strict=True):
        assert a.loss == pytest.approx(b.loss, abs=1e-5)  # padding does not change the deterministic pass
        assert a.deterministic_label == b.deterministic_label


def test_each_score_is_finite_and_consistent(tiny_classifier):
    records = [ScoringInput(f"r{i}", text, "positive" if i < 3 else None) for i, text in enumerate(TEXTS)]
    scores = list(Scorer(tiny_classifier, samples=10).score(records))

    for score in scores:
        assert score.predicted_label in ("negative", "positive")
        assert sum(score.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert score.score == pytest.approx(max(score.probabilities.values()))
        for value in (score.score, score.bald, score.entropy, score.margin, score.variance, score.variation_ratio):
            assert math.isfinite(value)
        assert 0 <= score.bald <= math.log(2) + 1e-9
    labelled, unlabelled = scores[:3], scores[3:]
    assert all(math.isfinite(s.loss) and math.isfinite(s.expected_loss) for s in labelled)
    assert all(s.disagreement == (s.predicted_label != "positive") for s in labelled)
    assert all(s.loss is None and s.expected_loss is None and s.disagreement is None for s in unlabelled)


def test_scores_built_from_rows_equal_the_dataclass_s_own(tiny_classifier):
    """The scorer builds its RecordScores without the frozen dataclass's __init__: each equals the one __init__
    builds from the same fields (the defaults and the plugin scores included), and none shares its ``extra``."""
    from dataclasses import asdict, fields

    from worker.scoring.engine import RecordScore

    records = [ScoringInput(f"r{i}", text, "positive" if i % 2 else None) for i, text in enumerate(TEXTS)]
    scorer = Scorer(tiny_classifier, samples=6, extra_scorers={"peak": lambda probs: probs.max(axis=(1, 2))})
    scores = list(scorer.score(records))
    for score in scores:
        assert type(score) is RecordScore and score == RecordScore(**asdict(score))
        assert set(vars(score)) == set(vars(RecordScore(record_id="x")))  # every field set, nothing else
        assert set(score.extra) == {"peak"} and 0.5 <= score.extra["peak"] <= 1  # a sample's top class
    assert len({id(score.extra) for score in scores}) == len(scores)
    names = [item.name for item in fields(RecordScore)]
    bare = RecordScore(record_id="x")
    built = RecordScore.from_rows(names, [tuple(getattr(bare, name) for name in names)])
    assert built == [bare] and vars(built[0]) == vars(bare)
    with pytest.raises(AttributeError):  # still frozen
        built[0].score = 1.0
    with pytest.raises(ValueError, match="every field once"):  # a field left out would be missing, not None
        RecordScore.from_rows(names[1:], [tuple(getattr(bare, name) for name in names[1:])])


def test_the_same_seed_gives_the_same_scores(tiny_classifier):
    records = [ScoringInput(f"r{i}", text, "negative") for i, text in enumerate(TEXTS)]
    first = list(Scorer(tiny_classifier, samples=6, seed=5).score(records))
    second = list(Scorer(tiny_classifier, samples=6, seed=5).score(records))
    assert [s.bald for s in first] == [s.bald for s in second]


def test_blank_texts_are_skipped_with_a_reason_and_the_rest_is_scored(tiny_classifier):
    records = [ScoringInput("ok-1", "a great film"), ScoringInput("none", None), ScoringInput("empty", ""),
               ScoringInput("blank", "  \n\t "), ScoringInput("ok-2", "boring"),
               # a text pair with one side empty (an optional field) is read; with both blank it is skipped
               ScoringInput("pair-first-empty", "", text_pair="a great film"),
               ScoringInput("pair-blank", "", text_pair="  ")]
    scorer = Scorer(tiny_classifier, samples=3)

    scores = {score.record_id: score for score in scorer.score(records)}

    assert scores["none"].skipped_reason == "text is missing (None)"
    assert scores["empty"].skipped_reason == "text is empty or whitespace only"
    assert scores["blank"].skipped and scores["blank"].predicted_label is None
    assert scores["pair-blank"].skipped_reason == "text is empty or whitespace only"
    assert not any(scores[i].skipped for i in ("ok-1", "ok-2", "pair-first-empty"))
    assert scores["pair-first-empty"].predicted_label is not None
    assert (scorer.stats.scored, scorer.stats.skipped) == (3, 4)


def test_a_non_string_text_is_an_error_naming_the_record(tiny_classifier):
    records = [ScoringInput("ok", "fine"), ScoringInput("rec-42", 3.14)]
    with pytest.raises(DataError, match=r"record 'rec-42': text must be a string, got float"):
        list(Scorer(tiny_classifier, samples=2).score(records))


def test_an_unknown_reference_label_is_an_error_naming_record_and_value(tiny_classifier):
    with pytest.raises(DataError, match=r"record 'r1': label 'neutral' is not one of the model's labels"):
        list(Scorer(tiny_classifier, samples=2).score([ScoringInput("r1", "fine", "neutral")]))


def test_a_label_set_mismatch_lists_both_sets():
    with pytest.raises(ScoringError, match=r"\['negative', 'positive'\] differ .* \['bad', 'good'\]"):
        check_label_set(("negative", "positive"), ["good", "bad"])


def test_long_texts_are_truncated_and_counted(tiny_classifier):
    long_text = " ".join(["wonderful"] * 200)
    scorer = Scorer(tiny_classifier, samples=2)
    scores = list(scorer.score([ScoringInput("long", long_text), ScoringInput("short", "boring")]))
    assert scorer.stats.truncated == 1
    assert not scores[0].skipped


def test_batches_are_length_bucketed(tiny_classifier):
    """Inside a window the records are sorted by length before they are cut into batches. The first windows hold
    1 and 2 batches (the model starts sooner); the third, full one (4 batches) is the one looked at."""
    long_text = " ".join(["wonderful"] * 20)
    mixed = np.random.default_rng(0).permutation(["boring"] * 8 + [long_text] * 8).tolist()
    records = [ScoringInput(f"r{i}", text) for i, text in enumerate(["fine"] * 12 + mixed)]

    found = list(windows(records, tiny_classifier.tokenizer, batch_size=4, max_length=32, window_batches=4))

    assert [len(window.records) for window in found] == [4, 8, 16]
    widths = [batch.inputs["input_ids"].shape[1] for batch in found[2].batches]
    assert widths == sorted(widths) and widths[0] < widths[-1]
    assert all(batch.inputs["attention_mask"].all() for batch in found[2].batches)  # no padding inside a bucket


def test_the_first_windows_grow_to_the_full_window():
    """1, 2, 4 … batches, then window_batches for good (a score call's model starts after one batch is tokenized,
    not a whole window of up to 16 batches); a window of one batch does not grow."""
    from itertools import islice

    from worker.scoring.batching import window_sizes

    assert list(islice(window_sizes(4, 16), 7)) == [4, 8, 16, 32, 64, 64, 64]
    assert list(islice(window_sizes(32, 3), 4)) == [32, 64, 96, 96]
    assert list(islice(window_sizes(8, 1), 3)) == [8, 8, 8]


def test_loading_a_missing_model_is_a_clear_error(tmp_path):
    """A local path with nothing there is said as such (transformers answers about a Hub id's format); a path
    from the user's home directory is read as one."""
    with pytest.raises(ScoringError, match="cannot load a sequence classifier from .*: no such directory"):
        load_classifier(tmp_path / "nothing-here", device="cpu")
    with pytest.raises(ScoringError, match="cannot load a sequence classifier from 'team/sentiment/v3'"):
        load_classifier("team/sentiment/v3", device="cpu")


def test_a_model_directory_under_the_home_directory_loads_from_a_tilde_path(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_model_dir.parent))
    classifier = load_classifier(f"~/{tiny_model_dir.name}", device="cpu")
    assert classifier.head.labels


def test_auto_depth_is_the_last_two_thirds_of_the_encoder_on_a_cpu_and_every_layer_on_cuda(tiny_classifier):
    import torch

    from worker.scoring.mc import auto_mc_layers

    assert [auto_mc_layers(n) for n in (2, 6, 12, 24)] == [2, 4, 8, 16]
    assert auto_mc_layers(6, torch.device("cpu")) == 4
    assert auto_mc_layers(6, torch.device("cuda")) == "all"
    assert "mc_layers=2" in repr(MCPredictor(tiny_classifier, samples=2))


def test_a_decoder_classifier_without_a_padding_token_is_scored_with_full_mc(tmp_path):
    """A GPT-2-style classifier (no padding token, no BERT encoder layers): padded with its end-of-sequence
    token, MC dropout over the whole model; batches of several records score like records scored one by one."""
    from tests.tiny_models import save_tiny_decoder_classifier
    from worker.scoring import load_classifier

    classifier = load_classifier(save_tiny_decoder_classifier(tmp_path / "gpt"), device="cpu", version="gpt-v1")
    assert classifier.tokenizer.pad_token == "<|endoftext|>"
    assert classifier.model.config.pad_token_id == classifier.tokenizer.pad_token_id
    records = [ScoringInput(f"r{i}", text, "positive") for i, text in enumerate(TEXTS)]
    scorer = Scorer(classifier, samples=4, batch_size=4, seed=1)
    assert scorer.predictor.strategy == "full"
    together = {s.record_id: s for s in scorer.score(records)}
    assert all(not s.skipped and math.isfinite(s.loss) for s in together.values())
    # the padding is ignored: a short text padded beside a long one gets the logits it gets alone
    short, long = min(TEXTS, key=len), max(TEXTS, key=len)
    with torch.no_grad():
        padded = classifier.model(**classifier.tokenizer([short, long], padding=True, return_tensors="pt")).logits
        alone = classifier.model(**classifier.tokenizer([short], return_tensors="pt")).logits
    assert torch.allclose(padded[0], alone[0], atol=1e-5)


def test_auto_batches_on_a_cpu_cap_padded_tokens_so_long_documents_come_fewer_at_a_time(tiny_classifier, monkeypatch):
    """``batch_size = "auto"`` off CUDA: ≤ 32 records and ≤ CPU_BATCH_TOKENS padded tokens a batch (lowered here to
    fit the tiny model's 32-token limit); the real passes run, a spy records their shapes."""
    from worker.scoring import engine

    monkeypatch.setattr(engine, "CPU_BATCH_TOKENS", 256)
    long_text = " ".join(["the best movie of the year , funny and smart and charming and clever"] * 3)
    records = ([ScoringInput(f"long{i}", long_text) for i in range(40)]
               + [ScoringInput(f"short{i}", "boring") for i in range(64)])
    scorer = Scorer(tiny_classifier, samples=3, batch_size="auto", progress=False)
    shapes = []
    launch = scorer.predictor.launch
    monkeypatch.setattr(scorer.predictor, "launch",
                        lambda inputs, reference=None: shapes.append(tuple(inputs["input_ids"].shape))
                        or launch(inputs, reference))

    scores = list(scorer.score(records))

    assert len(scores) == len(records) and all(not score.skipped for score in scores)
    assert all(rows * length <= 256 for rows, length in shapes), shapes
    assert max(rows for rows, length in shapes if length >= 32) == 256 // 32  # the long ones: 8 a batch
    assert max(rows for rows, _ in shapes) == 32  # short ones still fill a batch of 32
    assert Scorer(tiny_classifier, samples=3, batch_size=16).batch_tokens is None  # a set size is records only


def test_a_text_longer_than_the_token_budget_draws_its_samples_fewer_at_a_time_with_the_same_scores(
        tiny_classifier, monkeypatch):
    """A text past the CPU token budget (lowered here below the tiny model's 32-token limit) is a batch of its own;
    its MC passes then hold at most what a full batch's pass holds (budget × samples a pass), not T times its
    length at once. With consistent masks the samples are the same whichever pass draws them: same scores."""
    from worker.scoring import engine

    monkeypatch.setattr(engine, "CPU_BATCH_TOKENS", 16)
    long_text = " ".join(["the best movie of the year , funny and smart and charming and clever"] * 3)
    records = [ScoringInput("long", long_text, "positive"), ScoringInput("short", "boring", "negative")]
    bounded = Scorer(tiny_classifier, samples=8, consistent=True, batch_size="auto", progress=False)
    assert bounded.predictor.sample_tokens == 16 * 8
    passes = []
    sample_logits = bounded.predictor._mc_logits
    monkeypatch.setattr(bounded.predictor, "_mc_logits", lambda inputs, hidden, count: passes.append(
        count * inputs["input_ids"].numel()) or sample_logits(inputs, hidden, count))

    scores = list(bounded.score(records))
    whole = list(Scorer(tiny_classifier, samples=8, consistent=True, batch_size=2, progress=False).score(records))

    assert passes and max(passes) <= 16 * 8, passes  # the 32-token text: 4 samples a pass, not 8
    for ours, theirs in zip(scores, whole, strict=True):
        # abs: a BALD near 0 (6e-7) is a difference of two entropies, so its relative error is float noise
        assert (ours.bald, ours.expected_loss) == pytest.approx((theirs.bald, theirs.expected_loss), rel=1e-5, abs=1e-9)


def _memory_limit(scorer, monkeypatch, rows: int, *, text: str | None = None) -> list[int]:
    """Make the scorer's passes raise CUDA's out-of-memory error for batches of more than ``rows`` records (or, with
    ``text``, for any batch holding it), as a GPU whose free memory ran short would. The error is injected: no GPU
    here (tests/unit/test_cuda.py fills a real GPU's memory). Returns the batch sizes launched."""
    launched = []
    launch = scorer.predictor.launch
    tokens = scorer.classifier.tokenizer(text)["input_ids"] if text is not None else None

    def limited(inputs, reference=None):
        launched.append(len(inputs["input_ids"]))
        holds_text = tokens is not None and any(row[:len(tokens)] == tokens for row in inputs["input_ids"].tolist())
        if len(inputs["input_ids"]) > rows or holds_text:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return launch(inputs, reference)

    monkeypatch.setattr(scorer.predictor, "launch", limited)
    return launched


@pytest.mark.parametrize("adaptive", [False, True])
def test_a_batch_that_does_not_fit_the_gpu_is_scored_in_parts_with_the_same_scores(tiny_classifier, monkeypatch,
                                                                                     caplog, adaptive):
    """A GPU whose free memory runs short mid-run (another process took some): the batch is scored in halves, split
    again while a half does not fit, with the scores of one pass (consistent masks); a batch at least as large goes
    to parts at once; the scorer's next runs batch half as many records (logged)."""
    from worker.scoring.adaptive import AdaptiveSampling

    records = [ScoringInput(f"r{i}", text, ("negative", "positive")[i % 2]) for i, text in enumerate(TEXTS * 3)]
    # shortest first: every 8-record batch after the first is at least as large (the first windows are 1 and 2
    # batches, sorted within each, so an unsorted stream could bring a smaller batch later, which is tried whole)
    records.sort(key=lambda record: len(tiny_classifier.tokenizer(record.text)["input_ids"]))
    options = {"samples": 6, "consistent": True, "batch_size": 8, "progress": False,
               "adaptive": AdaptiveSampling(round_size=2, bald_rse=0.5, loss_se=0.5) if adaptive else None}
    whole = list(Scorer(tiny_classifier, **options).score(records))
    scorer = Scorer(tiny_classifier, **options)
    launched = _memory_limit(scorer, monkeypatch, rows=3)

    with caplog.at_level("WARNING"):
        parts = list(scorer.score(records))

    assert [score.record_id for score in parts] == [record.record_id for record in records]
    for ours, theirs in zip(parts, whole, strict=True):
        assert ours.predicted_label == theirs.predicted_label and ours.mc_samples == theirs.mc_samples
        assert (ours.loss, ours.bald, ours.score) == pytest.approx((theirs.loss, theirs.bald, theirs.score),
                                                                   rel=1e-4, abs=1e-6)
    assert not adaptive or min(score.mc_samples for score in parts) < 6  # some records stopped early
    assert launched.count(8) == 1, launched  # the first 8-record batch failed once; the later ones went to parts
    assert max(launched[1:]) <= 4 and scorer.batch_size == 4
    assert "a batch of 8 records with 6 MC samples did not fit the GPU's free memory" in caplog.text
    assert "this scorer's next runs batch at most 4 records" in caplog.text


def test_one_record_that_does_not_fit_the_gpu_alone_is_an_error_naming_it(tiny_classifier, monkeypatch):
    records = [ScoringInput(f"r{i}", text) for i, text in enumerate(TEXTS)]
    scorer = Scorer(tiny_classifier, samples=6, batch_size=8, progress=False)
    _memory_limit(scorer, monkeypatch, rows=8, text=TEXTS[2])

    with pytest.raises(ScoringError, match=r"record 'r2': \d+ tokens with 6 MC samples do not fit the GPU's free "
                                           r"memory .*lower scoring.samples"):
        list(scorer.score(records))


def test_the_time_spent_waiting_for_records_and_in_the_model_is_measured(tiny_classifier):
    """A record source that takes 0.3 s shows as the run's time waiting for input; the model's passes (on a CPU,
    the passes themselves) as its model time; both within the run's time."""
    records = [ScoringInput(f"r{i}", text, "positive") for i, text in enumerate(TEXTS * 4)]

    def slow_source():
        for index, record in enumerate(records):
            if index % 8 == 0:
                time.sleep(0.1)
            yield record

    scorer = Scorer(tiny_classifier, samples=4, batch_size=4, window_batches=2)
    assert len(list(scorer.score(slow_source()))) == len(records)
    stats = scorer.stats
    assert 0.3 <= stats.input_wait_seconds < 0.3 + 0.5 * stats.seconds
    assert 0 < stats.model_seconds and stats.input_wait_seconds + stats.model_seconds <= stats.seconds

    list(scorer.score(records))  # records at hand: almost no wait for them; a new run counts afresh
    assert scorer.stats.input_wait_seconds < 0.1 < stats.input_wait_seconds
    assert scorer.stats.model_seconds > 0
