"""Fine-tuning a sequence classifier with a validation split, early stopping and the best checkpoint kept.

A small training set gets more epochs (at least ``training.min_steps`` optimizer steps), and a validation split
below ``training.select_min_validation`` records is reported but picks no epoch: every epoch runs, the last is
kept (five records pick an epoch by chance, usually an early, under-trained one).

The loop: weighted cross-entropy (original-label examples count less than annotated ones; a label *set*
per example — multi-label — trains one sigmoid per label with weighted binary cross-entropy), AdamW with
linear warm-up/decay, one validation pass per epoch; the state with the best monitored metric is
kept in memory and reloaded at the end (patience epochs without improvement stop training early).
On CUDA it runs under autocast (bf16, or fp16 with a gradient scaler where bf16 is unsupported).

The texts are tokenized once, before the first epoch; each step only pads its batch (numpy), on a
background thread one batch ahead, into page-locked memory that is copied to the GPU without
blocking. On CUDA the optimiser is the fused AdamW and ``compile`` runs the model through
``torch.compile``; ``compile = "reduce-overhead"`` adds CUDA graphs (a step of small batches is bound by its hundreds
of kernel launches, not by arithmetic), with batches padded to a multiple of ``CUDA_GRAPH_PAD_MULTIPLE`` tokens so
that a few shapes, each recorded once, cover a training.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from worker.config import Monitor, TrainingSettings
from worker.constants import (
    AUTO_HEAD_LEARNING_RATE,
    AUTO_HEAD_MIN_LABELS,
    AUTO_HEAD_SKEW,
    AUTO_HEAD_SKEW_MIN_LABELS,
    CUDA_GRAPH_PAD_MULTIPLE,
    PROBABILITY_FLOOR,
    TRUNCATED_WARN_SHARE,
)
from worker.errors import ConfigError, DataError, Interrupted
from worker.records import label_index
from worker.scoring.batching import pad_encodings, prefetch, round_up, tokenize_texts
from worker.scoring.device import amp_dtype, autocast, model_failures, pick_device
from worker.scoring.mc import HEAD_NAMES
from worker.scoring.model import (
    THRESHOLDS_FILE,
    code_refusal,
    context_limit,
    ensure_padding,
    position_limit,
    pretrained,
    transformers_quiet,
)
from worker.scoring.multilabel import DEFAULT_THRESHOLD, binary_cross_entropy, tune_thresholds
from worker.training.data import Example, checked_label, text_pairs
from worker.training.evaluate import classification_metrics, label_set_metrics
from worker.training.register import question_labels

logger = logging.getLogger(__name__)

TRAINING_RECORD = "training.json"  # in a trained model's directory: its schedule, history and settings


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    validation_loss: float
    accuracy: float  # multi-label: the share of validation records whose whole label set is predicted
    macro_f1: float
    seconds: float
    micro_f1: float = float("nan")

    def monitored(self, monitor: Monitor) -> float:
        """The monitored value, oriented so that larger is better."""
        return -self.validation_loss if monitor == "loss" else getattr(self, monitor)


@dataclass
class TrainingResult:
    output_dir: Path
    history: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    # [N_train] area under the margin (Pleiss et al. 2020), in the order of the training examples: the mean
    # over the epochs run of (logit of the example's label − the largest other logit) when its batch was
    # trained on. Low or negative: the model had to fight the label (a likely label error).
    margins: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # multi-label: each label's decision threshold, tuned on validation (saved as thresholds.json); else None
    thresholds: dict[str, float] | None = None


def check_model_source(source: str, setting: str = "training.base_model", *, trust_remote_code: bool = False) -> None:
    """Check that ``source`` (a directory or a Hub id) has a model config transformers can read, before a long job
    starts (as transformers reads it: a config that ships code needs ``trust_remote_code``, one of a type
    transformers knows does not).

    Raises:
        ConfigError: names the setting, the value and why (no such directory, no model in it, a config that cannot
            be read, not on the Hub, code it ships that ``registry.trust_remote_code`` does not allow).
    """
    path = Path(source).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise ConfigError(f"{setting} = {source!r}: the directory holds no transformers model (no config.json)")
    try:
        AutoConfig.from_pretrained(str(path) if path.is_dir() else source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        detail = str(error).strip().splitlines()[0][:200]
        refused = code_refusal(error, trust_remote_code)
        if refused:
            why = f"it {refused}"
        elif path.is_dir():
            why = f"its config.json cannot be read ({detail})"
        elif path.is_absolute() or source.startswith((".", "~")) or (path.parent != Path(".") and path.parent.is_dir()):
            why = "no such directory"
        else:
            why = f"not a local directory, and not loadable from the Hub ({detail})"
        raise ConfigError(f"{setting} = {source!r}: {why}") from None


def train_classifier(
    start_model: str | Path,
    train: Sequence[Example],
    validation: Sequence[Example],
    labels: Sequence[str],
    output_dir: Path,
    settings: TrainingSettings,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    trust_remote_code: bool = False,
    stop: threading.Event | None = None,
) -> TrainingResult:
    """Fine-tune ``start_model`` on ``train`` for :func:`planned_epochs`, select the best epoch on ``validation``
    (stopping early after ``training.patience`` epochs without improvement), save to ``output_dir``.

    With an empty ``validation``, or one smaller than ``training.select_min_validation``, every epoch runs and the
    last state is kept.

    Examples whose label is a tuple (a label set) train a multi-label head (one sigmoid per label); their
    validation picks each label's decision threshold (:func:`tune_thresholds`, saved as ``thresholds.json``).

    ``trust_remote_code``: run the Python code ``start_model`` ships (``registry.trust_remote_code``).
    ``stop`` set (a SIGTERM): the training ends after its current optimizer step, nothing saved — within a step of
    the request, not after an epoch that takes an hour at 10^5 examples on a CPU.

    Raises:
        DataError: no training examples, an example's label is not one of ``labels``, or single labels and
            label sets are mixed.
        ConfigError: ``start_model`` cannot be loaded (or ships code ``trust_remote_code`` does not allow), or
            fails inside torch on the training texts.
        Interrupted: ``stop`` was set.
    """
    _check_example_labels(labels, [*train, *validation])
    if not train:
        raise DataError("no training examples")
    multi_label = is_multi_label([*train, *validation])
    load = functools.partial(pretrained, trust_remote_code=trust_remote_code, what="a model to train from",
                             error=ConfigError)
    labels = in_head_order(load(AutoConfig, start_model), labels)
    label_ids = label_index(labels)
    _seed_everything(settings.seed)
    device = pick_device(settings.device)
    tokenizer = load(AutoTokenizer, start_model)
    if settings.truncation_side:  # saved with the model (init_kwargs: every tokenizer class writes those), so
        tokenizer.truncation_side = settings.truncation_side  # scoring cuts the same end
        tokenizer.init_kwargs["truncation_side"] = settings.truncation_side
    head: dict[str, Any] = {"problem_type": "multi_label_classification"} if multi_label else {}
    with transformers_quiet():  # a new head is the point of fine-tuning: its load report is expected
        model, loading = load(AutoModelForSequenceClassification, start_model, num_labels=len(labels),
                              id2label=dict(enumerate(labels)), label2id=label_ids, ignore_mismatched_sizes=True,
                              output_loading_info=True, **head)
    model.to(device)
    ensure_padding(tokenizer, model, start_model)
    settings = _within_positions(settings, position_limit(model.config), start_model)
    settings = settings.model_copy(update={"head_learning_rate": head_learning_rate(
        settings, new_head=has_new_head(loading), labels=len(labels), multi_label=multi_label,
        rarest=None if multi_label else rarest_label(train))})
    if settings.gradient_checkpointing:
        _checkpoint_activations(model)
    epochs, select = planned_epochs(len(train), settings), len(validation) >= max(1, settings.select_min_validation)
    if validation and not select:
        logger.info("%d validation records (< training.select_min_validation = %d): all %d epochs run and the last "
                    "is kept; the validation figures are reported, not used to pick an epoch", len(validation),
                    settings.select_min_validation, epochs)
    loop = _Loop(model, tokenizer, label_ids, device, settings, steps=epochs * _batches(len(train), settings),
                 multi_label=multi_label)
    train_set, validation_set = loop.prepare(train), loop.prepare(validation)
    _say_truncated(train_set, settings, context_limit(tokenizer, model))
    result = TrainingResult(output_dir)
    best_score, best_state, stale = -np.inf, None, 0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        with model_failures(lambda error: ConfigError(
                f"the model training starts from ({start_model}, {type(model).__name__}) fails on the training "
                f"texts: {type(error).__name__}: {error}")):
            train_loss = loop.train_epoch(train_set, seed=settings.seed + epoch, stop=stop,
                                          epoch=f"epoch {epoch} of {epochs}")
            validation_loss, accuracy, macro_f1, micro_f1 = (loop.evaluate(validation_set) if validation
                                                             else (np.nan, np.nan, np.nan, np.nan))
        outcome = EpochResult(epoch, train_loss, validation_loss, accuracy, macro_f1,
                              time.perf_counter() - epoch_started, micro_f1)
        result.history.append(outcome)
        if validation:
            logger.info("epoch %d/%d: train loss %.4f, validation loss %.4f, accuracy %.3f, macro-F1 %.3f (%.0f s)",
                        epoch, epochs, train_loss, validation_loss, accuracy, macro_f1, outcome.seconds)
        else:
            logger.info("epoch %d/%d: train loss %.4f, no validation split (%.0f s)", epoch, epochs,
                        train_loss, outcome.seconds)
        if on_epoch:
            on_epoch(outcome)
        if not select:
            continue
        if outcome.monitored(settings.monitor) > best_score:
            best_score, result.best_epoch, stale = outcome.monitored(settings.monitor), epoch, 0
            best_state = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                logger.info("early stopping: %s did not improve for %d epochs (best epoch %d)",
                            settings.monitor, stale, result.best_epoch)
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.history)
    result.seconds = time.perf_counter() - started
    result.margins = loop.area_under_margin(len(result.history))
    if multi_label:
        tuned = (tune_thresholds(loop.probabilities(validation_set), validation_set.targets.astype(bool))
                 if validation else np.full(len(labels), DEFAULT_THRESHOLD))
        result.thresholds = {label: float(t) for label, t in zip(labels, tuned, strict=True)}
    _save(model, tokenizer, output_dir, result, start_model, settings, len(train))
    return result


def _checkpoint_activations(model) -> None:
    """``training.gradient_checkpointing``: the model recomputes its layers' activations in the backward pass
    (transformers' own checkpointing, non-reentrant: dropout masks replayed); said when the model cannot."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        logger.warning("training.gradient_checkpointing: %s does not support it; training keeps every activation",
                       type(model).__name__)
        return
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers ≥ 5.x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    logger.info("training.gradient_checkpointing: %s recomputes its layers' activations in the backward pass",
                type(model).__name__)


def is_multi_label(examples: Sequence[Example]) -> bool:
    """Whether the examples carry label sets (tuples) rather than single labels.

    Raises:
        DataError: both kinds are present (names one of each).
    """
    sets = [e for e in examples if isinstance(e.label, tuple)]
    if sets and len(sets) != len(examples):
        single = next(e for e in examples if not isinstance(e.label, tuple))
        raise DataError(f"examples mix label sets (record {sets[0].id!r}) and single labels (record {single.id!r})")
    return bool(sets)


def label_set_margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B] the worst-fitted label's signed logit, min over labels of (2y − 1)·logit; logits, targets [B, L]."""
    return ((2 * targets - 1) * logits).min(dim=1).values


def weighted_binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                                  weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ wᵢ·BCEᵢ / Σ wᵢ and the per-example BCE summed over labels [B]; logits, targets [B, L], weights [B]."""
    per_label = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    per_example = per_label.sum(dim=1)
    return (per_example * weights).sum() / weights.sum(), per_example


def label_margins(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B] logit of each example's label minus the largest other logit; logits [B, C], targets [B]."""
    assigned = logits.gather(1, targets.unsqueeze(1)).squeeze(1)  # [B]
    others = logits.scatter(1, targets.unsqueeze(1), float("-inf"))  # [B, C]: the label's logit masked
    return assigned - others.max(dim=1).values


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ wᵢ·CEᵢ / Σ wᵢ and the per-example CE [B]; logits [B, C], targets [B], weights [B].

    Weights are relative within a batch: an original-label example with weight 0.3 pulls the
    gradient 0.3 times as hard as an annotated one beside it.
    """
    per_example = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    return (per_example * weights).sum() / weights.sum(), per_example


def _within_positions(settings: TrainingSettings, limit: int | None, start_model: str | Path) -> TrainingSettings:
    """``settings`` with ``max_length`` at most the model's ``limit`` (tokens it has absolute positions for, see
    :func:`position_limit`): a longer ``training.max_length`` failed on the first long text, deep in the model."""
    if limit is None or settings.max_length <= limit:
        return settings
    logger.warning("training.max_length = %d, but %s reads at most %d tokens: training (and scoring) at %d",
                   settings.max_length, start_model, limit, limit)
    return settings.model_copy(update={"max_length": limit})


def in_head_order(config: Any, labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` [K] in the order of the start model's head (``config.id2label``) when that head already classifies
    exactly them, letter case aside (:func:`~worker.training.register.question_labels`: ``POSITIVE`` is
    ``positive``) — the team's fine-tuned classifier, the current model: its rows are kept, so each must keep its
    label (in the question's order they were read the other way round, every prediction inverted). Otherwise
    ``labels`` as given: a base model, generic ``LABEL_i`` names, other labels get a new head."""
    id2label = getattr(config, "id2label", None) or {}
    own = tuple(question_labels([str(id2label[index]) for index in sorted(id2label)], labels, {}, {}))
    if own != tuple(labels) and len(own) == len(labels) and set(own) == set(labels):
        logger.info("the start model already classifies these labels: its head is kept in its order %s", list(own))
        return own
    return tuple(labels)


def _check_example_labels(labels: Sequence[str], examples: Sequence[Example]) -> None:
    """Raises DataError naming the first example whose label (or a label of its set) is not one of ``labels``."""
    known = set(labels)
    for example in examples:
        checked_label(example.id, example.label, known)


def trained_head_learning_rate(model_dir: Path) -> float | None:
    """The head's learning rate a model in ``model_dir`` trained at (``"auto"`` resolved; ``"same"``: the encoder's),
    from its :data:`TRAINING_RECORD`; None for a model the worker did not train or an unreadable record."""
    try:
        settings = json.loads((Path(model_dir) / TRAINING_RECORD).read_text()).get("settings") or {}
    except (OSError, ValueError, AttributeError):
        return None
    rate = settings.get("head_learning_rate")
    rate = settings.get("learning_rate") if rate == "same" else rate
    return float(rate) if isinstance(rate, (int, float)) else None


def planned_epochs(train_count: int, settings: TrainingSettings) -> int:
    """``training.epochs``, raised so that ``train_count`` examples take at least ``training.min_steps`` optimizer
    steps: 20 examples in batches of 16 are 2 steps an epoch, and 5 epochs (10 steps) leave a fresh head
    barely trained (BBC News, 20 reviewed articles: held-out accuracy 0.32 with 5 epochs and the best one picked
    on the validation records, 0.65 with 100 steps and the last kept; benchmarks/first_model.py, 3 seeds)."""
    batches = max(1, _batches(train_count, settings))
    epochs = max(settings.epochs, -(-settings.min_steps // batches))
    if epochs > settings.epochs:
        logger.info("%d training examples are %d batch%s an epoch: %d epochs (training.min_steps = %d)", train_count,
                    batches, "" if batches == 1 else "es", epochs, settings.min_steps)
    return epochs


def _batches(count: int, settings: TrainingSettings) -> int:
    return (count + settings.batch_size - 1) // settings.batch_size


def has_new_head(loading_info: dict[str, Any]) -> bool:
    """Whether the classification head starts from random weights: transformers' ``output_loading_info`` names a
    head parameter (under one of HEAD_NAMES) as missing from the start model or of another shape there."""
    keys = {*loading_info.get("missing_keys", ()), *(entry[0] for entry in loading_info.get("mismatched_keys", ()))}
    return any(key.split(".", 1)[0] in HEAD_NAMES for key in keys)


@dataclass(frozen=True)
class RarestLabel:
    """The training label with the fewest examples, and its count against a uniform share (1.0: as many as the
    others on average; 0.2: a fifth of that)."""

    label: str
    examples: int
    of_uniform: float


def rarest_label(examples: Sequence[Example]) -> RarestLabel | None:
    """The rarest of the labels ``examples`` (single-label) carry, or None when there are none. O(N)."""
    counts = Counter(str(example.label) for example in examples)
    if not counts:
        return None
    label, count = min(sorted(counts.items()), key=lambda item: item[1])
    return RarestLabel(label, count, count * len(counts) / sum(counts.values()))


def head_learning_rate(settings: TrainingSettings, *, new_head: bool, labels: int, multi_label: bool,
                       rarest: RarestLabel | None = None) -> float | str:
    """``training.head_learning_rate`` with ``"auto"`` resolved for this training: AUTO_HEAD_LEARNING_RATE for a new
    label-set head, for a new single-label head of at least AUTO_HEAD_MIN_LABELS labels, or of
    AUTO_HEAD_SKEW_MIN_LABELS or more whose ``rarest`` label holds under AUTO_HEAD_SKEW of an even share; ``"same"``
    (training.learning_rate) otherwise — a head the start model already trained keeps the encoder's rate."""
    if settings.head_learning_rate != "auto":
        return settings.head_learning_rate
    if not new_head:
        return "same"
    if multi_label:
        logger.info("a new head of %d labels (label sets) trains at %g (training.head_learning_rate = \"auto\"; the "
                    "rest at %g)", labels, AUTO_HEAD_LEARNING_RATE, settings.learning_rate)
        return AUTO_HEAD_LEARNING_RATE
    if labels >= AUTO_HEAD_MIN_LABELS:
        logger.info("a new head of %d labels trains at %g (training.head_learning_rate = \"auto\"; the rest at %g)",
                    labels, AUTO_HEAD_LEARNING_RATE, settings.learning_rate)
        return AUTO_HEAD_LEARNING_RATE
    if rarest is not None and rarest.of_uniform < AUTO_HEAD_SKEW and labels >= AUTO_HEAD_SKEW_MIN_LABELS:
        logger.info("a new head of %d skewed labels trains at %g (training.head_learning_rate = \"auto\"; the rest "
                    "at %g): label %r has %d training examples, %.0f%% of an even share", labels,
                    AUTO_HEAD_LEARNING_RATE, settings.learning_rate, rarest.label, rarest.examples,
                    100 * rarest.of_uniform)
        return AUTO_HEAD_LEARNING_RATE
    return "same"


def parameter_groups(model: torch.nn.Module, settings: TrainingSettings) -> list[dict[str, Any]]:
    """AdamW's parameter groups: the classification head (the model's ``classifier`` or ``score`` module) at
    ``training.head_learning_rate`` (a number: ``"auto"`` is resolved by :func:`head_learning_rate` first), the
    rest at ``training.learning_rate``; one group when the head trains at the same rate or the model keeps its head
    under another name (a warning says so)."""
    rest = {"params": [parameter for parameter in model.parameters() if parameter.requires_grad]}
    if not isinstance(settings.head_learning_rate, float):
        return [rest]
    head = next((module for name in HEAD_NAMES if isinstance(module := getattr(model, name, None), torch.nn.Module)),
                None)
    if head is None:
        logger.warning("training.head_learning_rate: %s keeps its classification head under none of the names %s; "
                       "every parameter trains at training.learning_rate", type(model).__name__, list(HEAD_NAMES))
        return [rest]
    own = {id(parameter) for parameter in head.parameters()}
    return [{"params": [parameter for parameter in rest["params"] if id(parameter) not in own]},
            {"params": [parameter for parameter in head.parameters() if parameter.requires_grad],
             "lr": settings.head_learning_rate}]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _compiled(model: torch.nn.Module, compile: bool | str) -> Callable:
    """``model`` through ``torch.compile`` with dynamic shapes (one compilation for every batch shape);
    ``compile = "reduce-overhead"`` adds CUDA graphs, one recorded per batch shape."""
    return torch.compile(model, dynamic=True, mode="reduce-overhead" if compile == "reduce-overhead" else None)


def _training_amp_dtype(device: torch.device, settings: TrainingSettings) -> torch.dtype | None:
    """The autocast dtype of a training run: none off CUDA or with mixed precision off."""
    if device.type != "cuda" or not settings.mixed_precision:
        return None
    if settings.amp_dtype == "float16":
        return torch.float16
    if settings.amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("training.amp_dtype = 'bfloat16' but this GPU does not support bf16; use 'float16' or 'auto'")
    return amp_dtype(device)


def _say_truncated(data: _Prepared, settings: TrainingSettings, model_limit: int) -> None:
    """Log how many training texts ``training.max_length`` cuts (a warning from ``TRUNCATED_WARN_SHARE`` of them),
    and whether the model could read more of them."""
    if not data.truncated:
        return
    kept = "last" if settings.truncation_side == "left" else "first"
    advice = (f"; the model reads up to {model_limit}: a larger training.max_length reads more of each text (time "
              f"and memory grow about in proportion)" if settings.max_length < model_limit else "")
    level = logging.WARNING if data.truncated >= TRUNCATED_WARN_SHARE * len(data) else logging.INFO
    logger.log(level, "%d of %d training texts are longer than training.max_length = %d tokens: the model learns "
               "from their %s %d tokens only, and scores them so (training.truncation_side)%s", data.truncated,
               len(data), settings.max_length, kept, settings.max_length, advice)


@dataclass
class _Prepared:
    """Examples tokenized once: per-text encodings (unpadded), class ids [N] (multi-label: multi-hot [N, L]),
    loss weights [N]."""

    encodings: list[dict]
    targets: np.ndarray
    weights: np.ndarray
    truncated: int = 0  # texts longer than max_length: their first (or last) max_length tokens are kept

    def __len__(self) -> int:
        return len(self.encodings)


class _Loop:
    """One model's optimiser, schedule and mixed-precision state."""

    def __init__(self, model, tokenizer, label_ids: dict[str, int], device: torch.device,
                 settings: TrainingSettings, *, steps: int, multi_label: bool = False):
        self.model, self.tokenizer, self.label_ids, self.device, self.settings = (
            model, tokenizer, label_ids, device, settings)
        self.multi_label = multi_label
        self.loss_function = weighted_binary_cross_entropy if multi_label else weighted_cross_entropy
        # rows per forward / backward pass (None: the whole batch); halved on a CUDA out-of-memory
        self.micro_batch: int | None = settings.micro_batch_size
        on_cuda = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(parameter_groups(model, settings), lr=settings.learning_rate,
                                           fused=on_cuda or None)
        self.schedule = get_linear_schedule_with_warmup(self.optimizer, int(settings.warmup_fraction * steps), steps)
        self.amp_dtype = _training_amp_dtype(device, settings)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.pin_memory = on_cuda
        self.forward = _compiled(model, settings.compile) if settings.compile and on_cuda else model
        # CUDA graphs replay whole batches of a few padded lengths; a step cut into micro-batches runs eagerly
        self.cuda_graphs = on_cuda and settings.compile == "reduce-overhead"
        self.pad_multiple = CUDA_GRAPH_PAD_MULTIPLE if self.cuda_graphs else 1
        self.margin_sum: torch.Tensor | None = None  # [N_train] summed over epochs, on the device

    def prepare(self, examples: Sequence[Example]) -> _Prepared:
        """Tokenize every text once (truncated to ``max_length``, not padded). O(N) time and memory."""
        if not examples:
            return _Prepared([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        encodings, truncated = tokenize_texts(self.tokenizer, [e.text for e in examples], self.settings.max_length,
                                              text_pairs(examples))
        return _Prepared(encodings, self._targets(examples), np.array([e.weight for e in examples], dtype=np.float32),
                         truncated)

    def _targets(self, examples: Sequence[Example]) -> np.ndarray:
        """Class ids [N], or multi-hot label sets [N, L] (float32) for a multi-label head."""
        if not self.multi_label:
            return np.array([self.label_ids[e.label] for e in examples], dtype=np.int64)  # type: ignore[index]
        targets = np.zeros((len(examples), len(self.label_ids)), dtype=np.float32)
        for row, example in enumerate(examples):
            targets[row, [self.label_ids[label] for label in example.label]] = 1.0
        return targets

    def _batches(self, data: _Prepared, order: Sequence[int], size: int):
        """Padded host batches (inputs [B, L], targets [B], weights [B]) of ``order``, one ahead on a thread."""
        def make():
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                inputs = pad_encodings([data.encodings[row] for row in rows], self.tokenizer,
                                       pin_memory=self.pin_memory, multiple_of=self.pad_multiple)
                targets, weights = torch.from_numpy(data.targets[rows]), torch.from_numpy(data.weights[rows])
                positions = torch.as_tensor(rows, dtype=torch.int64)
                if self.pin_memory:
                    targets, weights, positions = targets.pin_memory(), weights.pin_memory(), positions.pin_memory()
                yield inputs, targets, weights, positions
        return prefetch(make(), depth=2)

    def _to_device(self, batch) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs, targets, weights, positions = batch
        return ({key: value.to(self.device, non_blocking=True) for key, value in inputs.items()},
                targets.to(self.device, non_blocking=True), weights.to(self.device, non_blocking=True),
                positions.to(self.device, non_blocking=True))

    def train_epoch(self, data: _Prepared, *, seed: int, stop: threading.Event | None = None,
                    epoch: str = "an epoch") -> float:
        """One pass over ``data`` in a seeded order; returns the mean weighted training loss.

        Raises:
            Interrupted: ``stop`` was set (checked after each optimizer step; ``epoch`` names this one).
        """
        self.model.train()
        order = random.Random(seed).sample(range(len(data)), len(data))
        total = torch.zeros((), device=self.device)  # summed on the device: no host sync per step
        if self.margin_sum is None or len(self.margin_sum) != len(data):
            self.margin_sum = torch.zeros(len(data), device=self.device)
        steps = _batches(len(data), self.settings)
        for step, batch in enumerate(self._batches(data, order, self.settings.batch_size), 1):
            inputs, targets, weights, positions = self._to_device(batch)
            if self.cuda_graphs:  # the previous step's graph outputs are no longer read
                torch.compiler.cudagraph_mark_step_begin()
            per_example, margins = self._gradients(inputs, targets, weights)
            self.margin_sum.index_add_(0, positions, margins)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.schedule.step()
            self.optimizer.zero_grad(set_to_none=True)
            total += (per_example * weights).sum()
            if stop is not None and stop.is_set():
                raise Interrupted(f"training stopped on request at step {step} of {steps} of {epoch}")
        return float(total) / float(data.weights.sum())

    def _gradients(self, inputs: dict, targets: torch.Tensor,
                   weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's gradients, accumulated over micro-batches of at most ``self.micro_batch`` rows; a CUDA
        out-of-memory halves the micro-batch (for the rest of the training, said once) and starts the batch again.
        Returns the per-example loss [B] and label margins [B], detached.

        Raises:
            ConfigError: one example does not fit the GPU's memory.
        """
        while True:
            try:
                return self._accumulate(inputs, targets, weights)
            except torch.cuda.OutOfMemoryError:
                self.optimizer.zero_grad(set_to_none=True)
                rows = min(self.micro_batch or len(targets), len(targets))
                self._halve_micro_batch(rows, f"training: one example of {inputs['input_ids'].shape[1]} tokens does "
                                              f"not fit the GPU's free memory; lower training.max_length, or set "
                                              f"training.gradient_checkpointing = true")
                logger.warning("training: a batch of %d examples ran out of GPU memory; from now on its gradients "
                               "are accumulated over micro-batches of %d (the same optimizer steps; "
                               "training.micro_batch_size sets it)", rows, self.micro_batch)

    def _halve_micro_batch(self, rows: int, too_big: str) -> None:
        """After a CUDA out-of-memory on ``rows`` rows: at most half of them a pass from now on.

        Raises:
            ConfigError: ``too_big``, when one row was already too many.
        """
        torch.cuda.empty_cache()
        if rows == 1:
            raise ConfigError(too_big) from None
        self.micro_batch = (rows + 1) // 2

    def _accumulate(self, inputs: dict, targets: torch.Tensor,
                    weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward over micro-batches of the batch (inputs [B, L], targets [B] or [B, L], weights [B]):
        each micro-batch's loss is scaled by its share of the batch's weight, so the summed gradients are the whole
        batch's. A micro-batch of right-padded rows is cut to its own longest row."""
        size = len(targets)
        step = min(self.micro_batch or size, size)
        total_weight = weights.sum()
        margin = label_set_margins if self.multi_label else label_margins
        # CUDA graphs and gradient accumulation do not mix (pytorch/pytorch#169545): micro-batches run eagerly
        forward = self.model if step < size and self.cuda_graphs else self.forward
        losses, margins = [], []
        for start in range(0, size, step):
            rows = slice(start, start + step)
            part = {key: value[rows] for key, value in inputs.items()}
            if step < size and self.tokenizer.padding_side == "right" and part.get("attention_mask") is not None:
                longest = round_up(int(part["attention_mask"].sum(dim=1).max()), self.pad_multiple)
                part = {key: value[:, :longest] if value.dim() == 2 else value for key, value in part.items()}
            with autocast(self.device, self.amp_dtype):
                logits = forward(**part).logits
            loss, per_example = self.loss_function(logits, targets[rows], weights[rows])
            self.scaler.scale(loss * (weights[rows].sum() / total_weight)).backward()
            losses.append(per_example.detach())
            margins.append(margin(logits.detach().float(), targets[rows]))
        return torch.cat(losses), torch.cat(margins)

    def area_under_margin(self, epochs: int) -> np.ndarray:
        """[N_train] the margins summed by :meth:`train_epoch`, averaged over ``epochs``."""
        if self.margin_sum is None or epochs == 0:
            return np.zeros(0)
        return (self.margin_sum / epochs).cpu().numpy()

    @torch.inference_mode()
    def probabilities(self, data: _Prepared) -> np.ndarray:
        """[N, C] softmax (multi-label: per-label sigmoid) probabilities of the deterministic model, in batches
        of twice the training's (micro-)batch; a CUDA out-of-memory halves the micro-batch and starts again."""
        self.model.eval()
        while True:
            try:
                return self._probabilities(data, 2 * (self.micro_batch or self.settings.batch_size))
            except torch.cuda.OutOfMemoryError:
                self._halve_micro_batch(self.micro_batch or self.settings.batch_size, "training: validating one "
                                        "example does not fit the GPU's free memory; lower training.max_length")

    def _probabilities(self, data: _Prepared, size: int) -> np.ndarray:
        probs = []
        for batch in self._batches(data, range(len(data)), size):
            inputs, _, _, _ = self._to_device(batch)
            with autocast(self.device, self.amp_dtype):
                logits = self.forward(**inputs).logits.float()
            probs.append((torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)).cpu().numpy())
        return np.concatenate(probs)

    def evaluate(self, data: _Prepared) -> tuple[float, float, float, float]:
        """(mean loss, accuracy, macro-F1, micro-F1) of the deterministic model on ``data``; multi-label: the
        loss is Σ_l BCE, accuracy the exact-match share, F1 at threshold 0.5."""
        prob_matrix = self.probabilities(data)  # [N, C]
        if self.multi_label:
            targets = data.targets.astype(bool)  # [N, L]
            loss = float(binary_cross_entropy(prob_matrix, targets.astype(np.float64)).sum(axis=1).mean())
            return (loss, *label_set_metrics(prob_matrix >= DEFAULT_THRESHOLD, targets))
        target_vector = data.targets  # [N]
        target_probabilities = prob_matrix[np.arange(len(target_vector)), target_vector]  # [N]
        loss = float(-np.log(np.clip(target_probabilities, PROBABILITY_FLOOR, 1)).mean())
        accuracy, macro_f1 = classification_metrics(prob_matrix, target_vector, len(self.label_ids))
        return loss, accuracy, macro_f1, accuracy


def _save(model, tokenizer, output_dir: Path, result: TrainingResult, start_model, settings: TrainingSettings,
          train_count: int) -> None:
    model.eval()
    if hasattr(model, "activation_checkpointing_disable"):  # the saved model scores like any other
        if model.is_activation_checkpointing:
            model.activation_checkpointing_disable()
    elif getattr(model, "is_gradient_checkpointing", False):
        model.gradient_checkpointing_disable()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.model_max_length = settings.max_length  # score with the context the model was trained on
    tokenizer.save_pretrained(output_dir)
    if result.thresholds is not None:
        (output_dir / THRESHOLDS_FILE).write_text(json.dumps(result.thresholds, indent=2))
    (output_dir / TRAINING_RECORD).write_text(json.dumps({
        "start_model": str(start_model),
        "train_records": train_count,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": round(result.seconds, 1),
        "history": [_finite(epoch.__dict__) for epoch in result.history],
        "settings": settings.model_dump(),
    }, indent=2))
    logger.info("trained on %d examples in %.0f s; best epoch %d saved to %s", train_count, result.seconds,
                result.best_epoch, output_dir)


def _finite(values: dict) -> dict:
    """NaN (no validation set) → None, so the file stays valid JSON."""
    return {key: None if isinstance(value, float) and not np.isfinite(value) else value
            for key, value in values.items()}
