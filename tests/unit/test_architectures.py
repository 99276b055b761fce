"""The classifiers teams bring: every common encoder architecture loads, scores with MC dropout whose samples
vary, and gets fast MC only where the layer-by-layer replay reproduces the model (tiny real models, built here)."""

from __future__ import annotations

import logging

import pytest
import torch
import transformers

from tests.tiny_models import ARCHITECTURES, CORPUS, save_remote_code_classifier, save_tiny_architecture
from worker import jobs
from worker.config import ScoringSettings
from worker.errors import ScoringError
from worker.scoring import MCPredictor, Scorer, ScoringInput, load_classifier

# what fast MC does at mc_layers = "auto" on the CPU (2 of 3 layers): replay the layers, or fall back to full MC
FAST_MC = {"bert": "partial", "roberta": "partial", "xlm-roberta": "partial", "electra": "partial",
           "distilbert": "partial",  # transformer.layer, a first-token head
           "albert": "full",  # shared layer groups
           "deberta-v2": "partial",  # relative positions and embeddings replayed; the pooler sits on the model
           "deberta-v2-conv": "partial",  # and the convolution after the first layer
           "deberta": "partial",
           "mpnet": "partial",  # the relative-position bias replayed
           "modernbert": "partial",  # rotary positions and a mask per attention type replayed; a first-token head
           "modernbert-mean": "partial"}  # a mean-pooling head, sliding-window layers
# the replay follows transformers 5's layer interfaces: with 4.x these fall back to full MC (said in the log, tested)
REPLAYED_FROM_5 = {"distilbert", "mpnet", "modernbert", "modernbert-mean"}
TRANSFORMERS_4 = int(transformers.__version__.split(".")[0]) < 5
if TRANSFORMERS_4:
    FAST_MC.update(dict.fromkeys(REPLAYED_FROM_5, "full"))


def _load(tmp_path, architecture, **options):
    directory = save_tiny_architecture(tmp_path / architecture, architecture,
                                       labels=("negative", "neutral", "positive"))
    return load_classifier(directory, device="cpu", version=f"{architecture}-{tmp_path.name}", **options)


def _inputs(classifier, texts=CORPUS):
    return dict(classifier.tokenizer(list(texts), padding=True, return_tensors="pt"))


def test_every_architecture_of_the_table_is_expected_somewhere():
    assert set(FAST_MC) == set(ARCHITECTURES)


@pytest.mark.parametrize("masks", ["consistent", "baal"])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_teams_classifier_loads_and_scores_with_samples_that_vary(tmp_path, architecture, masks):
    """As the worker scores (adaptive sampling on consistent masks) and with BaaL's masks at fixed T."""
    classifier = _load(tmp_path, architecture)
    # rounds of 3 samples: DeBERTa's relative-position embeddings [32, hidden] are not a multiple of them
    adaptive = jobs.adaptive_sampling(ScoringSettings(adaptive_round=3)) if masks == "consistent" else None
    scorer = Scorer(classifier, samples=6, progress=False, adaptive=adaptive)
    records = [ScoringInput(f"r{index}", text, ("negative", "neutral", "positive")[index % 3])
               for index, text in enumerate(CORPUS)]

    scores = list(scorer.score(records))

    assert scorer.predictor.strategy == FAST_MC[architecture]
    assert [score.record_id for score in scores] == [record.record_id for record in records]
    assert all(not score.skipped and score.predicted_label in classifier.labels for score in scores)
    assert all(score.loss is not None and score.loss >= 0 for score in scores)
    # a random tiny model's BALD is small (≥ 2e-6 seen here), equal samples give rounding noise (1e-16)
    assert max(score.bald for score in scores) > 1e-9, "the MC samples are all equal"
    prediction = scorer.predictor.predict(_inputs(classifier))
    with torch.inference_mode():
        own = torch.log_softmax(classifier.model(**_inputs(classifier)).logits, dim=-1)
    torch.testing.assert_close(prediction.deterministic, own)


@pytest.mark.parametrize("architecture", ["electra", "roberta", "distilbert", "deberta-v2", "deberta-v2-conv",
                                          "deberta", "mpnet", "modernbert", "modernbert-mean"])
def test_fast_mc_from_the_embeddings_reproduces_full_mc_for_the_same_seed(tmp_path, architecture):
    """ELECTRA projects its embeddings to the hidden size before the first layer, DistilBERT's embeddings take no
    token types and its head reads the first token through a dense layer; DeBERTa's layers take relative positions
    and embeddings (v2-xlarge's shape: a convolution after the first layer), its embeddings the mask and its pooler
    drops out; MPNet's layers take a relative-position bias; ModernBERT's rotary positions and a full or
    sliding-window mask each, its head a final norm and a first-token or mean pooling: the replay must do the
    same."""
    if TRANSFORMERS_4 and architecture in REPLAYED_FROM_5:
        pytest.skip(f"{architecture}'s replay follows transformers 5's layers (4.x: full MC)")
    classifier = _load(tmp_path, architecture)
    partial = MCPredictor(classifier, samples=5, mc_layers="all")
    full = MCPredictor(classifier, samples=5, strategy="full")
    assert partial.strategy == "partial"

    torch.manual_seed(3)
    fast = partial.predict(_inputs(classifier)).mc
    torch.manual_seed(3)
    whole = full.predict(_inputs(classifier)).mc

    torch.testing.assert_close(fast, whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("architecture", ["albert", "deberta-v2-conv", "roberta"])
def test_mc_sampling_shares_the_models_weights_and_leaves_its_own_dropouts_alone(tmp_path, architecture):
    """Full MC (ALBERT's shared layers) and fast MC from the embeddings sample a copy of the model's structure that
    holds the model's own weights — no second set (a model filling the GPU still gets MC dropout) — while its
    dropouts, patched for sampling at another rate, stay the model's own: the deterministic pass is unchanged."""
    classifier = _load(tmp_path, architecture)
    model = classifier.model
    weights = {id(tensor) for tensor in (*model.parameters(), *model.buffers())}
    dropouts = {name: (type(module), module.p) for name, module in model.named_modules()
                if isinstance(module, torch.nn.Dropout)}
    with torch.inference_mode():
        before = model(**_inputs(classifier)).logits

    for options in ({"strategy": "full"}, {"mc_layers": "all"}):
        predictor = MCPredictor(classifier, samples=4, dropout_rate=0.3, **options)
        sampled = predictor._stochastic if predictor._stochastic is not None else predictor._suffix_parts
        assert sampled is not None and sampled is not model
        sampled_weights = [id(tensor) for tensor in (*sampled.parameters(), *sampled.buffers())]
        assert sampled_weights and set(sampled_weights) <= weights, options  # the same tensors, none copied
        assert any(module.p == 0.3 for module in sampled.modules() if hasattr(module, "p")), options
        prediction = predictor.predict(_inputs(classifier))
        assert prediction.mc.std(dim=0).max() > 0, options  # the samples vary

    assert {name: (type(module), module.p) for name, module in model.named_modules()
            if isinstance(module, torch.nn.Dropout)} == dropouts
    assert not model.training
    with torch.inference_mode():
        torch.testing.assert_close(model(**_inputs(classifier)).logits, before)


@pytest.mark.parametrize("mc_layers", [1, "all"])
def test_a_model_whose_head_cannot_be_replayed_gets_full_mc_and_says_why(tmp_path, caplog, mc_layers):
    """A team's own architecture (shipped code) with BERT's parts and its own head — the mean of the tokens, not
    the pooler: the replay does not reproduce its logits, so it gets full MC, said once per model version."""
    directory = save_remote_code_classifier(tmp_path / "mean-pooled", labels=("negative", "neutral", "positive"),
                                            mean_pooled=True)
    classifier = load_classifier(directory, device="cpu", version=f"mean-{mc_layers}", trust_remote_code=True)
    with caplog.at_level(logging.INFO, logger="worker.scoring.mc"):
        predictor = MCPredictor(classifier, samples=5, mc_layers=mc_layers)

    assert predictor.strategy == "full"
    notes = [message for message in caplog.messages if "fast MC cannot replay" in message]
    assert len(notes) == 1 and type(classifier.model).__name__ in notes[0] and classifier.version in notes[0]
    assert "logits differ" in notes[0]
    with caplog.at_level(logging.INFO, logger="worker.scoring.mc"):
        MCPredictor(classifier, samples=5, mc_layers=mc_layers)  # a running worker builds one per scoring job
    assert len([message for message in caplog.messages if "fast MC cannot replay" in message]) == 1
    full = MCPredictor(classifier, samples=5, strategy="full")
    torch.manual_seed(5)
    fallback_mc = predictor.predict(_inputs(classifier)).mc
    torch.manual_seed(5)
    torch.testing.assert_close(fallback_mc, full.predict(_inputs(classifier)).mc)


def test_a_model_trained_without_dropout_is_sampled_at_the_fallback_rate_and_says_so(tmp_path, caplog):
    classifier = _load(tmp_path, "modernbert")
    assert all(module.p == 0 for module in classifier.model.modules() if isinstance(module, torch.nn.Dropout))

    with caplog.at_level(logging.WARNING, logger="worker.scoring.mc"):
        sampled = MCPredictor(classifier, samples=8).predict(_inputs(classifier)).mc
        MCPredictor(classifier, samples=8)  # once per model version

    assert sampled.exp().std(dim=2).min() > 0
    warnings = [message for message in caplog.messages if "no dropout" in message]
    assert len(warnings) == 1 and classifier.version in warnings[0] and "scoring.dropout_rate" in warnings[0]
    assert all(module.p == 0 for module in classifier.model.modules() if isinstance(module, torch.nn.Dropout))
    unsampled = MCPredictor(classifier, samples=8, dropout_rate=0.0).predict(_inputs(classifier))
    torch.testing.assert_close(unsampled.mc, unsampled.deterministic.unsqueeze(2).expand_as(unsampled.mc))


def _llama(tmp_path, version: str):
    from tests.tiny_models import save_tiny_decoder_classifier

    classifier = load_classifier(save_tiny_decoder_classifier(tmp_path / "llama", llama=True), device="cpu",
                                 version=version)
    assert not any(isinstance(module, torch.nn.Dropout) for module in classifier.model.modules())
    return classifier


LLAMA_INPUTS = [ScoringInput("a", "a wonderful , moving film", "positive"),
                ScoringInput("b", "dull and lifeless", "negative"), ScoringInput("c", "the acting", None)]


@pytest.mark.parametrize("consistent", [False, True], ids=["independent-masks", "consistent-masks"])
def test_a_llama_style_decoder_without_any_dropout_runs_once_and_samples_its_head(tmp_path, caplog, consistent):
    """Llama, Qwen2, Mistral classifiers have no dropout module: their MC samples were all equal (BALD 0 for every
    record) from T identical passes of a copy of the model. Now the model runs once per batch, the hidden state it
    pools goes T times through a dropout and its own head; no copy is made, the scoring model stays as it was."""
    classifier = _llama(tmp_path, f"llama-{consistent}")
    trunk_calls = []
    classifier.model.model.register_forward_hook(lambda *args: trunk_calls.append(1))
    with caplog.at_level(logging.WARNING, logger="worker.scoring.mc"):
        scorer = Scorer(classifier, samples=8, consistent=consistent, batch_size=8)
        Scorer(classifier, samples=8, consistent=consistent)  # said once per model version
    trunk_calls.clear()
    scores = list(scorer.score(LLAMA_INPUTS))

    assert len(trunk_calls) == 1  # one batch: the model ran once, not 1 + T times
    assert all(score.bald > 0 and score.entropy > 0 for score in scores)
    warnings = [message for message in caplog.messages if "no dropout layer" in message]
    assert len(warnings) == 1 and "inserted before its head 'score' at rate 0.1" in warnings[0]
    assert "the model runs once per batch" in warnings[0]
    assert isinstance(classifier.model.score, torch.nn.Linear)  # the model that gives the suggestions: untouched
    assert scorer.predictor._decoder.head is classifier.model.score  # shared, not copied
    assert "head only (the model once per batch)" in repr(scorer)
    inputs = dict(classifier.tokenizer([i.text for i in LLAMA_INPUTS], padding=True, return_tensors="pt"))
    with torch.inference_mode():
        expected = torch.log_softmax(classifier.model(**inputs).logits, dim=-1)
    unsampled = MCPredictor(classifier, samples=4, dropout_rate=0.0, consistent=consistent).predict(inputs)
    torch.testing.assert_close(unsampled.deterministic, expected)  # the model's own answer, padding and all
    torch.testing.assert_close(unsampled.mc, unsampled.deterministic.unsqueeze(2).expand_as(unsampled.mc))


def test_a_decoder_whose_pooling_cannot_be_replayed_gets_full_mc_with_a_dropout_before_its_head(tmp_path, caplog,
                                                                                                monkeypatch):
    from worker.scoring import decoder_head

    classifier = _llama(tmp_path, "llama-pooled-elsewhere")
    monkeypatch.setattr(decoder_head.DecoderHead, "pool", lambda self, hidden, input_ids: hidden[:, 0])
    with caplog.at_level(logging.INFO, logger="worker.scoring.mc"):
        predictor = MCPredictor(classifier, samples=6)
    assert predictor.strategy == "full" and predictor._decoder is None
    assert "last-token pooling cannot be replayed" in caplog.text and "full MC: the whole model runs" in caplog.text
    scores = list(Scorer(classifier, samples=6).score(LLAMA_INPUTS))
    assert all(score.bald > 0 for score in scores)


def test_a_set_dropout_rate_replaces_the_models_own_in_every_sampled_layer(tmp_path, caplog):
    classifier = _load(tmp_path, "bert")
    spread = {}
    with caplog.at_level(logging.WARNING, logger="worker.scoring.mc"):
        for rate in (None, 0.5):
            torch.manual_seed(0)
            mc = MCPredictor(classifier, samples=16, mc_layers="all", dropout_rate=rate).predict(_inputs(classifier)).mc
            spread[rate] = mc.exp().std(dim=2).mean().item()

    assert spread[0.5] > 2 * spread[None]  # the tiny BERT's own rate is 0.1
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    with pytest.raises(ValueError, match=r"dropout_rate must be in \[0, 1\), got 1.0"):
        MCPredictor(classifier, dropout_rate=1.0)
    with pytest.raises(ValueError, match="dropout_rate"):
        ScoringSettings(dropout_rate=1.5)


def test_a_model_that_fails_on_a_batch_is_one_error_naming_the_model_and_the_records(tmp_path):
    """A tokenizer whose ids run past the model's embeddings (saved from different checkpoints): the texts whose
    tokens the embeddings lack fail inside torch; the run gets a ScoringError naming them, not a traceback. A
    model that fails on the probe already is one line when the scorer is built."""
    import transformers

    from tests.tiny_models import build_tokenizer
    from worker.scoring.mc import _PROBE_TEXTS

    tokenizer = build_tokenizer()
    probe_ids = max(max(ids) for ids in tokenizer(list(_PROBE_TEXTS))["input_ids"])
    for name, vocabulary in (("partial", probe_ids + 1), ("none", 5)):
        config = transformers.BertConfig(vocab_size=vocabulary, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    classifier = load_classifier(tmp_path / "partial", device="cpu", version="v0007")
    records = [ScoringInput(f"r{index}", text) for index, text in enumerate(CORPUS)]
    assert any(max(ids) > probe_ids for ids in tokenizer(CORPUS)["input_ids"])

    with pytest.raises(ScoringError) as raised:
        list(Scorer(classifier, samples=2, batch_size=4, progress=False).score(records))

    message = str(raised.value)
    assert "model v0007 (BertForSequenceClassification) failed on the batch of records" in message
    assert "IndexError" in message and any(f"r{index}" in message for index in range(len(CORPUS)))
    with pytest.raises(ScoringError, match=r"model v0008 \(BertForSequenceClassification\) fails on a probe"):
        Scorer(load_classifier(tmp_path / "none", device="cpu", version="v0008"), samples=2)


def test_a_tokenizer_from_another_checkpoint_returns_only_what_the_models_forward_takes():
    """A BERT tokenizer saved beside a model whose forward takes no token types and no ``**kwargs`` (DistilBERT and
    MPNet under transformers 4.x): its ``token_type_ids`` are left out, so the model is not called with them."""
    from tests.tiny_models import build_tokenizer
    from worker.scoring.model import ensure_padding

    class NoTokenTypes(torch.nn.Module):
        config = type("Config", (), {"pad_token_id": 0})()

        def forward(self, input_ids=None, attention_mask=None):
            return input_ids

    class TakesAnything(NoTokenTypes):
        def forward(self, input_ids=None, attention_mask=None, **kwargs):
            return input_ids

    tokenizer = build_tokenizer()
    tokenizer.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]  # what the worker batches
    ensure_padding(tokenizer, TakesAnything(), "their-model")
    assert "token_type_ids" in tokenizer.model_input_names  # a forward that takes **kwargs: nothing changes
    ensure_padding(tokenizer, NoTokenTypes(), "their-model")
    assert tokenizer.model_input_names == ["input_ids", "attention_mask"]
    assert "token_type_ids" not in tokenizer("a text")
