"""Loading a sequence classifier (Hub id or local directory) for scoring."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from worker.errors import ScoringError
from worker.scoring.device import amp_dtype, pick_device

logger = logging.getLogger(__name__)


@dataclass
class Classifier:
    """A model, its tokenizer, its label names (index = class id) and where it runs."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: tuple[str, ...]
    device: torch.device
    amp_dtype: torch.dtype | None
    version: str

    @property
    def max_length(self) -> int:
        limits = [self.tokenizer.model_max_length, getattr(self.model.config, "max_position_embeddings", None)]
        return min(int(limit) for limit in limits if limit and limit < 1_000_000)


def load_classifier(
    source: str | Path,
    *,
    device: str = "auto",
    attention_dropout: bool = False,
    version: str | None = None,
    mixed_precision: bool = True,
) -> Classifier:
    """Load any transformers sequence-classification model and its tokenizer.

    Args:
        source: a Hub model id or a local directory.
        device: ``auto`` (cuda → mps → cpu), ``cuda``, ``cuda:N``, ``mps`` or ``cpu``.
        attention_dropout: make attention-probability dropout stochastic under MC dropout.
            With SDPA attention (the transformers default) attention dropout only runs in
            training mode, so MC dropout leaves it off; True loads the model with eager
            attention, whose dropout module is patched like the others (slower).
        version: the model version written as the suggestions' agent; defaults to the source name.
        mixed_precision: on CUDA, run in bf16 (or fp16 where bf16 is unsupported).
    """
    target = pick_device(device)
    attn = "eager" if attention_dropout else "sdpa"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        model = AutoModelForSequenceClassification.from_pretrained(str(source), attn_implementation=attn)
    except (OSError, ValueError) as error:
        raise ScoringError(f"cannot load a sequence classifier from {source!r}: {error}") from error
    model.to(target).eval()
    labels = labels_of(model)
    logger.info("loaded %s (%d labels, %s attention) on %s", source, len(labels), attn, target)
    return Classifier(
        model=model,
        tokenizer=tokenizer,
        labels=labels,
        device=target,
        amp_dtype=amp_dtype(target) if mixed_precision else None,
        version=version or Path(str(source)).name,
    )


def labels_of(model: PreTrainedModel) -> tuple[str, ...]:
    """Label names in class-id order, from ``config.id2label``."""
    id2label = {int(index): str(name) for index, name in (model.config.id2label or {}).items()}
    if sorted(id2label) != list(range(model.config.num_labels)):
        raise ScoringError(f"model config id2label {id2label} does not cover classes 0..{model.config.num_labels - 1}")
    return tuple(id2label[index] for index in range(model.config.num_labels))


def check_label_set(model_labels: tuple[str, ...], dataset_labels: tuple[str, ...] | list[str]) -> None:
    """Raise ScoringError listing both sets when the model and the dataset disagree on labels."""
    if set(model_labels) != set(dataset_labels):
        raise ScoringError(
            f"the model's labels {sorted(model_labels)} differ from the dataset question's labels "
            f"{sorted(dataset_labels)}; retrain the model or fix the dataset's label question"
        )
