"""Multi-label scores on hand-made tensors with known answers: Bernoulli BALD / entropy, the label set's
binary cross-entropy and its MC expectation, labels to add / remove, thresholds, per-label consensus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.records import label_set_consensus
from worker.scoring.multilabel import bernoulli_uncertainty, multilabel_scores, tune_thresholds


def _entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0


def test_bernoulli_bald_is_the_entropy_of_the_mean_minus_the_mean_entropy():
    # one record, two labels, two MC samples: label 0 flips between 0.9 and 0.1, label 1 is 0.5 both times
    mc = np.array([[[0.9, 0.1], [0.5, 0.5]]])  # [N=1, L=2, T=2]

    scores = bernoulli_uncertainty(mc)

    assert scores["entropy"][0, 0] == pytest.approx(_entropy(0.5))
    assert scores["bald"][0, 0] == pytest.approx(_entropy(0.5) - _entropy(0.9))  # samples disagree
    assert scores["bald"][0, 1] == pytest.approx(0.0, abs=1e-9)  # unsure, but every sample agrees
    assert scores["entropy"][0, 1] == pytest.approx(_entropy(0.5))


def test_the_label_sets_loss_its_mc_expectation_and_the_labels_to_add_or_remove():
    mc = np.array([[[0.8, 0.6], [0.2, 0.4], [0.5, 0.5]]])  # [1, 3, 2]: means 0.7, 0.3, 0.5
    reference = np.array([[False, True, True]])

    scores = multilabel_scores(mc, reference)

    per_label = [-math.log(1 - 0.7), -math.log(0.3), -math.log(0.5)]
    assert scores.set_loss[0] == pytest.approx(sum(per_label))  # the whole set's negative log-likelihood
    assert scores.loss[0] == pytest.approx(max(per_label))  # the least plausible label decision's
    per_sample = [max(-math.log(1 - a), -math.log(b), -math.log(0.5)) for a, b in ((0.8, 0.2), (0.6, 0.4))]
    assert scores.expected_loss[0] == pytest.approx(np.mean(per_sample))
    assert scores.expected_loss[0] > scores.loss[0]  # Jensen: the MC expectation is never below
    assert scores.predicted.tolist() == [[True, False, True]]  # 0.5 reaches the default threshold
    assert scores.to_add.tolist() == [[True, False, False]]
    assert scores.to_remove.tolist() == [[False, True, False]]
    assert scores.label_losses[0].argmax() == 0  # the label most likely wrong: the missing first one


def test_max_and_mean_over_labels_and_finite_values_at_the_extremes():
    mc = np.array([[[1.0, 1.0], [0.0, 0.0]], [[0.9, 0.1], [0.5, 0.5]]])  # [2, 2, 2]
    reference = np.array([[False, True], [True, True]])

    scores = multilabel_scores(mc, reference, thresholds=np.array([0.95, 0.3]))

    assert np.isfinite(scores.loss).all() and np.isfinite(scores.expected_loss).all()
    assert scores.loss[0] > 20 and scores.set_loss[0] > 40  # certain and wrong on both labels: large, not infinite
    assert scores.bald_max.tolist() == pytest.approx([0.0, _entropy(0.5) - _entropy(0.9)])
    assert scores.bald_mean[1] == pytest.approx(scores.bald_max[1] / 2)
    assert scores.predicted.tolist() == [[True, False], [False, True]]  # per-label thresholds


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\[N, L, T\]"):
        bernoulli_uncertainty(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reference must be"):
        multilabel_scores(np.zeros((2, 3, 4)), np.zeros((2, 2), bool))
    with pytest.raises(ValueError, match="thresholds must be"):
        multilabel_scores(np.zeros((2, 3, 4)), thresholds=np.zeros(2))


def test_thresholds_maximise_each_labels_f1_and_default_without_positives():
    probs = np.array([[0.9, 0.2, 0.1], [0.35, 0.25, 0.2], [0.3, 0.1, 0.3], [0.1, 0.15, 0.05]])
    targets = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], bool)

    thresholds = tune_thresholds(probs, targets)

    assert thresholds[0] == pytest.approx(0.35)  # both positives, not the 0.3 negative: F1 = 1
    assert thresholds[1] == pytest.approx(0.2)  # 0.2 and 0.25 positive, 0.15 and 0.1 negative
    assert thresholds[2] == 0.5  # no positive example


def test_label_set_consensus_is_a_per_label_majority_and_reports_per_label_ties():
    three = label_set_consensus("r1", {"u1": ["sports", "politics"], "u2": ["sports"], "u3": ["sports", "tech"]})
    two = label_set_consensus("r2", {"u1": ["sports", "politics"], "u2": ["sports"]})
    nothing = label_set_consensus("r3", {"u1": [], "u2": [], "u3": ["tech"]})

    assert three.labels == ("sports",) and three.num_annotators == 3
    assert three.agreement == {"politics": pytest.approx(2 / 3), "sports": 1.0, "tech": pytest.approx(2 / 3)}
    assert two.labels is None and two.tied_labels == ("politics",)
    assert nothing.labels == () and nothing.agreement == {"tech": pytest.approx(2 / 3)}
    assert label_set_consensus("r4", {}) is None


def test_a_trained_multi_label_model_loads_with_its_thresholds_and_scores_label_sets(tmp_path):
    """A tiny real BERT trained on label sets (see test_training): loaded, it scores with per-label sigmoids,
    predicts the sets it learned, and a wrong reference set costs more loss than the right one."""
    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGGED, TAGS
    from tests.unit.test_training import FAST
    from worker.errors import DataError
    from worker.scoring import Scorer, ScoringInput, load_classifier
    from worker.scoring.adaptive import AdaptiveSampling
    from worker.scoring.multilabel import score_label_sets
    from worker.training.data import Example
    from worker.training.trainer import TrainingSettings, train_classifier

    base = save_tiny_classifier(tmp_path / "base", labels=TAGS)
    examples = [Example(f"m{copy}-{i}", text, tags) for copy in range(6) for i, (text, tags) in enumerate(TAGGED)]
    train_classifier(base, examples[:40], examples[40:], TAGS, tmp_path / "model",
                     TrainingSettings(epochs=40, patience=40, **{**FAST, "learning_rate": 5e-3}))

    classifier = load_classifier(tmp_path / "model", device="cpu")
    texts = [text for text, _ in TAGGED]
    truth = np.array([[tag in tags for tag in TAGS] for _, tags in TAGGED])  # [8, 3]
    right = score_label_sets(classifier, texts, truth, samples=8)
    wrong = score_label_sets(classifier, texts, ~truth, samples=8)

    assert classifier.multi_label and len(classifier.thresholds) == len(TAGS)
    assert right.probabilities.shape == (8, 3) and not np.allclose(right.probabilities.sum(axis=1), 1.0)
    # 24 decisions (chance: 0.5); the tiny model's path varies with threads and load (19 of 24 seen)
    assert (right.predicted == truth).mean() >= 0.75
    assert (wrong.loss > right.loss).all() and (wrong.expected_loss > right.expected_loss).all()
    assert wrong.to_add.sum() + wrong.to_remove.sum() > right.to_add.sum() + right.to_remove.sum()

    # The streaming record scorer (what score runs use) gives the same kind of values per record.
    scorer = Scorer(classifier, samples=8, adaptive=AdaptiveSampling(round_size=4, bald_rse=0.1, loss_se=0.1))
    inputs = [ScoringInput(f"r{i}", text, tags) for i, (text, tags) in enumerate(TAGGED)]
    wrong_sets = [tuple(t for t in TAGS if t not in tags) or (TAGS[0],) for _, tags in TAGGED]
    scored = list(scorer.score(inputs))
    against_wrong = list(scorer.score(ScoringInput(f"r{i}", text, wrong)
                                      for i, ((text, _), wrong) in enumerate(zip(TAGGED, wrong_sets, strict=True))))
    [unlabelled] = scorer.score([ScoringInput("u", TAGGED[0][0])])
    for score, wrong_score, (_, tags) in zip(scored, against_wrong, TAGGED, strict=True):
        assert isinstance(score.predicted_label, tuple) and score.predicted_label  # never an empty set
        assert set(score.probabilities) == set(TAGS)
        p = score.probabilities
        expected_score = np.prod([p[t] if t in score.predicted_label else 1 - p[t] for t in TAGS])
        assert score.score == pytest.approx(expected_score, rel=1e-6)  # the probability of exactly that set
        assert set(score.to_add) == set(score.predicted_label) - set(tags)
        assert set(score.to_remove) == set(tags) - set(score.predicted_label)
        assert score.label_changes == len(score.to_add) + len(score.to_remove)
        assert score.disagreement == (score.predicted_label != tags)
        assert score.bald >= score.bald_mean >= 0 and np.isfinite(score.loss) and score.mc_samples in (4, 8)
        assert wrong_score.loss > score.loss
    # adaptive sampling works on label sets: the tolerances decide, and each record's samples are counted
    generous = Scorer(classifier, samples=8, adaptive=AdaptiveSampling(round_size=4, bald_rse=10.0, loss_se=100.0))
    assert {score.mc_samples for score in generous.score(inputs)} == {4} and generous.stats.mc_samples == 4 * 8
    strict = Scorer(classifier, samples=8, adaptive=AdaptiveSampling(round_size=4, bald_rse=0.0, loss_se=0.0))
    assert {score.mc_samples for score in strict.score(inputs)} == {8}
    # records that stopped at 4 samples and records that went on to 8, in one batch: each is scored on its own
    # samples, exactly as fixed T = 4 / T = 8 would score it on the same (consistent) masks
    seen = {"samples_seen": lambda present: np.full(len(present), present.shape[2], dtype=float),  # [n, L, t]
            "broken": lambda present: present.sum(axis=2)}  # a wrong shape: dropped, the rest goes on
    mixed = list(Scorer(classifier, samples=8, adaptive=_first_half_settles()(round_size=4, bald_rse=0, loss_se=0),
                        batch_size=8, extra_scorers=seen).score(inputs))
    assert sorted(score.mc_samples for score in mixed) == [4] * 4 + [8] * 4
    assert all(score.extra == {"samples_seen": score.mc_samples} for score in mixed)  # its own samples only
    fixed = {count: list(Scorer(classifier, samples=count, consistent=True).score(inputs)) for count in (4, 8)}
    for row, score in enumerate(mixed):
        reference = fixed[score.mc_samples][row]
        assert score.predicted_label == reference.predicted_label
        for name in ("bald", "bald_mean", "loss", "expected_loss", "score"):
            assert getattr(score, name) == pytest.approx(getattr(reference, name), rel=1e-4, abs=1e-6), (row, name)
    assert unlabelled.loss is None and unlabelled.to_add is None and unlabelled.predicted_label
    with pytest.raises(DataError, match=r"record 'x': label 'nope' is not one of the model's labels"):
        list(scorer.score([ScoringInput("x", "text", ("nope",))]))
    with pytest.raises(DataError, match=r"record 'y': label set \['a'\] for a single-label model"):
        single = load_classifier(save_tiny_classifier(tmp_path / "single", labels=("a", "b")), device="cpu")
        list(Scorer(single, samples=2).score([ScoringInput("y", "text", ("a",))]))


def _first_half_settles():
    import torch

    from worker.scoring.adaptive import AdaptiveSampling

    class FirstHalfSettles(AdaptiveSampling):
        """The first half of the rows still sampling settle at each check, whatever their samples."""

        def settled(self, log_probs, reference):
            rows = log_probs.shape[1]
            return torch.arange(rows) < rows // 2

    return FirstHalfSettles


def test_a_bad_thresholds_file_is_named_and_a_missing_one_means_one_half(tmp_path):
    from worker.errors import ScoringError
    from worker.scoring.model import thresholds_of

    assert thresholds_of(tmp_path, ("a", "b")) == (0.5, 0.5)
    (tmp_path / "thresholds.json").write_text('{"a": 0.3}')
    assert thresholds_of(tmp_path, ("a", "b")) == (0.3, 0.5)
    (tmp_path / "thresholds.json").write_text('{"a": 1.5}')
    with pytest.raises(ScoringError, match=r"thresholds.json: thresholds must lie strictly between 0 and 1"):
        thresholds_of(tmp_path, ("a", "b"))
    (tmp_path / "thresholds.json").write_text('[0.3]')
    with pytest.raises(ScoringError, match=r"thresholds.json: not a JSON object"):
        thresholds_of(tmp_path, ("a", "b"))


def test_a_models_head_is_read_from_its_config_without_its_weights(tmp_path):
    """What the Ray engine's driver reads instead of loading the model: the same labels, version and thresholds."""
    import json

    from tests.tiny_models import save_tiny_classifier
    from worker.errors import ScoringError
    from worker.scoring import load_classifier, read_head

    directory = save_tiny_classifier(tmp_path / "model", labels=("b", "a", "c"))
    assert read_head(directory, "v3") == load_classifier(directory, device="cpu", version="v3").head
    assert read_head(directory, "v3").labels == ("b", "a", "c") and not read_head(directory, "v3").multi_label

    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "problem_type": "multi_label_classification"}))
    (directory / "thresholds.json").write_text('{"c": 0.25}')
    for weights in directory.glob("*.safetensors"):
        weights.unlink()  # no weights needed
    head = read_head(directory, "v4")
    assert head.multi_label and head.thresholds == (0.5, 0.5, 0.25) and head.version == "v4"

    (directory / "config.json").write_text("{not json")
    with pytest.raises(ScoringError, match=r"cannot load a model config from"):
        read_head(directory, "v5")


def test_weighted_label_sets_let_a_reliable_annotator_outvote_two_unreliable_ones_per_label():
    weights = {"good": 0.9, "sloppy1": 0.1, "sloppy2": 0.1}
    votes = {"good": ["sports"], "sloppy1": ["sports", "tech"], "sloppy2": ["tech"]}

    weighted = label_set_consensus("r", votes, weights.__getitem__)
    plain = label_set_consensus("r", votes)

    assert plain.labels == ("sports", "tech")  # tech: 2 of 3 voters
    assert weighted.labels == ("sports",)  # tech's choosers weigh 0.2 of 1.1
    assert weighted.agreement["tech"] == pytest.approx(0.9 / 1.1)
    assert weighted.agreement["sports"] == pytest.approx(1.0 / 1.1)
    tie = label_set_consensus("t", {"good": ["sports"], "sloppy1": []}, weights.__getitem__)
    assert tie.labels is None and tie.tied_labels == ("sports",)  # ties stay ties, as for single labels
