"""A sentence encoder's first token taught its mean-pooled vector before a first training (worker/training/pooling.py),
on a real tiny BERT made a sentence-transformers checkpoint by its modules.json, and through ``retrain``."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from tests.tiny_models import save_tiny_encoder, save_tiny_sentence_encoder
from tests.training_data import sentiment_examples
from worker.config import TrainingSettings
from worker.errors import DataError, Interrupted
from worker.registry import ModelRegistry
from worker.training.data import build_training_set
from worker.training.job import ALIGNED_ENCODERS, aligned_start, retrain
from worker.training.pooling import ALIGNED_FILE, align_first_token, aligned_encoder, mean_pooled

LABELS = ("negative", "positive")


def _vectors(source, texts) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, H] first-token vectors, [N, H] mean-pooled vectors) of ``texts`` by ``source``, dropout off."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    inputs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = AutoModel.from_pretrained(source).eval()(**inputs).last_hidden_state  # [N, L, H]
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    return hidden[:, 0], (hidden * mask).sum(1) / mask.sum(1)


def test_only_a_sentence_encoder_that_mean_pools_is_aligned(tmp_path):
    assert mean_pooled(save_tiny_sentence_encoder(tmp_path / "mean"))
    assert not mean_pooled(save_tiny_sentence_encoder(tmp_path / "cls", pooling="cls"))
    assert not mean_pooled(save_tiny_encoder(tmp_path / "plain"))  # no modules.json: a plain transformers encoder
    broken = save_tiny_sentence_encoder(tmp_path / "broken")
    (broken / "1_Pooling" / "config.json").write_text("{not json")
    assert not mean_pooled(broken)
    assert not mean_pooled(tmp_path / "missing")


def test_the_aligned_first_token_carries_the_mean_pooled_vector_on_texts_it_never_saw(tmp_path):
    base = save_tiny_sentence_encoder(tmp_path / "base")
    texts = [e.text for e in sentiment_examples(60)]
    seen, unseen = [(text, None) for text in texts[:40]], texts[40:]
    plain_first, plain_means = _vectors(base, unseen)

    aligned = align_first_token(base, seen, tmp_path / "aligned", epochs=30, learning_rate=1e-3, device="cpu")

    aligned_first, _ = _vectors(aligned, unseen)
    before, after = float(((plain_first - plain_means) ** 2).mean()), float(((aligned_first - plain_means) ** 2).mean())
    assert after < before / 3, (before, after)
    record = json.loads((aligned / ALIGNED_FILE).read_text())
    assert record["texts"] == 40 and record["pooler_identity"]
    assert record["loss_by_epoch"][-1] < record["loss_by_epoch"][0]
    encoder = AutoModel.from_pretrained(aligned)
    assert torch.equal(encoder.pooler.dense.weight, torch.eye(32)) and not encoder.pooler.dense.bias.any()
    _, loading = AutoModelForSequenceClassification.from_pretrained(aligned, num_labels=2, output_loading_info=True)
    assert sorted(loading["missing_keys"]) == ["classifier.bias", "classifier.weight"]  # a new head, as from the base
    with pytest.raises(DataError, match="no text to align"):
        align_first_token(base, [("  ", None), ("", "")], tmp_path / "none", device="cpu")


def test_an_aligned_encoder_is_made_once_per_base_model_and_settings(tmp_path):
    base = save_tiny_sentence_encoder(tmp_path / "base")
    calls = []

    def texts():
        calls.append(1)
        return [(e.text, None) for e in sentiment_examples(20)]

    settings = {"epochs": 1, "learning_rate": 1e-4, "max_length": 32, "seed": 0, "device": "cpu"}
    first = aligned_encoder(base, texts, tmp_path / "aligned", **settings)
    again = aligned_encoder(base, texts, tmp_path / "aligned", **settings)
    other = aligned_encoder(base, texts, tmp_path / "aligned", **{**settings, "seed": 1})
    assert first == again != other and len(calls) == 2
    assert [p.name for p in (tmp_path / "aligned").iterdir()] == [other.name]  # one kept: the last made


def test_a_first_training_from_a_sentence_encoder_starts_from_it_aligned_and_says_so(tmp_path, caplog):
    """Through ``retrain``: the training from the base model starts from the aligned encoder (kept under the
    registry, recorded in the model's training metrics) and its texts are asked for once; with
    ``align_first_token`` off, or from a plain encoder, it starts from the base as before."""
    base = save_tiny_sentence_encoder(tmp_path / "base")
    training_set = build_training_set(sentiment_examples(40), [], LABELS, min_annotated=10)
    settings = TrainingSettings(base_model=str(base), epochs=2, batch_size=8, max_length=32, device="cpu",
                                min_steps=0)
    asked = []

    def texts():
        asked.append(1)
        return [(e.text, None) for e in sentiment_examples(60)]

    registry = ModelRegistry(tmp_path / "models")
    with caplog.at_level(logging.INFO, logger="worker.training.pooling"):
        first = retrain(training_set, registry, settings, mc_samples=2, alignment_texts=texts)
    training = first.model.metrics["training"]
    aligned = registry.root / ALIGNED_ENCODERS
    assert training["start_model"] == str(base) and training["start_aligned"].startswith(str(aligned))
    assert any("aligned the first token of" in r.getMessage() and "on 60 texts" in r.getMessage()
               for r in caplog.records)
    second = retrain(training_set, registry, settings.model_copy(update={"seed": 0, "epochs": 3}), mc_samples=2,
                     alignment_texts=texts)
    assert second.model.metrics["training"]["start_aligned"] == training["start_aligned"] and asked == [1]

    off = retrain(training_set, registry, settings.model_copy(update={"align_first_token": False, "epochs": 1}),
                  mc_samples=2, alignment_texts=texts)
    plain = save_tiny_encoder(tmp_path / "plain")
    from_plain = retrain(training_set, registry, settings.model_copy(update={"base_model": str(plain)}),
                         mc_samples=2, alignment_texts=texts)
    for outcome in (off, from_plain):
        assert "start_aligned" not in outcome.model.metrics["training"]
    assert asked == [1]


def test_a_stop_request_ends_an_alignment_at_once_and_a_failed_one_trains_from_the_base(tmp_path, caplog):
    """A stop (SIGTERM) while aligning: Interrupted, nothing kept for a later training to take. An alignment that
    fails (here: no text at all to align on) is a warning naming the setting that skips it, and the start is the
    base model."""
    base = save_tiny_sentence_encoder(tmp_path / "base")
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted, match="while the base model's first token was being aligned"):
        aligned_encoder(base, lambda: [(e.text, None) for e in sentiment_examples(20)], tmp_path / "aligned",
                        epochs=1, learning_rate=1e-4, max_length=32, seed=0, device="cpu", stop=stop)
    assert list((tmp_path / "aligned").iterdir()) == []

    registry = ModelRegistry(tmp_path / "models")
    settings = TrainingSettings(base_model=str(base), device="cpu")
    with caplog.at_level(logging.WARNING, logger="worker.training.job"):
        start = aligned_start(base, registry, settings, lambda: [("", None)])
    assert start == base
    said = (f"the training starts from {base} as it is: aligning its first token failed (no text to align the "
            "encoder's first token on); training.align_first_token = false skips it")
    assert [r.getMessage() for r in caplog.records] == [said]
