"""The CUDA paths: mixed-precision training (bf16 autocast; fp16 autocast + GradScaler) and MC-dropout
scoring under autocast, on a tiny real BERT. Skipped where there is no CUDA device (CI here has none);
run by hand on a GPU machine: ``python -m pytest tests/unit/test_cuda.py``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.training_data import LABELS, sentiment_examples
from worker.errors import ConfigError
from worker.scoring import load_classifier
from worker.training.evaluate import predict_probabilities
from worker.training.trainer import TrainingSettings, _Loop, _training_amp_dtype, train_classifier

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"batch_size": 8, "learning_rate": 1e-3, "max_length": 32, "device": "cuda"}


@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_mixed_precision_training_learns_like_fp32_and_saves_fp32_weights(tiny_model_dir, tmp_path, amp_dtype):
    if amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    examples = sentiment_examples(48)
    runs = {}
    for name, mixed in (("fp32", False), (amp_dtype, True)):
        settings = TrainingSettings(epochs=10, mixed_precision=mixed, amp_dtype=amp_dtype,
                                    **{**FAST, "learning_rate": 3e-3})
        result = train_classifier(tiny_model_dir, examples, [], LABELS, tmp_path / name, settings)
        runs[name] = [epoch.train_loss for epoch in result.history]

    mixed_losses, exact_losses = runs[amp_dtype], runs["fp32"]
    assert all(np.isfinite(mixed_losses)), mixed_losses
    assert mixed_losses[-1] < 0.5 * mixed_losses[0], f"{amp_dtype} training did not learn: {mixed_losses}"
    assert abs(mixed_losses[-1] - exact_losses[-1]) < 0.1, (mixed_losses, exact_losses)
    weights = load_file(tmp_path / amp_dtype / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}


def test_the_grad_scaler_runs_for_fp16_only(tiny_model_dir):
    classifier = load_classifier(tiny_model_dir, device="cuda")
    for amp_dtype, expected_dtype, scaled in (("float16", torch.float16, True), ("bfloat16", torch.bfloat16, False)):
        if expected_dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            continue
        settings = TrainingSettings(amp_dtype=amp_dtype, **FAST)
        loop = _Loop(classifier.model, classifier.tokenizer, {"negative": 0, "positive": 1},
                     classifier.device, settings, steps=10)
        assert loop.amp_dtype == expected_dtype
        assert loop.scaler.is_enabled() is scaled
    off = TrainingSettings(mixed_precision=False, **FAST)
    assert _training_amp_dtype(torch.device("cuda"), off) is None


def test_bf16_on_a_gpu_without_bf16_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(ConfigError, match="amp_dtype"):
        _training_amp_dtype(torch.device("cuda"), TrainingSettings(amp_dtype="bfloat16", **FAST))


def test_scoring_under_autocast_agrees_with_fp32(tiny_model_dir):
    texts = [example.text for example in sentiment_examples(40)]
    mixed = load_classifier(tiny_model_dir, device="cuda", mixed_precision=True)
    exact = load_classifier(tiny_model_dir, device="cuda", mixed_precision=False)
    assert mixed.amp_dtype is not None and exact.amp_dtype is None

    mixed_probs = predict_probabilities(mixed, texts, samples=8)
    exact_probs = predict_probabilities(exact, texts, samples=8)

    assert mixed_probs.deterministic.dtype == np.float32 or mixed_probs.deterministic.dtype == np.float64
    np.testing.assert_allclose(mixed_probs.deterministic, exact_probs.deterministic, atol=2e-2)
    np.testing.assert_allclose(mixed_probs.mc.sum(axis=1), 1.0, atol=1e-4)  # [N, T] distributions
    assert mixed_probs.mc.std(axis=2).max() > 0, "MC dropout samples under autocast do not vary"


@pytest.mark.parametrize("strategy", ["full", "partial"])
def test_the_pipelined_gpu_path_scores_like_the_plain_loop(tiny_model_dir, strategy):
    """Pinned memory, non-blocking copies, a batch in flight and the prefetch thread change no score."""
    from worker.scoring import Scorer, ScoringInput

    classifier = load_classifier(tiny_model_dir, device="cuda", mixed_precision=False)
    texts = [" ".join(["wonderful film"] * (1 + i % 9)) if i % 2 else "dull and boring " * (1 + i % 5)
             for i in range(300)]
    records = [ScoringInput(f"r{i}", text, LABELS[i % 2]) for i, text in enumerate(texts)]
    plain = list(Scorer(classifier, samples=4, strategy=strategy, batch_size=16, pipeline=False).score(records))
    auto = Scorer(classifier, samples=4, strategy=strategy, batch_size="auto", max_batch_size=64, window_batches=2)
    piped = list(auto.score(records))

    assert auto.pipeline and auto.batch_tokens and auto.batch_size == 64
    assert [s.record_id for s in piped] == [r.record_id for r in records]
    for got, want in zip(piped, plain, strict=True):
        assert got.deterministic_label == want.deterministic_label
        assert got.loss == pytest.approx(want.loss, abs=1e-4)


def test_compiled_scoring_agrees_with_eager(tiny_model_dir):
    from worker.scoring import Scorer, ScoringInput

    classifier = load_classifier(tiny_model_dir, device="cuda", mixed_precision=False)
    records = [ScoringInput(f"r{i}", "a wonderful film " * (1 + i % 4), LABELS[i % 2]) for i in range(64)]
    eager = list(Scorer(classifier, samples=2, batch_size=16).score(records))
    compiled = list(Scorer(classifier, samples=2, batch_size=16, compile=True).score(records))
    assert [s.loss for s in compiled] == pytest.approx([s.loss for s in eager], abs=1e-3)


def test_a_llama_style_decoder_runs_once_per_batch_on_the_gpu_compiled_or_not(tmp_path):
    """Head-only MC (worker.scoring.decoder_head) on CUDA under autocast, eager and compiled: the model's own
    deterministic answer, BALD above 0, the same losses either way."""
    from tests.tiny_models import save_tiny_decoder_classifier
    from worker.scoring import Scorer, ScoringInput

    classifier = load_classifier(save_tiny_decoder_classifier(tmp_path / "llama", llama=True), device="cuda")
    records = [ScoringInput(f"r{i}", "a wonderful film " * (1 + i % 4), LABELS[i % 2]) for i in range(32)]
    eager = Scorer(classifier, samples=4, batch_size=8)
    assert eager.predictor._decoder is not None
    scores = list(eager.score(records))
    compiled = list(Scorer(classifier, samples=4, batch_size=8, compile=True).score(records))
    assert all(score.bald > 0 for score in scores)
    assert [s.loss for s in compiled] == pytest.approx([s.loss for s in scores], abs=1e-2)


@pytest.mark.parametrize("mc", [{"strategy": "full"}, {"mc_layers": 1}])
def test_adaptive_sampling_on_cuda_repacks_and_agrees_with_the_cpu(tiny_model_dir, mc):
    """The same consistent masks on both devices: a record's samples, and where it stopped, match the CPU's."""
    from worker.scoring import MCPredictor, Scorer, ScoringInput
    from worker.scoring.adaptive import AdaptiveSampling

    rule = AdaptiveSampling(round_size=2, bald_rse=0.5, loss_se=0.05)
    texts = ["a wonderful , moving film with a great cast", "dull", "boring , predictable and far too long"] * 4
    results = {}
    for device in ("cpu", "cuda"):
        classifier = load_classifier(tiny_model_dir, device=device, mixed_precision=False)
        scorer = Scorer(classifier, samples=8, batch_size=5, progress=False, adaptive=rule, **mc)
        results[device] = list(scorer.score(ScoringInput(str(i), text, "positive") for i, text in enumerate(texts)))
        predictor = MCPredictor(classifier, samples=8, adaptive=rule, **mc)
        inputs = dict(classifier.tokenizer(texts, padding=True, return_tensors="pt"))
        assert predictor.predict(inputs, torch.ones(len(texts), dtype=torch.long)).mc.shape == (len(texts), 2, 8)
    for on_cpu, on_cuda in zip(results["cpu"], results["cuda"], strict=True):
        assert on_cpu.mc_samples == on_cuda.mc_samples
        assert on_cuda.expected_loss == pytest.approx(on_cpu.expected_loss, rel=1e-3, abs=1e-5)
        assert on_cuda.bald == pytest.approx(on_cpu.bald, rel=1e-2, abs=1e-6)


@pytest.mark.parametrize("mc_layers", [0, 1, "all"])
def test_fast_mc_replays_a_bert_on_the_gpu_and_keeps_fast_mc(tiny_model_dir, mc_layers):
    """The replay check (fp32, dropouts off) must accept an exact replay on CUDA kernels too: a BERT on the GPU
    keeps fast MC at every depth instead of falling back to full MC."""
    from worker.scoring import MCPredictor

    classifier = load_classifier(tiny_model_dir, device="cuda", version="cuda-replay")
    assert MCPredictor(classifier, samples=4, mc_layers=mc_layers).strategy == "partial"


def test_cuda_graph_training_learns_like_eager_on_a_few_padded_lengths(tiny_model_dir, tmp_path):
    """``compile = "reduce-overhead"``: torch.compile with CUDA graphs, batches padded to a multiple of 16 tokens
    (whole batches replay graphs; a step cut into micro-batches runs eagerly). The losses follow the eager run's
    (padding changes the dropout masks, not the learning), and only multiples of 16 reach the model."""
    examples = [replace(e, text=e.text + " really" * (index % 7)) for index, e in enumerate(sentiment_examples(48))]
    runs = {}
    for name, options in (("eager", {}), ("graphs", {"compile": "reduce-overhead"}),
                          ("graphs-micro", {"compile": "reduce-overhead", "micro_batch_size": 3})):
        lengths: set[int] = set()

        def record(module, args, lengths=lengths):
            if isinstance(module, torch.nn.Embedding) and args[0].dim() == 2:
                lengths.add(args[0].shape[1])

        settings = TrainingSettings(epochs=8, **{**FAST, "learning_rate": 3e-3}, **options)
        hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
        try:
            result = train_classifier(tiny_model_dir, examples, [], LABELS, tmp_path / name, settings)
        finally:
            hook.remove()
        runs[name] = [epoch.train_loss for epoch in result.history]
        if name == "eager":
            assert any(length % 16 for length in lengths)
        else:
            assert all(length % 16 == 0 for length in lengths), (name, lengths)
    for name in ("graphs", "graphs-micro"):
        losses = runs[name]
        assert all(np.isfinite(losses)), (name, losses)
        assert losses[-1] < 0.5 * losses[0], f"{name} did not learn: {losses}"
        assert abs(losses[-1] - runs["eager"][-1]) < 0.1, (name, losses, runs["eager"])


def test_a_batch_that_runs_out_of_gpu_memory_is_split_into_micro_batches_with_the_same_steps(tmp_path, caplog):
    """The process may use ~64 MB of the GPU beyond what it already holds (cuBLAS workspaces and earlier tests'
    tensors count against the cap: 64 MB in all left no room for one example on an H100): a batch of 1,024 texts
    does not fit, so the trainer halves the micro-batch until it does (said once) and takes the same optimizer steps
    as a run with room (dropout 0, fp32: nothing random)."""
    from tests.tiny_models import save_tiny_classifier

    base = save_tiny_classifier(tmp_path / "base", hidden_dropout=0.0, attention_dropout=0.0)
    examples = sentiment_examples(1024)
    settings = TrainingSettings(epochs=1, mixed_precision=False, min_steps=0,
                                **{**FAST, "batch_size": 1024, "max_length": 64})
    train_classifier(base, examples, [], LABELS, tmp_path / "roomy", settings)
    torch.cuda.empty_cache()
    held = torch.cuda.memory_reserved()  # the caching allocator's segments: what the cap counts
    limit = (held + 64 * 2**20) / torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(limit)
    try:
        with caplog.at_level("WARNING", logger="worker.training.trainer"):
            train_classifier(base, examples, [], LABELS, tmp_path / "tight", settings)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert "ran out of GPU memory; from now on its gradients are accumulated over micro-batches" in caplog.text
    roomy = load_file(tmp_path / "roomy" / "model.safetensors")
    tight = load_file(tmp_path / "tight" / "model.safetensors")
    for key in roomy:
        np.testing.assert_allclose(tight[key].numpy(), roomy[key].numpy(), atol=1e-4, err_msg=key)


def test_scoring_a_batch_that_runs_out_of_gpu_memory_goes_on_in_parts_with_the_same_scores(tiny_model_dir, caplog):
    """The process may use ~64 MB of the GPU beyond what it holds (as the training test above): a batch of 2,048
    texts with 20 MC samples (≈ 200 MB for one activation of the MC pass) does not fit, so it is scored in parts
    (halved until they fit), with the scores of a run with room (fp32, consistent masks), and the scorer's later
    batches are halved (said once)."""
    from worker.scoring import Scorer, ScoringInput

    classifier = load_classifier(tiny_model_dir, device="cuda", mixed_precision=False)
    records = [ScoringInput(f"r{i}", example.text, example.label) for i, example in enumerate(sentiment_examples(2048))]
    options = {"samples": 20, "strategy": "full", "consistent": True, "batch_size": 2048, "progress": False}
    roomy = list(Scorer(classifier, **options).score(records))
    torch.cuda.empty_cache()
    held = torch.cuda.memory_reserved()
    torch.cuda.set_per_process_memory_fraction((held + 64 * 2**20) / torch.cuda.get_device_properties(0).total_memory)
    scorer = Scorer(classifier, **options)
    try:
        with caplog.at_level("WARNING", logger="worker.scoring.engine"):
            tight = list(scorer.score(records))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert "did not fit the GPU's free memory" in caplog.text and scorer.batch_size == 1024
    for got, want in zip(tight, roomy, strict=True):
        assert got.record_id == want.record_id and got.deterministic_label == want.deterministic_label
        assert (got.loss, got.bald) == pytest.approx((want.loss, want.bald), abs=1e-4)


def test_a_ray_actor_kept_between_runs_gives_the_runs_cached_gpu_memory_back(tiny_model_dir):
    """A Ray scoring actor stays loaded between runs; on a machine whose GPU also trains (a local Ray: actor 1 shares
    GPU 0 with the worker's process) it must hold its model, not the last run's peak. The run below caches
    ≈ 200 MB or more in the actor (2,048 texts in one batch, 20 full MC samples, as the out-of-memory test above);
    after the run the device's free memory (seen from this process) is back within 32 MiB of what it was with the
    model loaded. Fails without ``ScoringActor.release`` (the actor's caching allocator keeps the blocks)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from worker.config import RaySettings
    from worker.scoring import ScoringInput
    from worker.scoring.distributed import RayScorer

    records = [ScoringInput(f"r{i}", example.text, example.label) for i, example in enumerate(sentiment_examples(2048))]
    options = {"samples": 20, "strategy": "full", "consistent": True, "batch_size": 2048}
    settings = RaySettings(actors=1, gpus_per_actor=1, cpus_per_actor=1, chunk_records=2048)
    torch.cuda.empty_cache()
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with RayScorer(tiny_model_dir, "v1", settings, device="cuda", options=options) as scorer:
            list(scorer.score(records[:8]))  # the model and its CUDA context in place
            loaded = torch.cuda.mem_get_info()[0]
            assert len(list(scorer.score(records))) == len(records)
            free = torch.cuda.mem_get_info()[0]
            assert free >= loaded - 32 * 2**20, f"{(loaded - free) / 2**20:.0f} MiB still held after the run"
    finally:
        if started:
            ray.shutdown()
