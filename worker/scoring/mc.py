"""Deterministic and MC-dropout forward passes.

Two MC strategies, both with BaaL's dropout patching (``baal.bayesian.dropout``):

``full``
    BaaL's :class:`~baal.bayesian.dropout.MCDropoutModule` around a copy of the whole model;
    the T samples of a batch run as one enlarged batch (T × batch).
``partial`` (fast MC)
    Only the last ``k`` encoder layers and the classification head are stochastic. The
    deterministic pass (dropout off) runs once and also yields the hidden states entering
    layer ``L - k``; the stochastic suffix (a BaaL-patched copy of those layers and the head)
    then runs on those hidden states repeated T times. ``k = 0`` is head-only; ``k = "all"``
    makes the embeddings stochastic too and reproduces ``full`` for the same seed.

Which dropouts are stochastic: BaaL swaps ``nn.Dropout`` modules. With SDPA attention (the
transformers default) attention-probability dropout is a functional argument applied only in
training mode, so it stays **off** under MC; load the model with ``attention_dropout=True``
(eager attention) to make it stochastic. Hidden-state, embedding and classifier dropout are
always stochastic in the MC passes. A model whose MC samples come out identical on a probe batch (trained without
dropout, every rate 0 as ModernBERT ships, or whose only dropout is attention dropout under SDPA) has its dropout
layers sampled at ``FALLBACK_DROPOUT_RATE`` instead, with a warning (``dropout_rate`` sets one rate for every
sampled layer of any model). A model with no dropout module at all (Llama-style decoders: Llama, Qwen2, Mistral)
gets one in its MC copy, before its classification head (``score`` / ``classifier``), at ``dropout_rate`` or
``FALLBACK_DROPOUT_RATE``: MC dropout over the head's input (its samples would otherwise all be equal).

Fast MC replays the model's last layers one by one, with what the encoder passes them besides the hidden states
(DeBERTa's relative positions and embeddings, MPNet's relative-position bias); before it is used, that replay
(dropouts off) must reproduce the model's own logits on a probe batch, else the model gets full MC (an
architecture whose layers take something else, or whose head pools differently).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import inspect
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
import transformers
from baal.bayesian.dropout import Dropout as BaalDropout
from baal.bayesian.dropout import MCDropoutModule, patch_module
from torch import nn

from worker.errors import ConfigError, ScoringError
from worker.scoring import decoder_head
from worker.scoring.adaptive import AdaptiveSampling, sequential_samples
from worker.scoring.consistent import ConsistentDropout, SampleWindow, patch_consistent
from worker.scoring.device import autocast, model_failures
from worker.scoring.model import Classifier

_TRANSFORMERS_5 = int(transformers.__version__.split(".")[0]) >= 5
# where the installed transformers keeps the encoders' attention-mask helpers (4.x: one per attention
# implementation; ≥ 5: one factory for all), imported by name because each module exists in one major only
_MASKS: Any = importlib.import_module("transformers.masking_utils" if _TRANSFORMERS_5
                                      else "transformers.modeling_attn_mask_utils")
logger = logging.getLogger(__name__)

MCLayers = int | Literal["all", "auto"]

FALLBACK_DROPOUT_RATE = 0.1  # MC dropout's rate for a model whose dropouts are all 0 (see the module docstring)
# the layer-by-layer replay must reproduce the model's logits to this fraction of their largest magnitude (float32,
# dropouts off): the same kernels on the same shapes agree exactly on the CPU; a missing relative-position bias
# (MPNet) shows even in a randomly initialised model at ~1e-4
_REPLAY_TOLERANCE = 1e-5
_PROBE_TEXTS = ("a short probe", "a longer probe text, so that the batch has padding and a mask to apply")


def auto_mc_layers(num_layers: int, device: torch.device | None = None) -> int | Literal["all"]:
    """The default depth of MC dropout: every layer on CUDA, the last two thirds of the encoder elsewhere.

    Measured on MiniLM (benchmarks/scoring.py, benchmarks/RESULTS.md): on 2 CPU cores BALD's rank
    correlation with full MC is 0.34 for k=1 and ≥ 0.8 from k=4 (4 of 6 layers), still ≥ 4× faster
    than BaaL's reference; on an H100 full MC already costs only 1.5× a deterministic pass and k=4
    was no faster than all layers, so a GPU gets the full-depth estimate.
    """
    if device is not None and device.type == "cuda":
        return "all"
    return math.ceil(2 * num_layers / 3)


@dataclass
class BatchPrediction:
    """Log-probabilities of one batch, float32 on the CPU.

    With adaptive sampling a record has ``samples_used[i]`` ≤ T samples: ``mc[i, :, samples_used[i]:]`` is NaN.
    """

    deterministic: torch.Tensor  # [batch, classes]
    mc: torch.Tensor  # [batch, classes, samples]
    samples_used: torch.Tensor | None = None  # [batch] int64; None: every record has all T samples


@dataclass
class PendingPrediction:
    """A batch whose forward passes are queued on the device; :meth:`result` waits for its copy back.

    On CUDA the log-probabilities are copied into page-locked host memory without blocking and an
    event marks the end of the copy, so the host can prepare (or post-process) other batches while
    the GPU works; elsewhere the tensors are ready at once.
    """

    deterministic: torch.Tensor  # [batch, classes], on the host (being filled on CUDA)
    mc: torch.Tensor  # [batch, classes, samples]
    ready: torch.cuda.Event | None = None
    samples_used: torch.Tensor | None = None  # [batch], on the host (see BatchPrediction)

    def result(self) -> BatchPrediction:
        if self.ready is not None:
            self.ready.synchronize()
        return BatchPrediction(deterministic=self.deterministic, mc=self.mc, samples_used=self.samples_used)


def _encoder_layers(base: Any) -> Any:
    """The layer list of a BERT-style (``encoder.layer``), DistilBERT (``transformer.layer``) or ModernBERT
    (``layers`` beside ``final_norm``) encoder, or None."""
    for stack in ("encoder", "transformer"):
        layers = getattr(getattr(base, stack, None), "layer", None)
        if layers is not None:
            return layers
    if isinstance(getattr(base, "final_norm", None), nn.Module):
        return getattr(base, "layers", None)
    return None


def has_encoder_parts(model: Any) -> bool:
    """Whether fast (partial) MC can run ``model`` layer by layer: a BERT/RoBERTa-style encoder
    (``base_model.encoder.layer``, ``base_model.embeddings``, ``classifier``: BERT, RoBERTa, ELECTRA, DeBERTa,
    MPNet …), DistilBERT or ModernBERT. Decoder classifiers (GPT-2, Llama …), ALBERT and others run full MC instead;
    so does a model with these parts whose replay does not reproduce its logits (see
    :meth:`MCPredictor._replay_mismatch`)."""
    base = getattr(model, "base_model", None)
    return (_encoder_layers(base) is not None and getattr(base, "embeddings", None) is not None
            and hasattr(model, "classifier"))


class _EncoderParts:
    """The pieces of a BERT/RoBERTa-style classifier needed to run its layers one by one."""

    def __init__(self, model: Any):  # duck-typed: any transformers encoder with these parts
        if not has_encoder_parts(model):
            raise ScoringError(
                f"partial MC dropout supports BERT- and RoBERTa-style encoders (base.encoder.layer, "
                f"base.embeddings, classifier); {type(model).__name__} is not one: use strategy='full'"
            )
        base = model.base_model
        pooler = getattr(base, "pooler", None)
        self.layers: nn.ModuleList = _encoder_layers(base)
        self.embeddings: nn.Module = base.embeddings
        self.base = base
        if pooler is not None and hasattr(model, "dropout"):  # BERT: classifier(dropout(pooler(h)))
            self.head = nn.ModuleDict({"pooler": pooler, "dropout": model.dropout, "classifier": model.classifier})
        elif isinstance(getattr(model, "pooler", None), nn.Module) and hasattr(model, "dropout"):
            # DeBERTa: the same on the model's own pooler, which drops out the first token before its dense layer
            self.head = nn.ModuleDict({"context_pooler": model.pooler, "dropout": model.dropout,
                                       "classifier": model.classifier})
        elif all(isinstance(getattr(model, name, None), nn.Module) for name in ("head", "drop")):
            # ModernBERT: classifier(drop(head(pool(final_norm(h))))), pooling the first token or the mean
            self.head = nn.ModuleDict({"final_norm": base.final_norm, "prediction_head": model.head,
                                       "dropout": model.drop, "classifier": model.classifier})
        elif hasattr(model, "pre_classifier") and hasattr(model, "dropout"):  # DistilBERT, on the first token
            self.head = nn.ModuleDict({"pre_classifier": model.pre_classifier, "dropout": model.dropout,
                                       "classifier": model.classifier})
        else:  # RoBERTa / XLM-R / ELECTRA: classifier(h) takes the whole sequence output
            self.head = nn.ModuleDict({"classifier": model.classifier})

    @property
    def num_layers(self) -> int:
        return len(self.layers)


_M = TypeVar("_M", bound=nn.Module)


def weight_sharing_copy(module: _M) -> _M:
    """A copy of ``module``'s structure — its submodules and their settings (dropout rates, train / eval flags) —
    holding the very same parameters and buffers, not copies of them. Patching the copy's dropouts for MC sampling
    leaves the model as it is, and the copy costs no second set of weights: a model that fills most of the GPU
    still gets MC dropout. (Tensors kept as plain attributes, not registered, are copied: caches, small.)"""
    shared = {id(tensor): tensor for tensor in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, shared)


class _StochasticSuffix(nn.Module):
    """A copy of the last layers (and, for k = all, the embeddings) plus the head, sharing the model's weights
    (:func:`weight_sharing_copy`), its dropouts made stochastic by ``patch`` (BaaL's or consistent masks)."""

    def __init__(self, parts: _EncoderParts, num_layers: int, *, from_embeddings: bool,
                 patch: Callable[[nn.Module], nn.Module]):
        super().__init__()
        self.embeddings = weight_sharing_copy(parts.embeddings) if from_embeddings else None
        # ELECTRA (embedding size ≠ hidden size) projects the embeddings before the first layer
        project = getattr(parts.base, "embeddings_project", None) if from_embeddings else None
        self.project = weight_sharing_copy(project) if project is not None else None
        start = parts.num_layers - num_layers
        self.layers = nn.ModuleList(weight_sharing_copy(layer) for layer in parts.layers[start:])
        self.head = weight_sharing_copy(parts.head)
        self.config = parts.base.config
        encoder = getattr(parts.base, "encoder", None)
        # DeBERTa-v2's convolution after the first layer (conv_kernel_size > 0), when the suffix holds that layer
        conv = getattr(encoder, "conv", None) if start == 0 else None
        self.conv = weight_sharing_copy(conv) if isinstance(conv, nn.Module) else None
        self._embeddings_take_mask = self.embeddings is not None and "mask" in inspect.signature(
            self.embeddings.forward).parameters  # DeBERTa zeroes the padding's embeddings
        # bound methods of the model's own encoder, not submodules (patching the suffix must not reach the model):
        # what its layers take besides the hidden states — DeBERTa relative positions and embeddings, MPNet a
        # relative-position bias — computed from the hidden states' shape and unsampled parameters
        self._relative_positions: Any = getattr(encoder, "get_rel_pos", None)
        self._relative_embeddings: Any = getattr(encoder, "get_rel_embedding", None)
        self._relative_mask: Any = getattr(encoder, "get_attention_mask", None)
        self._position_bias: Any = getattr(encoder, "compute_position_bias", None)
        # ModernBERT: rotary position embeddings and a mask per attention type (full, sliding window)
        rotary = getattr(parts.base, "rotary_emb", None)
        self._rotary: Any = rotary.__call__ if rotary is not None else None
        self._pooling = getattr(self.config, "classifier_pooling", "cls")
        # transformers 4.x's eager mask (≥ 5 has create_bidirectional_mask)
        self._extended_mask: Any = getattr(parts.base, "get_extended_attention_mask", None)
        patch(self)

    def forward(self, hidden: torch.Tensor | None, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """hidden: [n, seq, hidden] entering the suffix (None when it starts at the embeddings) → logits [n, C]."""
        if self.embeddings is not None:
            extra = {"token_type_ids": inputs["token_type_ids"]} if "token_type_ids" in inputs else {}
            if self._embeddings_take_mask:
                extra["mask"] = inputs["attention_mask"]
            hidden = self.embeddings(input_ids=inputs["input_ids"], **extra)
            if self.project is not None:
                hidden = self.project(hidden)
        if hidden is None:
            raise ScoringError("a suffix that does not start at the embeddings needs the hidden states entering it")
        if len(self.layers):
            calls = self._layer_inputs(inputs["attention_mask"], hidden)
            for index, (layer, (arguments, options)) in enumerate(zip(self.layers, calls, strict=True)):
                output = layer(hidden, *arguments, **options)
                output = output[0] if isinstance(output, tuple) else output
                if index == 0 and self.conv is not None:  # mixes the first layer's input into its output
                    output = self.conv(hidden, output, inputs["attention_mask"])
                hidden = output
        if "pooler" in self.head:
            return self.head["classifier"](self.head["dropout"](self.head["pooler"](hidden)))
        if "context_pooler" in self.head:
            return self.head["classifier"](self.head["dropout"](self.head["context_pooler"](hidden)))
        if "prediction_head" in self.head:
            hidden = self.head["final_norm"](hidden)
            if self._pooling == "mean":
                mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
            else:
                pooled = hidden[:, 0]
            return self.head["classifier"](self.head["dropout"](self.head["prediction_head"](pooled)))
        if "pre_classifier" in self.head:
            first = torch.relu(self.head["pre_classifier"](hidden[:, 0]))
            return self.head["classifier"](self.head["dropout"](first))
        return self.head["classifier"](hidden)

    @property
    def pools_once(self) -> bool:
        """Head-only MC (k = 0) with a BERT head: see :meth:`pooled_sample_logits`."""
        return self.embeddings is None and not len(self.layers) and "pooler" in self.head

    def pooled_sample_logits(self, hidden: torch.Tensor, count: int) -> torch.Tensor:
        """Logits [count · n, C] of ``count`` samples stacked sample-major, from the final hidden states
        [n, seq, hidden] (only when :attr:`pools_once`). The pooler (dense + tanh of the first token) has no
        dropout, so it is the same for every sample: pooling once and repeating the pooled vectors
        [count · n, hidden] gives the head's dropouts exactly the inputs that repeating the hidden states
        [count · n, seq, hidden] would — seq times less memory traffic, and no attention mask."""
        pooled = self.head["pooler"](hidden).repeat(count, 1)
        return self.head["classifier"](self.head["dropout"](pooled))

    def _layer_inputs(self, mask: torch.Tensor, hidden: torch.Tensor) -> list[tuple[tuple, dict[str, Any]]]:
        """What each layer takes after the hidden states [n, seq, hidden], as the model's encoder passes it, one
        (positional, keyword) pair per layer: DeBERTa a [n, 1, seq, seq] mask, relative positions and embeddings;
        MPNet the mask and a relative-position bias [n, heads, seq, seq]; ModernBERT the mask and rotary position
        embeddings of the layer's attention type (full or sliding window); BERT-style layers the mask alone.
        ``mask``: the tokenizer's [n, seq]."""
        if self._relative_positions is not None and self._relative_embeddings is not None:
            same: tuple[tuple, dict[str, Any]] = ((self._relative_mask(mask),), {
                "relative_pos": self._relative_positions(hidden), "rel_embeddings": self._relative_embeddings()})
        elif self._rotary is not None and _TRANSFORMERS_5:
            positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
            masks = {"full_attention": _MASKS.create_bidirectional_mask,
                     "sliding_attention": _MASKS.create_bidirectional_sliding_window_mask}
            types = [str(layer.attention_type) for layer in self.layers]
            kinds = {kind: {"attention_mask": masks[kind](config=self.config, inputs_embeds=hidden,
                                                         attention_mask=mask),
                            "position_embeddings": self._rotary(hidden, positions, kind)} for kind in set(types)}
            return [((), kinds[kind]) for kind in types]
        elif self._position_bias is not None:
            same = ((self._attention_mask(mask, hidden), self._position_bias(hidden)), {})
        else:
            same = ((), {"attention_mask": self._attention_mask(mask, hidden)})
        return [same] * len(self.layers)

    def _attention_mask(self, mask: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor | None:
        """The same mask the model itself builds for its attention implementation (None: no padding, on
        transformers ≥ 5, where the attention then needs no mask)."""
        if _TRANSFORMERS_5:
            return _MASKS.create_bidirectional_mask(config=self.config, inputs_embeds=hidden, attention_mask=mask)
        if self.config._attn_implementation == "sdpa":
            return _MASKS._prepare_4d_attention_mask_for_sdpa(mask, hidden.dtype, tgt_len=hidden.shape[1])
        return self._extended_mask(mask, mask.shape)


def _sample_eager_attention_dropout(module: Any) -> None:
    """transformers ≥ 5 applies attention-probability dropout as a function inside the attention call, only
    when the attention module is in training mode (no ``nn.Dropout`` module to patch). With eager attention
    (``attention_dropout=True``) the attention modules of ``module`` — those that call the attention
    function: they hold ``config`` and ``scaling`` — are put in training mode, not their children, so that
    dropout is sampled (per element, as with 4.x's patched module). No-op on 4.x and with SDPA."""
    if not _TRANSFORMERS_5:
        return
    for submodule in module.modules():
        config = getattr(submodule, "config", None)
        if hasattr(submodule, "scaling") and getattr(config, "_attn_implementation", None) == "eager":
            submodule.training = True


class MCPredictor:
    """Runs the deterministic pass and ``samples`` MC-dropout passes of a classifier.

    Args:
        classifier: the loaded model (kept unpatched: its deterministic pass stays deterministic).
        samples: T, the number of MC-dropout samples per record.
        strategy: ``partial`` (fast MC) or ``full``.
        mc_layers: for ``partial``, how many of the last encoder layers are stochastic
            (0 = head only, ``"all"`` = everything, ``"auto"`` = everything on CUDA, the last
            two thirds elsewhere: see :func:`auto_mc_layers`).
        samples_per_forward: how many of the T samples share one enlarged forward pass
            (memory ∝ samples_per_forward × batch); defaults to all T.
        compile: run the forward passes through ``torch.compile`` (dynamic shapes; CUDA only —
            elsewhere it is ignored with a log line). Fewer kernel launches, a compile pause per
            new shape family at the start.
        adaptive: draw the samples in rounds and stop sampling a record once its BALD and expected
            loss have settled (:mod:`worker.scoring.adaptive`); the batch shrinks to the records still
            sampling (and, with right padding, to their longest text). The dropout masks are then
            consistent (:mod:`worker.scoring.consistent`): sample t is the same sub-network for every
            record, so a record that stops after t samples has the first t samples fixed T would give
            it. None: BaaL's MC dropout, every record gets T samples.
        consistent: consistent masks with fixed T too (default: with adaptive sampling only).
        seed: the consistent masks' seed (BaaL's masks follow torch's RNG).
        dropout_rate: one rate for every dropout layer sampled (0: none, every sample is the deterministic
            pass); None: the model's own rates, or ``FALLBACK_DROPOUT_RATE`` for a model trained without
            dropout (see the module docstring).
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        samples: int = 20,
        strategy: Literal["partial", "full"] = "partial",
        mc_layers: MCLayers = "auto",
        samples_per_forward: int | None = None,
        compile: bool = False,
        adaptive: AdaptiveSampling | None = None,
        consistent: bool | None = None,
        seed: int = 0,
        dropout_rate: float | None = None,
    ):
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if strategy not in ("partial", "full"):
            raise ValueError(f"strategy must be 'partial' or 'full', got {strategy!r}")
        self.classifier = classifier
        self.samples = samples
        self.strategy = strategy
        self.samples_per_forward = samples_per_forward or samples
        # the most padded tokens one MC pass may hold (samples × rows × seq; None: no bound): a batch longer than
        # the scorer's token budget — one text past it — draws its samples fewer at a time (see _sample_chunks)
        self.sample_tokens: int | None = None
        self.mc_layers = mc_layers
        self.adaptive = adaptive
        if dropout_rate is not None and not 0 <= dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}")
        self.dropout_rate = dropout_rate
        self._right_padded = classifier.tokenizer.padding_side == "right"
        self._window = SampleWindow()
        self.consistent = adaptive is not None if consistent is None else consistent
        self.seed = seed
        self._mc_model: Callable[..., Any] | None = None
        self._suffix: Callable[..., Any] | None = None
        self._suffix_parts: _StochasticSuffix | None = None
        self._suffix_start: int | None = None
        self._stochastic: nn.Module | None = None  # the patched copy MC samples: the suffix or the whole model
        self._decoder: decoder_head.DecoderHead | None = None  # a model without dropout: its head sampled
        if strategy == "partial":
            self._build_suffix(mc_layers)
        if self.strategy == "full":
            mc_model = weight_sharing_copy(classifier.model)
            if samples > 1 and decoder_head.without_dropout(mc_model):
                head = _insert_head_dropout(mc_model, self._head_dropout_rate)
                if head is not None:
                    _note_head_dropout(classifier.version, type(mc_model).__name__, head, self._head_dropout_rate)
            self._stochastic = (self._patch(mc_model) if self.consistent else MCDropoutModule(mc_model)).eval()
            _sample_eager_attention_dropout(self._stochastic)
            self._mc_model = self._stochastic
        if dropout_rate is not None:
            self._set_sampled_rates(dropout_rate)
        elif samples > 1 and not self._samples_vary():
            layers = self._set_sampled_rates(FALLBACK_DROPOUT_RATE)
            _warn_without_dropout(classifier.version, type(classifier.model).__name__, layers,
                                  self.mc_layers if self.strategy == "partial" else "all")
        self._model: Callable[..., Any] = classifier.model
        self.compiled = compile and classifier.device.type == "cuda"
        if compile and not self.compiled:
            logger.info("scoring.compile is only used on CUDA; running eagerly on %s", classifier.device)
        if self.compiled:
            self._model = torch.compile(self._model, dynamic=True)
            if self._mc_model is not None:
                self._mc_model = torch.compile(self._mc_model, dynamic=True)
            elif self._decoder is not None:
                self._decoder.compile_trunk()
            elif self._suffix is not None:
                self._suffix = torch.compile(self._suffix, dynamic=True)

    def _build_suffix(self, mc_layers: MCLayers) -> None:
        """Fast MC's stochastic suffix; ``strategy`` becomes ``"full"`` where the model cannot be replayed layer
        by layer (not a BERT/RoBERTa-style encoder, or a replay that does not reproduce its logits).

        Raises:
            ValueError: ``mc_layers`` is not in 0..layers or "all" / "auto".
        """
        model = self.classifier.model
        name = type(model).__name__
        if not has_encoder_parts(model):
            if decoder_head.fits(model):
                self._use_decoder_head()
                if self._decoder is not None:
                    return
            else:
                _note_full_mc(self.classifier.version, f"{name} is not a BERT/RoBERTa-style encoder")
            self.strategy = "full"
            return
        parts = _EncoderParts(model)
        if mc_layers == "auto":
            mc_layers = auto_mc_layers(parts.num_layers, self.classifier.device)
            self.mc_layers = mc_layers
        num_layers = parts.num_layers if mc_layers == "all" else int(mc_layers)
        if not 0 <= num_layers <= parts.num_layers:
            raise ConfigError(f"scoring.mc_layers = {mc_layers!r}: model {self.classifier.version} has "
                              f"{parts.num_layers} encoder layers, so mc_layers must be in 0..{parts.num_layers}, "
                              f"'all' or 'auto'")
        start = None if mc_layers == "all" else parts.num_layers - num_layers
        suffix = _StochasticSuffix(parts, num_layers, from_embeddings=mc_layers == "all", patch=self._patch).eval()
        mismatch = self._replay_mismatch(suffix, start)
        if mismatch is not None:
            _note_full_mc(self.classifier.version, f"fast MC cannot replay {name} layer by layer ({mismatch})")
            self.strategy = "full"
            return
        _sample_eager_attention_dropout(suffix)
        self._suffix_parts = suffix
        self._suffix = suffix
        self._stochastic = suffix
        self._suffix_start = start

    def _use_decoder_head(self) -> None:
        """Head-only MC for a model without any dropout (see :mod:`worker.scoring.decoder_head`), when its pooling
        replays the model's logits; else it stays unset (full MC, with a dropout put before the head)."""
        model, version, rate = self.classifier.model, self.classifier.version, self._head_dropout_rate
        head = decoder_head.DecoderHead(model, rate)
        mismatch = head.replay_mismatch(model, self._probe_inputs, _REPLAY_TOLERANCE)
        if mismatch is not None:
            _note_full_mc(version, f"{type(model).__name__}'s last-token pooling cannot be replayed ({mismatch})")
            return
        self._patch(head.sampled)
        self._decoder, self._stochastic, self.mc_layers = head, head.sampled, 0
        _note_head_dropout(version, type(model).__name__, decoder_head.HEAD_NAME, rate, once_through=True)

    @property
    def _head_dropout_rate(self) -> float:
        """The rate of the dropout put before the head of a model that has none."""
        return FALLBACK_DROPOUT_RATE if self.dropout_rate is None else self.dropout_rate

    def _replay_mismatch(self, suffix: _StochasticSuffix, start: int | None) -> str | None:
        """Why the suffix, its dropouts off, does not reproduce the model's logits [2, C] on a probe batch of two
        texts of different lengths (None: it does, within float32 tolerance). Whatever a foreign architecture's
        layers raise when called with the hidden states and a mask alone is such a reason."""
        classifier = self.classifier
        inputs = self._probe_inputs
        try:
            with torch.inference_mode(), _dropouts_off(suffix):
                output = classifier.model(**inputs, output_hidden_states=start is not None)
                replayed = suffix(output.hidden_states[start] if start is not None else None, inputs)
        except (TypeError, RuntimeError, AttributeError, IndexError, KeyError, ValueError) as error:
            return f"{type(error).__name__}: {error}"
        expected = output.logits.float()
        if replayed.shape != expected.shape:
            return f"logits of shape {tuple(replayed.shape)} instead of {tuple(expected.shape)}"
        gap = (replayed.float() - expected).abs().max().item()
        scale = max(expected.abs().max().item(), 1e-6)
        if gap > _REPLAY_TOLERANCE * scale:
            return f"its logits differ by up to {gap:.3g} (of {scale:.3g})"
        return None

    @functools.cached_property
    def _probe_inputs(self) -> dict[str, torch.Tensor]:
        """Two texts of different lengths, tokenized [2, seq] on the model's device (the replay check and the
        samples check share them)."""
        classifier = self.classifier
        tokens = classifier.tokenizer(list(_PROBE_TEXTS), padding=True, truncation=True,
                                      max_length=classifier.max_length, return_tensors="pt")
        return {key: value.to(classifier.device) for key, value in tokens.items()}

    def _samples_vary(self) -> bool:
        """Whether two MC samples of the probe batch differ: some dropout is actually sampled. A model trained
        without dropout has none; neither has one whose only non-zero rate is attention dropout under SDPA,
        which MC leaves off (the module docstring)."""
        classifier = self.classifier
        inputs = self._probe_inputs
        cuda = [classifier.device] if classifier.device.type == "cuda" else []
        failed = model_failures(lambda error: ScoringError(
            f"model {classifier.version} ({type(classifier.model).__name__}) fails on a probe of two short texts: "
            f"{type(error).__name__}: {error}"))
        # torch's RNG as it was after (BaaL's masks draw from it): a probe leaves no trace in the scores
        with failed, torch.inference_mode(), torch.random.fork_rng(devices=cuda):
            hidden = None
            if self._decoder is not None:
                hidden = self._decoder.deterministic(inputs)[1]
            elif self._suffix_start is not None:
                hidden = classifier.model(**inputs, output_hidden_states=True).hidden_states[self._suffix_start]
            self._window.start, self._window.count = 0, 2
            self._window.rows = 2 * inputs["input_ids"].shape[0]
            first, second = self._mc_logits(inputs, hidden, 2).float()  # [2, C] each
        scale = max(first.abs().max().item(), 1e-6)
        return (first - second).abs().max().item() > _REPLAY_TOLERANCE * scale

    def _sampled_dropouts(self) -> list[Any]:
        """The dropout layers of the stochastic copy (the suffix, or the whole model for full MC)."""
        if self._stochastic is None:
            raise ScoringError("MC dropout without its stochastic copy of the model")
        return [layer for layer in self._stochastic.modules() if isinstance(layer, _SAMPLED_DROPOUTS)]

    def _set_sampled_rates(self, rate: float) -> int:
        """Give every sampled dropout layer ``rate`` (their masks are drawn again); returns how many there are."""
        layers = self._sampled_dropouts()
        for layer in layers:
            if isinstance(layer, ConsistentDropout):
                layer.set_rate(rate)
            else:
                layer.p = rate
        return len(layers)

    def _patch(self, module: nn.Module) -> nn.Module:
        """Make ``module``'s dropouts stochastic in place: consistent masks, or BaaL's MC dropout."""
        if self.consistent:
            return patch_consistent(module, self._window, samples=self.samples, seed=self.seed)
        return patch_module(module, inplace=True)

    def __repr__(self) -> str:
        layers = f", mc_layers={self.mc_layers!r}" if self.strategy == "partial" else ""
        if self._decoder is not None:
            layers = ", head only (the model once per batch)"
        adaptive = f", adaptive={self.adaptive}" if self.adaptive else ""
        consistent = ", consistent masks" if self.consistent else ""
        return f"MCPredictor(samples={self.samples}, strategy={self.strategy!r}{layers}{adaptive}{consistent})"

    def predict(self, inputs: dict[str, torch.Tensor], reference: torch.Tensor | None = None) -> BatchPrediction:
        """inputs: tokenizer output, tensors [batch, seq] → log-probabilities (see BatchPrediction)."""
        return self.launch(inputs, reference).result()

    @torch.inference_mode()
    def launch(self, inputs: dict[str, torch.Tensor], reference: torch.Tensor | None = None) -> PendingPrediction:
        """Queue the deterministic and MC passes of one batch (tensors [batch, seq]) without waiting.

        ``reference``: [batch] class index of each record's label under review (−1: none), used by adaptive
        sampling's stopping rule (label sets: [batch, L] 0/1 membership, a row of −1 for none). Host tensors
        in page-locked memory are copied to the GPU without blocking; the results come back the same way (see
        :class:`PendingPrediction`). Adaptive sampling waits for the device after each round (it decides which
        records go on).
        """
        device = self.classifier.device
        inputs = {key: value.to(device, non_blocking=True) for key, value in inputs.items()}
        used = None
        with autocast(device, self.classifier.amp_dtype):
            logits, hidden = self._deterministic_pass(inputs)
            if self.adaptive is None:
                mc = self._draw(inputs, hidden, 0, self.samples).permute(1, 2, 0).contiguous()  # [batch, C, T]
            else:
                rows = inputs["input_ids"].shape[0]
                if reference is None:  # nothing to judge: BALD alone decides
                    shape = (rows, len(self.classifier.labels)) if self.classifier.multi_label else (rows,)
                    reference = torch.full(shape, -1, dtype=torch.int64)
                mc, used = sequential_samples(
                    lambda active, start, count: self._draw(inputs, hidden, start, count, active),
                    rows, self.samples, self.adaptive, reference.cpu())
        deterministic = self._log_probabilities(logits.float())
        if device.type != "cuda":
            return PendingPrediction(deterministic=deterministic.cpu(), mc=mc.cpu(), samples_used=used)
        ready = torch.cuda.Event()
        pending = PendingPrediction(deterministic=deterministic.to("cpu", non_blocking=True),
                                    mc=mc.to("cpu", non_blocking=True), ready=ready, samples_used=used)
        ready.record()
        return pending

    def _deterministic_pass(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's logits [batch, C] and what the MC samples start from: the hidden states [batch, seq,
        hidden] entering fast MC's suffix, a decoder's pooled states [batch, hidden] (head-only MC), or None
        (full MC)."""
        if self._decoder is not None:
            return self._decoder.deterministic(inputs)
        need_hidden = self._suffix_start is not None
        output = self._model(**inputs, output_hidden_states=need_hidden)
        return output.logits, output.hidden_states[self._suffix_start] if need_hidden else None

    def _draw(self, inputs: dict[str, torch.Tensor], hidden: torch.Tensor | None, start: int, count: int,
              rows: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities [count, rows, C] of MC samples ``start … start + count − 1`` of the batch, or of the
        given rows only, run as one re-packed batch: those rows, cut to their longest text where padding is
        on the right."""
        if rows is not None and rows.numel() < inputs["input_ids"].shape[0]:
            index = rows.to(inputs["input_ids"].device)
            inputs = {key: value.index_select(0, index) for key, value in inputs.items()}
            hidden = hidden.index_select(0, index) if hidden is not None else None
            if self._right_padded:
                length = int(inputs["attention_mask"].sum(dim=1).max())
                inputs = {key: value[:, :length] for key, value in inputs.items()}
                hidden = hidden[:, :length] if hidden is not None and hidden.dim() == 3 else hidden
        chunks = list(self._sample_logits(inputs, hidden, start, count))
        return self._log_probabilities(torch.cat(chunks, dim=0).float())

    def _log_probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-softmax over the classes, or per-label log-sigmoid for a multi-label head; same shape."""
        return (torch.nn.functional.logsigmoid(logits) if self.classifier.multi_label
                else torch.log_softmax(logits, dim=-1))

    def _sample_logits(self, inputs: dict[str, torch.Tensor], hidden: torch.Tensor | None, start: int,
                       count: int) -> Iterator[torch.Tensor]:
        """Logits [chunk, batch, C] of samples ``start … start + count − 1``, ``samples_per_forward`` at a time
        (the sample window tells consistent dropout which masks to use)."""
        for chunk in self._sample_chunks(count, inputs["input_ids"].numel()):
            self._window.start, self._window.count = start, chunk
            self._window.rows = chunk * inputs["input_ids"].shape[0]
            yield self._mc_logits(inputs, hidden, chunk)
            start += chunk

    def _sample_chunks(self, samples: int, tokens: int = 0) -> list[int]:
        """``samples`` split into passes of ``samples_per_forward``, fewer where ``sample_tokens`` bounds a pass
        of a batch of ``tokens`` padded tokens (at least one sample a pass)."""
        per_pass = self.samples_per_forward
        if self.sample_tokens and tokens:
            per_pass = max(1, min(per_pass, self.sample_tokens // tokens))
        full, rest = divmod(samples, per_pass)
        return [per_pass] * full + ([rest] if rest else [])

    def _mc_logits(self, inputs: dict[str, torch.Tensor], hidden: torch.Tensor | None, count: int) -> torch.Tensor:
        """Logits [count, batch, C] of ``count`` MC samples run as one enlarged batch."""
        batch = inputs["input_ids"].shape[0]
        if self._decoder is not None and hidden is not None:
            logits = self._decoder.sample_logits(hidden, count)
        elif self._mc_model is not None:
            logits = self._mc_model(**_repeated(inputs, count)).logits
        elif self._suffix is None or self._suffix_parts is None:
            raise ScoringError("partial MC dropout without its stochastic suffix")
        elif self._suffix_parts.pools_once and hidden is not None:
            logits = self._suffix_parts.pooled_sample_logits(hidden, count)
        else:
            logits = self._suffix(hidden.repeat(count, 1, 1) if hidden is not None else None, _repeated(inputs, count))
        return logits.view(count, batch, -1)


_SAMPLED_DROPOUTS = (nn.Dropout, BaalDropout, ConsistentDropout)


@contextlib.contextmanager
def _dropouts_off(module: nn.Module) -> Iterator[None]:
    """Every dropout layer of ``module`` (torch's, BaaL's or consistent) at rate 0 inside the block, its rate
    restored after."""
    layers = [layer for layer in module.modules() if isinstance(layer, _SAMPLED_DROPOUTS)]
    rates = [layer.p for layer in layers]
    for layer in layers:
        layer.p = 0.0
    try:
        yield
    finally:
        for layer, rate in zip(layers, rates, strict=True):
            layer.p = rate


@functools.cache
def _note_full_mc(version: str, reason: str) -> None:
    """Once per model version and reason (a running worker builds a predictor per scoring job)."""
    logger.info("model %s: %s: MC dropout runs over the whole model (T stochastic passes; scoring.mc_layers does "
                "not apply)", version, reason)


HEAD_NAMES = (decoder_head.HEAD_NAME, "classifier")  # where transformers' sequence classifiers keep their head


def _insert_head_dropout(model: nn.Module, rate: float) -> str | None:
    """Put a dropout layer (``rate``) before ``model``'s classification head, in place (an MC copy: never the
    scoring model); the head's name, or None when the model has none of :data:`HEAD_NAMES`."""
    for name in HEAD_NAMES:
        head = getattr(model, name, None)
        if isinstance(head, nn.Module):
            setattr(model, name, nn.Sequential(nn.Dropout(rate), head))
            return name
    return None


@functools.cache
def _note_head_dropout(version: str, architecture: str, head: str, rate: float, once_through: bool = False) -> None:
    """Once per model version: a model without dropout gets MC dropout before its head (``once_through``: the
    model runs once per batch and only its head T times, :mod:`worker.scoring.decoder_head`)."""
    how = ("the model runs once per batch, its head once per sample" if once_through
           else "full MC: the whole model runs once per sample")
    logger.warning("model %s (%s) has no dropout layer: MC dropout samples one inserted before its head %r at rate "
                   "%s (%s), so that bald / entropy / margin mean something; set scoring.dropout_rate to choose the "
                   "rate", version, architecture, head, rate, how)


@functools.cache
def _warn_without_dropout(version: str, architecture: str, layers: int, sampled: object) -> None:
    """Once per model version: MC dropout found no dropout to sample and uses the fallback rate."""
    if layers:
        logger.warning("model %s (%s) has no dropout that MC dropout samples (mc_layers=%s: its %d dropout layers "
                       "give identical samples): sampling them at rate %s so that bald / entropy / margin mean "
                       "something; set scoring.dropout_rate to choose the rate", version, architecture, sampled,
                       layers, FALLBACK_DROPOUT_RATE)
    else:
        logger.warning("model %s (%s) has no dropout layer in the layers MC dropout samples (mc_layers=%s): its "
                       "MC samples are all equal, so bald is 0 and the uncertainty scores are the deterministic "
                       "pass's", version, architecture, sampled)


def _repeated(inputs: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    """Each input [n, …] stacked ``count`` times sample-major → [count · n, …]."""
    return {key: value.repeat(count, *([1] * (value.dim() - 1))) for key, value in inputs.items()}
