"""Adaptive MC dropout: the stopping rule on hand-made sample streams, re-packed batches on a tiny real BERT,
and fixed T unchanged when adaptive sampling is off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.tiny_models import save_tiny_classifier
from worker.scoring import MCPredictor, Scorer, ScoringInput, load_classifier
from worker.scoring.adaptive import (
    AdaptiveSampling,
    label_set_standard_errors,
    sequential_samples,
    standard_errors,
)
from worker.scoring.uncertainty import label_losses, mc_statistics, uncertainty_scores

CONFIDENT = [0.995, 0.005]


def _stream(pattern: dict[int, list[list[float]]]):
    """A sample source whose row r yields the probability rows of ``pattern[r]`` in turn, cycling; it records
    which rows each draw asked for."""
    calls: list[list[int]] = []
    position = dict.fromkeys(pattern, 0)

    def draw(rows: torch.Tensor, start: int, count: int) -> torch.Tensor:
        calls.append(rows.tolist())
        assert all(position[row] == start for row in rows.tolist())
        out = []
        for _ in range(count):
            sample = []
            for row in rows.tolist():
                cycle = pattern[row]
                sample.append(cycle[position[row] % len(cycle)])
                position[row] += 1
            out.append(sample)
        return torch.tensor(out, dtype=torch.float32).log()

    return draw, calls


def test_a_confident_record_stops_at_the_first_check_and_a_split_one_runs_to_t():
    split = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]
    draw, calls = _stream({0: [CONFIDENT], 1: split, 2: [CONFIDENT], 3: split})
    reference = torch.tensor([0, 0, -1, -1])

    rule = AdaptiveSampling(round_size=4, bald_rse=0.01, loss_se=0.05)
    log_probs, used = sequential_samples(draw, 4, 20, rule, reference)

    assert used.tolist() == [4, 20, 4, 20]
    assert calls == [[0, 1, 2, 3]] + [[1, 3]] * 4  # the settled rows left the batch after the first round
    assert log_probs.shape == (4, 2, 20)
    assert torch.isnan(log_probs[0, :, 4:]).all() and not torch.isnan(log_probs[0, :, :4]).any()
    assert not torch.isnan(log_probs[1]).any()
    np.testing.assert_allclose(log_probs[3, :, :4].exp().T.numpy(), split, rtol=1e-6)


def test_a_loss_that_still_moves_keeps_a_record_sampling_even_when_bald_has_settled():
    # The model is sure of class 1 (BALD ~ 0) but the reference label 0 gets p = 1e-3 … 1e-1: its loss varies.
    shaky = [[1e-3, 1 - 1e-3], [1e-1, 0.9], [1e-2, 0.99], [5e-2, 0.95]]
    log_probs = torch.tensor([shaky], dtype=torch.float32).log().permute(1, 0, 2)  # [t=4, n=1, C=2]

    bald, bald_se, loss_se = standard_errors(log_probs, torch.tensor([0]))
    assert bald_se.item() < 0.5 * bald.item() and loss_se.item() > 0.5
    rule = AdaptiveSampling(round_size=4, bald_rse=0.5, loss_se=0.05)
    assert rule.settled(log_probs, torch.tensor([0])).tolist() == [False]
    assert rule.settled(log_probs, torch.tensor([-1])).tolist() == [True]  # without a label only BALD counts


def test_the_bald_standard_error_is_the_spread_of_the_per_sample_divergence():
    samples = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3], [0.2, 0.8], [0.6, 0.4]])
    log_probs = samples.log().unsqueeze(1)  # [t=5, n=1, C=2]
    mean = samples.mean(dim=0)
    kl = (samples * (samples.log() - mean.log())).sum(dim=1)
    bald = uncertainty_scores(samples.T.unsqueeze(0).numpy())["bald"][0]

    estimate, bald_se, _ = standard_errors(log_probs, torch.tensor([-1]))

    assert kl.mean().item() == pytest.approx(bald, rel=1e-5)  # BALD is the mean divergence from the mean
    assert estimate.item() == pytest.approx(bald, rel=1e-5)
    assert bald_se.item() == pytest.approx(kl.std().item() / math.sqrt(5), rel=1e-5)


def test_tolerances_of_zero_reproduce_t_samples_and_a_round_size_below_two_is_refused():
    split = [[0.9, 0.1], [0.2, 0.8]]
    draw, _ = _stream({0: [CONFIDENT], 1: split})
    _, used = sequential_samples(draw, 2, 10, AdaptiveSampling(round_size=4, bald_rse=0.0, loss_se=0.0),
                                 torch.tensor([-1, -1]))
    assert used.tolist() == [4, 10]  # the constant one has a spread of exactly 0 (≤ 0); rounds end at T = 10
    with pytest.raises(ValueError, match="round_size"):
        AdaptiveSampling(round_size=1, bald_rse=0.01, loss_se=0.05)


def test_label_sets_stop_on_the_most_doubtful_labels_bald_and_the_worst_decisions_loss():
    from worker.scoring.multilabel import bernoulli_uncertainty, binary_cross_entropy

    # [t=5, n=2, L=3]: record 0's label 1 is split between samples, record 1 is sure of every label
    present = torch.tensor([[[0.9, 0.2, 0.01], [0.99, 0.01, 0.02]],
                            [[0.8, 0.7, 0.02], [0.99, 0.01, 0.02]],
                            [[0.9, 0.4, 0.01], [0.99, 0.01, 0.02]],
                            [[0.85, 0.9, 0.03], [0.99, 0.01, 0.02]],
                            [[0.9, 0.1, 0.01], [0.99, 0.01, 0.02]]], dtype=torch.float64)
    reference = torch.tensor([[1, 0, 0], [-1, -1, -1]])
    bald, bald_se, loss_se = label_set_standard_errors(present.log(), reference)

    per_label = bernoulli_uncertainty(present.permute(1, 2, 0).numpy())["bald"]  # BaaL's, [n, L]
    np.testing.assert_allclose(bald.numpy(), per_label.max(axis=1), rtol=1e-5, atol=1e-7)
    decision = binary_cross_entropy(present[:, 0].numpy(), np.array([1.0, 0.0, 0.0])).max(axis=1)  # [t]
    assert loss_se[0].item() == pytest.approx(decision.std(ddof=1) / math.sqrt(5), rel=1e-5)
    assert loss_se[1].item() == 0.0 and bald_se[1].item() < 1e-6  # no set under review; identical samples
    p = present[:, 0]  # each label's per-sample divergence from the mean Bernoulli: the largest spread bounds
    mean = p.mean(dim=0)
    kl = p * (p / mean).log() + (1 - p) * ((1 - p) / (1 - mean)).log()
    assert bald_se[0].item() == pytest.approx((kl.std(dim=0) / math.sqrt(5)).max().item(), rel=1e-5)

    rule = AdaptiveSampling(round_size=4, bald_rse=0.2, loss_se=0.05)
    assert rule.settled(present.log(), reference).tolist() == [False, True]


def test_sequential_sampling_of_label_sets_keeps_the_doubtful_ones():
    sure, split = [0.995, 0.005], [[0.9, 0.2], [0.3, 0.8], [0.6, 0.5], [0.1, 0.9]]
    draw, calls = _stream({0: [sure], 1: split, 2: [sure]})  # two labels' sigmoids per row
    reference = torch.tensor([[1, 0], [1, 0], [-1, -1]])

    log_probs, used = sequential_samples(draw, 3, 12, AdaptiveSampling(round_size=4, bald_rse=0.05, loss_se=0.05),
                                         reference)

    assert used.tolist() == [4, 12, 4] and calls == [[0, 1, 2], [1], [1]]
    assert log_probs.shape == (3, 2, 12) and torch.isnan(log_probs[0, :, 4:]).all()


class _DropAlternate(AdaptiveSampling):
    """Every other record still sampling leaves after each round, whatever its samples."""

    def settled(self, log_probs, reference):
        keep = torch.zeros(log_probs.shape[1], dtype=torch.bool)
        keep[::2] = True
        return ~keep


class _NeverSettle(AdaptiveSampling):
    def settled(self, log_probs, reference):
        return torch.zeros(log_probs.shape[1], dtype=torch.bool)


@pytest.fixture(scope="module")
def no_dropout_classifier(tmp_path_factory):
    directory = save_tiny_classifier(tmp_path_factory.mktemp("no-dropout"), hidden_dropout=0.0,
                                     attention_dropout=0.0)
    return load_classifier(directory, device="cpu")


@pytest.mark.parametrize("mc", [{"strategy": "full"}, {"mc_layers": 1}, {"mc_layers": "all"}])
def test_a_repacked_batch_gives_each_record_its_own_outputs(no_dropout_classifier, mc):
    """Without dropout every MC sample equals the deterministic pass: after re-packing (rows removed, padding cut
    to the longest remaining text), each record's samples must still be its own."""
    texts = ["a wonderful , moving film with a great cast and a clever script that will make you laugh",
             "dull", "boring , predictable and far too long", "charming", "an instant classic", "a tedious mess"]
    inputs = dict(no_dropout_classifier.tokenizer(texts, padding=True, return_tensors="pt"))
    predictor = MCPredictor(no_dropout_classifier, samples=8, dropout_rate=0.0,
                            adaptive=_DropAlternate(round_size=2, bald_rse=0, loss_se=0), **mc)

    prediction = predictor.predict(inputs, torch.full((len(texts),), -1))

    used = prediction.samples_used.tolist()
    assert sorted(used) == [2, 2, 2, 4, 6, 8] and used[0] == 8  # row 0 is always kept: the long text stays
    for row, count in enumerate(used):
        expected = prediction.deterministic[row].unsqueeze(1).expand(-1, count)
        torch.testing.assert_close(prediction.mc[row, :, :count], expected, atol=1e-5, rtol=1e-4)
        assert torch.isnan(prediction.mc[row, :, count:]).all()


def test_adaptive_scores_keep_record_order_and_ids_and_report_their_samples(tiny_classifier):
    records = [ScoringInput(f"r{i}", text, "positive" if i % 3 else None) for i, text in enumerate(
        ["a wonderful film", "dull", "the best movie of the year , funny and smart", "boring", "a classic",
         "i want those two hours of my life back , a tedious mess", "charming", "too long"] * 3)]
    scorer = Scorer(tiny_classifier, samples=12, batch_size=5, progress=False,
                    adaptive=AdaptiveSampling(round_size=4, bald_rse=1e-3, loss_se=1e-2))

    scores = list(scorer.score(records))

    assert [score.record_id for score in scores] == [record.record_id for record in records]
    assert {score.mc_samples for score in scores} <= {4, 8, 12}
    assert scorer.stats.mc_samples == sum(score.mc_samples for score in scores)
    for score, record in zip(scores, records, strict=True):
        assert math.isfinite(score.bald) and math.isfinite(score.entropy) and 0 < score.score <= 1
        assert sum(score.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert (score.loss is None) == (record.reference_label is None)
    generous = Scorer(tiny_classifier, samples=12, batch_size=5, progress=False,
                      adaptive=AdaptiveSampling(round_size=4, bald_rse=10.0, loss_se=100.0))
    assert {score.mc_samples for score in generous.score(records)} == {4}


def test_without_adaptive_sampling_the_scores_are_the_fixed_t_passes_bit_for_bit(tiny_classifier):
    texts = ["a wonderful , moving film", "dull and lifeless", "an instant classic", "boring"]
    references = ["positive", None, "negative", "positive"]
    scorer = Scorer(tiny_classifier, samples=6, batch_size=8, seed=3, progress=False)
    scores = list(scorer.score(ScoringInput(str(i), text, label)
                               for i, (text, label) in enumerate(zip(texts, references, strict=True))))

    # The same batch by hand: windows sort by token length, so feed the predictor in that order.
    order = sorted(range(len(texts)), key=lambda i: len(tiny_classifier.tokenizer(texts[i])["input_ids"]))
    inputs = dict(tiny_classifier.tokenizer([texts[i] for i in order], padding=True, return_tensors="pt"))
    torch.manual_seed(3)
    prediction = MCPredictor(tiny_classifier, samples=6).predict(inputs)
    mc = prediction.mc.numpy()
    reference = np.array([-1 if references[i] is None else tiny_classifier.labels.index(references[i])
                          for i in order])
    _, uncertainty = mc_statistics(mc)
    loss, expected_loss = label_losses(prediction.deterministic.numpy(), mc, reference)
    for row, index in enumerate(order):
        assert scores[index].bald == uncertainty["bald"][row] and scores[index].margin == uncertainty["margin"][row]
        assert scores[index].mc_samples == 6
        if reference[row] >= 0:
            assert scores[index].loss == loss[row] and scores[index].expected_loss == expected_loss[row]


@pytest.mark.parametrize("mc", [{"strategy": "full"}, {"mc_layers": 1}, {"mc_layers": "all"}])
def test_with_consistent_masks_a_records_samples_do_not_depend_on_its_batch(tiny_classifier, mc):
    texts = ["a wonderful , moving film with a great cast", "dull", "an instant classic that will make you laugh"]
    predictor = MCPredictor(tiny_classifier, samples=6, consistent=True, **mc)
    together = predictor.predict(dict(tiny_classifier.tokenizer(texts, padding=True, return_tensors="pt")))
    torch.manual_seed(123)  # torch's RNG plays no part
    alone = predictor.predict(dict(tiny_classifier.tokenizer(texts[1:2], return_tensors="pt")))

    assert together.mc.exp().std(dim=2).min() > 0, "the samples should differ from one another"
    torch.testing.assert_close(alone.mc[0], together.mc[1], atol=1e-5, rtol=1e-4)
    other_seed = MCPredictor(tiny_classifier, samples=6, consistent=True, seed=1, **mc)
    assert not torch.allclose(other_seed.predict(dict(tiny_classifier.tokenizer(texts[1:2], return_tensors="pt"))).mc,
                              alone.mc)


def test_a_record_that_stops_early_has_the_first_samples_fixed_t_would_give_it(tiny_classifier):
    inputs = dict(tiny_classifier.tokenizer(["a wonderful film", "dull and lifeless , the plot never takes off",
                                             "boring"], padding=True, return_tensors="pt"))
    fixed = MCPredictor(tiny_classifier, samples=8, mc_layers=1, consistent=True).predict(inputs)
    rule = _NeverSettle(round_size=2, bald_rse=0.0, loss_se=0.0)
    stopping = _DropAlternate(round_size=2, bald_rse=0.0, loss_se=0.0)
    full_run = MCPredictor(tiny_classifier, samples=8, mc_layers=1, adaptive=rule).predict(inputs)
    early = MCPredictor(tiny_classifier, samples=8, mc_layers=1, adaptive=stopping).predict(inputs)

    torch.testing.assert_close(full_run.mc, fixed.mc, atol=1e-5, rtol=1e-4)
    assert early.samples_used.tolist() != [8, 8, 8]
    for row, count in enumerate(early.samples_used.tolist()):
        torch.testing.assert_close(early.mc[row, :, :count], fixed.mc[row, :, :count], atol=1e-5, rtol=1e-4)


def test_the_config_builds_the_rule_and_adaptive_false_means_fixed_t(tmp_path):
    from worker.config import ScoringSettings
    from worker.jobs import ScoreReport, adaptive_sampling

    rule = adaptive_sampling(ScoringSettings(adaptive_round=6, adaptive_bald_rse=0.3, adaptive_loss_se=0.1))
    assert rule == AdaptiveSampling(round_size=6, bald_rse=0.3, loss_se=0.1)
    assert adaptive_sampling(ScoringSettings(adaptive=False)) is None
    with pytest.raises(ValueError, match="adaptive_round"):
        ScoringSettings(adaptive_round=1)
    assert "6.0 MC samples a record" in ScoreReport("v0001", scored=2, mc_samples=12).summary()
