"""Loading a sequence classifier (Hub id or local directory) for scoring."""

from __future__ import annotations

import inspect
import json
import logging
import math
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from worker.errors import ConfigError, ScoringError, WorkerError
from worker.scoring.device import amp_dtype, pick_device

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"  # a multi-label model's per-label decision thresholds, beside its weights
MULTI_LABEL_PROBLEM = "multi_label_classification"  # transformers' config.problem_type of a sigmoid head
REMOTE_CODE_SETTING = "registry.trust_remote_code"  # the setting that lets models run the Python code they ship


def pretrained(auto_class: Any, source: str | Path, *, trust_remote_code: bool, what: str = "a sequence classifier",
               error: type[WorkerError] = ScoringError, **options: Any) -> Any:
    """``auto_class.from_pretrained(source, **options)`` (a transformers Auto class: config, tokenizer or model).

    ``trust_remote_code`` is always passed: left unset, transformers would ask on the terminal (and wait) when a
    model ships its own Python code (``auto_map`` in its config.json: custom architectures on the Hub).

    Raises:
        ``error``: the source cannot be loaded (names it and ``what`` was wanted), or it ships code and
            ``trust_remote_code`` is off (names the setting that allows it).
    """
    source = Path(source).expanduser() if str(source).startswith("~") else source
    if is_missing_directory(source):
        raise error(f"cannot load {what} from {str(source)!r}: no such directory (a model is a local directory "
                    f"or a Hub id such as 'org/name')")
    try:
        return auto_class.from_pretrained(str(source), trust_remote_code=trust_remote_code, **options)
    except (OSError, ValueError) as failure:
        refused = code_refusal(failure, trust_remote_code)
        if refused:
            raise error(f"{str(source)!r} {refused}") from failure
        raise error(f"cannot load {what} from {str(source)!r}: {failure}") from failure
    except (SafetensorError, pickle.UnpicklingError, RuntimeError) as failure:  # weights cut short or corrupted
        raise error(f"cannot load {what} from {str(source)!r}: its weights cannot be read "
                    f"({type(failure).__name__}: {str(failure).splitlines()[0][:300]})") from failure


def is_missing_directory(source: str | Path) -> bool:
    """``source`` is meant as a local path (absolute, relative with ``./`` or ``../``, or deeper than a Hub id's
    ``org/name``) and nothing is there: transformers would try it as a Hub id and answer about the id's format."""
    text = str(source)
    local = Path(text).is_absolute() or text.startswith(("./", "../")) or text.count("/") > 1 or "\\" in text
    return local and not Path(text).exists()


@contextmanager
def transformers_quiet() -> Iterator[None]:
    """transformers' warnings off while the block runs, where the worker expects what they say or reports it
    itself: a base model loaded under a new classification head (its "MISSING" load report, for every fold), the
    missing weights ``models register`` names in its own one-line error."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)


def code_refusal(failure: Exception, trust_remote_code: bool) -> str | None:
    """Why transformers refused to load a model (``failure``), when the reason is code the model ships that
    ``trust_remote_code`` does not allow: the words to tell the user (naming the setting); else None."""
    if trust_remote_code or not ("trust_remote_code" in str(failure) or "custom code" in str(failure)):
        return None
    return (f"ships its own model code (auto_map in its config.json), which the worker runs only with "
            f"{REMOTE_CODE_SETTING} = true: set it if you trust that code")


@dataclass(frozen=True)
class ModelHead:
    """What a score run needs to know of a model besides running it: its label names (index = class id), its
    version, and for a multi-label head its per-label thresholds [L] (None: single-label)."""

    labels: tuple[str, ...]
    version: str
    thresholds: tuple[float, ...] | None = None

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None


def read_head(source: str | Path, version: str, *, trust_remote_code: bool = False) -> ModelHead:
    """A model's :class:`ModelHead` from its config (and ``thresholds.json``) without loading its weights: the
    driver of the Ray engine, whose actors hold the models, reads only this.

    Raises:
        ScoringError: the config cannot be read or its labels do not cover the classes.
    """
    config = pretrained(AutoConfig, source, trust_remote_code=trust_remote_code, what="a model config")
    labels = labels_of(config)
    multi = getattr(config, "problem_type", None) == MULTI_LABEL_PROBLEM
    return ModelHead(labels, version, thresholds_of(Path(str(source)), labels) if multi else None)


@dataclass
class Classifier:
    """A model, its tokenizer, its label names (index = class id) and where it runs.

    ``multi_label``: a multi-label head (one sigmoid per label, ``problem_type`` in the model's config);
    ``thresholds`` [L] its per-label decision thresholds (``thresholds.json`` beside the weights; 0.5 each
    without one); None for a single-label model. ``temperature``: see :func:`temperature_of`.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    labels: tuple[str, ...]
    device: torch.device
    amp_dtype: torch.dtype | None
    version: str
    thresholds: tuple[float, ...] | None = None
    temperature: float = 1.0

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None

    @property
    def head(self) -> ModelHead:
        return ModelHead(self.labels, self.version, self.thresholds)

    @property
    def max_length(self) -> int:
        return context_limit(self.tokenizer, self.model)


# models whose position ids start after the padding id (RoBERTa's scheme): max_position_embeddings = 514 reads 512
OFFSET_POSITIONS = frozenset({"roberta", "xlm-roberta", "camembert", "mpnet", "data2vec-text", "longformer"})
# models with a table of absolute positions: a text longer than it cannot run (rotary or relative ones can)
ABSOLUTE_POSITIONS = OFFSET_POSITIONS | {"bert", "distilbert", "electra", "albert", "mobilebert", "ernie"}


def position_limit(config: Any) -> int | None:
    """The most tokens the model has absolute positions for (RoBERTa-style offset deducted); None when its positions
    are rotary or relative (ModernBERT, DeBERTa-v3, decoders: ``max_position_embeddings`` is no hard limit)."""
    model_type = getattr(config, "model_type", None)
    absolute = model_type in ABSOLUTE_POSITIONS or (model_type in ("deberta", "deberta-v2")
                                                     and getattr(config, "position_biased_input", False))
    positions = getattr(config, "max_position_embeddings", None)
    if not absolute or not positions:
        return None
    return int(positions) - (int(getattr(config, "pad_token_id", None) or 0) + 1 if model_type in OFFSET_POSITIONS
                             else 0)


def context_limit(tokenizer: Any, model: Any) -> int:
    """The most tokens a text of the model may have when it is scored: its tokenizer's ``model_max_length`` (what
    it was trained at; ignored when unset: transformers' huge placeholder) and its position embeddings."""
    positions = position_limit(model.config) or getattr(model.config, "max_position_embeddings", None)
    limits = [tokenizer.model_max_length, positions]
    return min(int(limit) for limit in limits if limit and limit < 1_000_000)


def load_classifier(
    source: str | Path,
    *,
    device: str = "auto",
    attention_dropout: bool = False,
    version: str | None = None,
    mixed_precision: bool = True,
    trust_remote_code: bool = False,
) -> Classifier:
    """Load any transformers sequence-classification model and its tokenizer.

    Args:
        source: a Hub model id or a local directory.
        device: ``auto`` (cuda → mps → cpu), ``cuda``, ``cuda:N``, ``mps`` or ``cpu``.
        attention_dropout: make attention-probability dropout stochastic under MC dropout.
            With SDPA attention (the transformers default where an architecture has it) attention
            dropout only runs in training mode, so MC dropout leaves it off; True loads the model with
            eager attention, whose dropout is sampled like the others (slower). Architectures without
            SDPA (DeBERTa, MPNet) always run eager attention; their attention dropout is a module,
            sampled either way.
        version: the model version written as the suggestions' agent; defaults to the source name.
        mixed_precision: on CUDA, run in bf16 (or fp16 where bf16 is unsupported).
        trust_remote_code: run the Python code a model ships (``registry.trust_remote_code``, see :func:`pretrained`).

    Raises:
        ScoringError: the source cannot be loaded as a sequence classifier (see :func:`pretrained`).
    """
    target = pick_device(device)
    # transformers picks SDPA where the architecture has it, eager where not (DeBERTa, MPNet …)
    attention: dict[str, Any] = {"attn_implementation": "eager"} if attention_dropout else {}
    tokenizer = pretrained(AutoTokenizer, source, trust_remote_code=trust_remote_code)
    model = pretrained(AutoModelForSequenceClassification, source, trust_remote_code=trust_remote_code, **attention)
    ensure_padding(tokenizer, model, source)
    model.to(target).eval()
    labels = labels_of(model.config)
    thresholds = (thresholds_of(Path(str(source)), labels)
                  if getattr(model.config, "problem_type", None) == MULTI_LABEL_PROBLEM else None)
    logger.info("loaded %s (%s, %d labels%s, %s attention) on %s", source, type(model).__name__, len(labels),
                ", multi-label" if thresholds else "", model.config._attn_implementation, target)
    return Classifier(
        model=model,
        tokenizer=tokenizer,
        labels=labels,
        device=target,
        amp_dtype=amp_dtype(target) if mixed_precision else None,
        version=version or Path(str(source)).name,
        thresholds=thresholds,
        temperature=temperature_of(Path(str(source))),
    )


def ensure_padding(tokenizer: Any, model: Any, source: object) -> None:
    """Batches are padded: a tokenizer without a padding token (GPT-2, Llama … classifiers) pads with its
    end-of-sequence token, and the model's config learns that id (sequence classifiers with a decoder read the
    last token before the padding). Changes nothing when both are set. And the tokenizer returns only inputs the
    model's forward takes (:func:`_take_only_model_inputs`).

    Raises:
        ScoringError: no padding and no end-of-sequence token to pad with (names the model).
    """
    _take_only_model_inputs(tokenizer, model, source)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ScoringError(f"the tokenizer of {source!r} has neither a padding nor an end-of-sequence token: "
                               f"set pad_token in its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
        logger.info("the tokenizer of %s has no padding token: padding with its end-of-sequence token %r", source,
                    tokenizer.eos_token)
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _take_only_model_inputs(tokenizer: Any, model: Any, source: object) -> None:
    """A tokenizer saved from another checkpoint (a BERT tokenizer beside a DistilBERT or MPNet model) returns
    ``token_type_ids``, which those models' forward does not take (transformers 4.x raises; 5.x ignores them):
    the tokenizer's ``model_input_names`` keep only what the forward takes. Nothing changes for a forward that
    takes ``**kwargs``."""
    parameters = inspect.signature(model.forward).parameters
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    taken = [name for name in tokenizer.model_input_names if name in parameters]
    if taken != list(tokenizer.model_input_names):
        logger.info("the tokenizer of %s returns %s, which %s does not take: left out", source,
                    sorted(set(tokenizer.model_input_names) - set(taken)), type(model).__name__)
        tokenizer.model_input_names = taken


def thresholds_of(directory: Path, labels: tuple[str, ...]) -> tuple[float, ...]:
    """A multi-label model's per-label thresholds [L] from ``thresholds.json`` (0.5 where it names none).

    Raises:
        ScoringError: the file is not a JSON object of numbers in (0, 1).
    """
    path = directory / THRESHOLDS_FILE
    if not path.exists():
        return tuple(0.5 for _ in labels)
    try:
        stored = json.loads(path.read_text())
        values = tuple(float(stored.get(label, 0.5)) for label in labels)
    except (ValueError, AttributeError, TypeError) as error:
        raise ScoringError(f"{path}: not a JSON object of per-label thresholds ({error})") from error
    if not all(0 < value < 1 for value in values):
        raise ScoringError(f"{path}: thresholds must lie strictly between 0 and 1, got {dict(zip(labels, values))}")
    return values


TEMPERATURE_FILE = "temperature.json"


def temperature_of(directory: Path) -> float:
    """The temperature τ a model's reported class probabilities are read at: p ∝ p_MC^(1/τ) (see
    :func:`worker.calibration.tempered`), from ``temperature.json`` beside the weights — written by training when
    τ, fitted on the validation records as the worker scores them, made them better calibrated. 1.0 (the model's
    own probabilities) without the file, and for a Hub id — and for a τ the worker's training fitted at the lower
    bound of its search (:data:`~worker.calibration.TEMPERATURE_BOUNDS`: records with no wrong answer; logged).

    Raises:
        ScoringError: the file does not hold a positive finite ``temperature``.
    """
    path = directory / TEMPERATURE_FILE
    if not path.is_file():
        return 1.0
    try:
        stored = json.loads(path.read_text())
        value = float(stored["temperature"])
    except (ValueError, KeyError, TypeError) as error:
        raise ScoringError(f"{path}: not a JSON object with a number 'temperature' ({error!r})") from error
    if not math.isfinite(value) or value <= 0:
        raise ScoringError(f"{path}: temperature must be a positive number, got {value}")
    if "ece_after_crossfit" in stored and _at_the_lower_bound(value):  # the worker's own fit (a team's file is theirs)
        if path in _BOUND_TEMPERATURES_SAID:
            return 1.0
        _BOUND_TEMPERATURES_SAID.add(path)
        logger.warning("%s: τ = %.3f is the lower bound of the temperature search: it was fitted on records the model "
                       "answered all right (an earlier version fitted such a τ), and would read every confidence "
                       "near 1 — read at 1 instead; the next training fits another (or delete the file)", path, value)
        return 1.0
    return value


_BOUND_TEMPERATURES_SAID: set[Path] = set()  # said once a process: every job loads the model again


def _at_the_lower_bound(temperature: float) -> bool:
    """Whether a fitted τ is the sharpest the search allows: the fit's records held no wrong answer. (The upper
    bound is a model that knows nothing: read near uniform, it is calibrated.)"""
    from worker.calibration import TEMPERATURE_BOUNDS

    return math.isclose(temperature, TEMPERATURE_BOUNDS[0], rel_tol=1e-3)


def labels_of(config: PretrainedConfig) -> tuple[str, ...]:
    """Label names in class-id order, from a model config's ``id2label``."""
    id2label = {int(index): str(name) for index, name in (config.id2label or {}).items()}
    num_labels = int(config.num_labels or 0)
    if sorted(id2label) != list(range(num_labels)):
        raise ScoringError(f"model config id2label {id2label} does not cover classes 0..{num_labels - 1}")
    return tuple(id2label[index] for index in range(num_labels))


def check_head_fits(head: ModelHead, labels: Sequence[str], *, question: str, multi_label: bool) -> None:
    """Raise when the model cannot score the bound question: other labels, or the other kind (one label a record
    vs label sets).

    Raises:
        ScoringError: the label sets differ (both listed).
        ConfigError: the kinds differ (names the question and what to do).
    """
    check_label_set(head.labels, labels)
    if head.multi_label != multi_label:
        kinds = ("multi-label", "single-label")
        raise ConfigError(f"model {head.version} is {kinds[not head.multi_label]} but question {question!r} is "
                          f"{kinds[not multi_label]}: train a model on this dataset (`argilla-worker train`) or "
                          f"register one of that kind")


def check_label_set(model_labels: tuple[str, ...], dataset_labels: Sequence[str]) -> None:
    """Raise ScoringError listing both sets when the model and the dataset disagree on labels."""
    if set(model_labels) != set(dataset_labels):
        raise ScoringError(
            f"the model's labels {sorted(model_labels)} differ from the dataset question's labels "
            f"{sorted(dataset_labels)}; retrain the model or fix the dataset's label question"
        )
