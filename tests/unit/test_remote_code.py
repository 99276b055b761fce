"""A team's model that ships its own Python code (``auto_map``: custom architectures on the Hub) loads, trains,
registers and scores only with ``registry.trust_remote_code`` — and without it, one clear error naming that
setting, never transformers' interactive prompt. The model is real (a tiny BERT under a config type transformers
does not know, defined by the Python files beside its weights), loaded through transformers' dynamic modules."""

from __future__ import annotations

import builtins

import pytest

from tests.tiny_models import save_remote_code_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.errors import ConfigError, ScoringError
from worker.registry import ModelRegistry
from worker.scoring import Scorer, ScoringInput, load_classifier, read_head
from worker.services import Services
from worker.training.register import register_model
from worker.training.trainer import TrainingSettings, check_model_source, train_classifier

SETTING = "registry.trust_remote_code"
FAST = {"batch_size": 8, "learning_rate": 1e-3, "max_length": 32, "device": "cpu", "min_steps": 0, "epochs": 1}


@pytest.fixture
def remote_model(tmp_path, monkeypatch):
    """The model directory; transformers must never ask on the terminal (a worker has nobody to answer)."""
    def no_prompt(*args):
        raise AssertionError(f"transformers asked on the terminal: {args}")

    monkeypatch.setattr(builtins, "input", no_prompt)
    return save_remote_code_classifier(tmp_path / "their-model", labels=LABELS)


def test_a_model_that_ships_code_is_refused_with_the_setting_named_and_scores_once_trusted(remote_model):
    for load in (lambda: load_classifier(remote_model, device="cpu"), lambda: read_head(remote_model, "v1")):
        with pytest.raises(ScoringError, match=SETTING) as refused:
            load()
        assert str(remote_model) in str(refused.value)

    classifier = load_classifier(remote_model, device="cpu", version="v1", trust_remote_code=True)
    assert type(classifier.model).__name__ == "TinyRemoteForSequenceClassification"
    assert read_head(remote_model, "v1", trust_remote_code=True).labels == classifier.labels == tuple(LABELS)
    scorer = Scorer(classifier, samples=6, adaptive=None)
    assert scorer.predictor.strategy == "partial"  # a BERT underneath: fast MC replays it
    scores = list(scorer.score([ScoringInput("r1", "a wonderful , moving film", "positive"),
                                ScoringInput("r2", "dull and lifeless", "negative")]))
    assert [score.record_id for score in scores] == ["r1", "r2"]
    assert all(score.bald > 0 and score.loss is not None for score in scores)


def test_registering_it_needs_the_setting_and_the_version_keeps_its_code(remote_model, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(ScoringError, match=SETTING):
        register_model(str(remote_model), registry, LABELS)
    assert registry.versions() == []  # nothing half-registered

    entry = register_model(str(remote_model), registry, LABELS, trust_remote_code=True)
    assert (entry.path / "modeling_tiny_remote.py").is_file()
    assert (entry.path / "configuration_tiny_remote.py").is_file()

    trusted = Services(load_settings(registry={"path": tmp_path / "registry", "trust_remote_code": True}))
    assert trusted.classifier().version == entry.version
    assert trusted.model_head().labels == tuple(LABELS)
    refusing = Services(load_settings(registry={"path": tmp_path / "registry"}))
    with pytest.raises(ScoringError, match=SETTING):
        refusing.classifier()


def test_training_from_it_is_refused_before_training_and_once_trusted_trains_a_model_that_scores(remote_model,
                                                                                                    tmp_path):
    examples = sentiment_examples()
    with pytest.raises(ConfigError, match=SETTING):
        check_model_source(str(remote_model))
    check_model_source(str(remote_model), trust_remote_code=True)
    with pytest.raises(ConfigError, match=SETTING):
        train_classifier(remote_model, examples, [], LABELS, tmp_path / "refused", TrainingSettings(**FAST))
    assert not (tmp_path / "refused" / "config.json").exists()

    train_classifier(remote_model, examples, [], LABELS, tmp_path / "trained", TrainingSettings(**FAST),
                     trust_remote_code=True)
    trained = load_classifier(tmp_path / "trained", device="cpu", trust_remote_code=True)
    assert type(trained.model).__name__ == "TinyRemoteForSequenceClassification"
    assert (tmp_path / "trained" / "modeling_tiny_remote.py").is_file()
    assert len(list(Scorer(trained, samples=4).score([ScoringInput("r1", "a great cast", "positive")]))) == 1


def test_a_model_of_a_type_transformers_knows_loads_without_trust_even_with_auto_map(tmp_path):
    """Some checkpoints name their code in auto_map although transformers has the architecture built in: like
    transformers, the worker then loads the built-in class and needs no trust (nothing of theirs runs)."""
    import json

    directory = save_remote_code_classifier(tmp_path / "known", labels=LABELS)
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="bert", architectures=["BertForSequenceClassification"])
    (directory / "config.json").write_text(json.dumps(config))

    check_model_source(str(directory))
    assert type(load_classifier(directory, device="cpu").model).__name__ == "BertForSequenceClassification"
    (directory / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="its config.json cannot be read"):
        check_model_source(str(directory))
