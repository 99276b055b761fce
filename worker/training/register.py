"""Registering a classifier the user already has (a directory or a Hub id) as a model version."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from worker.binding import LabelReading
from worker.errors import DataError, ScoringError
from worker.files import write_json_atomic
from worker.records import label_index
from worker.registry import ModelRegistry, ModelVersion
from worker.training.label_order import has_default_names

logger = logging.getLogger(__name__)

# (model, tokenizer, the model's label names, a multi-label model's thresholds [outputs] or None)
#   -> {model label: question label}: ``--label-map auto``
LabelMapReader = Callable[[Any, Any, list[str], tuple[float, ...] | None], Mapping[str, str]]


def parse_label_map(text: str | None) -> dict[str, str]:
    """``"POS=positive,NEG=negative"`` → {model label: dataset label}.

    Raises:
        DataError: an item is not ``MODEL=DATASET``.
    """
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        model_label, sep, dataset_label = item.partition("=")
        if not sep or not model_label.strip() or not dataset_label.strip():
            raise DataError(f"--label-map item {item!r} is not THEIR_LABEL=QUESTION_LABEL (e.g. POS=positive)")
        mapping[model_label.strip()] = dataset_label.strip()
    return mapping


def guessed_label_map(model_labels: Sequence[str], mapped: Sequence[str], dataset_labels: Sequence[str]
                      ) -> dict[str, str]:
    """A ``--label-map`` for the model's labels that are not the question's (``mapped``: each model label as read so
    far), when each is the start of exactly one question label left, or that label its start, letter case aside:
    ``NEG`` → ``negative``, ``pos`` → ``positive``. Empty when any model label has no such single match."""
    left = [label for label in dataset_labels if label not in mapped]
    guess: dict[str, str] = {}
    for model_label, reading in zip(model_labels, mapped, strict=True):
        if reading in dataset_labels:
            continue
        name = model_label.lower()
        matches = [label for label in left if label.lower().startswith(name) or name.startswith(label.lower())]
        if len(matches) != 1 or matches[0] in guess.values():
            return {}
        guess[model_label] = matches[0]
    return guess


def register_model(source: str, registry: ModelRegistry, dataset_labels: Sequence[str], *,
                   label_map: Mapping[str, str] | None = None, trust_remote_code: bool = False,
                   multi_label: bool = False, label_titles: Mapping[str, str] | None = None,
                   label_map_reader: LabelMapReader | None = None) -> ModelVersion:
    """Copy a fine-tuned sequence classifier into the registry as the next version.

    ``label_map_reader`` (``--label-map auto``) reads ``label_map`` from the loaded model instead: (model,
    tokenizer, its label names, a multi-label model's thresholds by output from its ``thresholds.json`` or None) →
    {model label: question label} (see :mod:`worker.training.label_order`); not called when the model's own names
    already read as the question's labels (those are the model's word).

    Its label names (``config.id2label``, read by :func:`question_labels`; ``label_titles``: what the UI shows
    for each of the question's labels, value → title) must be exactly the question's labels, and its kind
    that of the question (``multi_label``: label sets). A config that declares no ``problem_type`` (many multi-label
    checkpoints on the Hub) is read as the question's kind, and the registered copy says so.
    The version is promoted when there is no current model yet; otherwise it waits for
    ``models promote``. The same model registered again (the same weights, labels and tokenizer: :func:`model_digest`)
    is the version it is already, not another.

    A model that ships its own code (``auto_map``) is loaded only with ``trust_remote_code``
    (``registry.trust_remote_code``); the registered copy keeps that code beside its weights.

    Raises:
        ScoringError: the source cannot be loaded as a sequence classifier (or ships code that is not trusted), or
            some of its weights are not in the checkpoint (a base model: its classification head would start at
            random).
        DataError: its labels differ from the question's (both listed), or ``label_map`` names unknown labels, or its
            ``problem_type`` is the other kind (one label vs label sets).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.scoring.model import MULTI_LABEL_PROBLEM, pretrained, transformers_quiet

    tokenizer = pretrained(AutoTokenizer, source, trust_remote_code=trust_remote_code)
    with transformers_quiet():  # its load report: _check_trained says what is missing, in one line
        model, loading = pretrained(AutoModelForSequenceClassification, source, trust_remote_code=trust_remote_code,
                                    output_loading_info=True)
    _check_trained(source, loading)
    _check_kind(source, getattr(model.config, "problem_type", None), multi_label)
    model_labels = [str(model.config.id2label[index]) for index in range(model.config.num_labels)]
    _check_label_count(source, model_labels, dataset_labels)
    if label_map_reader is not None:
        if sorted(question_labels(model_labels, dataset_labels, {}, label_titles or {})) == sorted(dataset_labels):
            logger.info("the model names its labels as the question's: --label-map auto reads nothing")
        else:
            label_map = label_map_reader(model, tokenizer, model_labels, _own_thresholds(source, model_labels,
                                                                                         multi_label))
    mapping = dict(label_map or {})
    unknown = sorted(set(mapping) - set(model_labels))
    if unknown:
        raise DataError(f"--label-map names {unknown}, which are not the model's labels {model_labels}")
    mapped = question_labels(model_labels, dataset_labels, mapping, label_titles or {})
    if sorted(mapped) != sorted(dataset_labels):
        guess = guessed_label_map(model_labels, mapped, dataset_labels)
        hint = (f" (by their spelling: --label-map {','.join(f'{k}={v}' for k, v in {**mapping, **guess}.items())} — "
                f"check it on a few of the model's answers)" if guess else "")
        if not mapping and has_default_names(model_labels):
            hint = (f" — they are transformers' defaults (it was trained without label names): --label-map auto reads "
                    f"which is which from the records that carry a label (reviewed, or the label they came with), or "
                    f"name them in the order its training used, --label-map {model_labels[0]}=LABEL,"
                    f"{model_labels[1]}=LABEL,…")
        raise DataError(f"the model's labels {mapped} (config.id2label{' after --label-map' if mapping else ''}) "
                        f"differ from the dataset question's labels {sorted(dataset_labels)}; "
                        f"map them with --label-map MODEL_LABEL=DATASET_LABEL,…{hint}")
    read_as = {label: value for label, value in zip(model_labels, mapped) if label != value and label not in mapping}
    if read_as:
        logger.info("the model's labels read as the question's: %s (--label-map maps them otherwise)",
                    ", ".join(f"{label} → {value}" for label, value in read_as.items()))
        mapping.update(read_as)
    model.config.id2label = dict(enumerate(mapped))
    model.config.label2id = label_index(mapped)
    if multi_label:
        model.config.problem_type = MULTI_LABEL_PROBLEM  # one sigmoid per label when it is scored
    with registry.staging() as staged:
        model.save_pretrained(staged, safe_serialization=True)
        tokenizer.save_pretrained(staged)
        _carry_decision_files(Path(source), staged, model_labels, mapped, multi_label)
        digest = model_digest(staged)
        same = next((version for version in registry.versions() if version.metrics.get("model_digest") == digest),
                    None)
        if same is not None:  # a deploy script run twice: no second version of the same model
            shutil.rmtree(staged, ignore_errors=True)
            logger.info("%s is registered already as %s (the same weights, labels and tokenizer): nothing registered",
                        source, same.version)
            return same
        entry = registry.add(staged, {"registered_from": str(source), "labels": mapped, "label_map": mapping,
                                      "parent": None, "model_digest": digest})
    if registry.current() is None:
        entry = registry.promote(entry.version, reason=f"registered from {source} (first model)")
    else:
        registry.prune()
    logger.info("registered %s as %s (%s)", source, entry.version, entry.status)
    return entry


def model_digest(directory: Path) -> str:
    """SHA-256 of a saved model directory's files (weights, config with its labels, tokenizer, thresholds and
    temperature), by name: equal for the same model registered twice. Reads every byte once: O(model size)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(item for item in directory.rglob("*") if item.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _check_label_count(source: str, model_labels: Sequence[str], dataset_labels: Sequence[str]) -> None:
    """Refuse a model for another number of labels: no map makes it answer the question (fine-tune it instead)."""
    if len(model_labels) != len(dataset_labels):
        raise DataError(f"the model predicts {len(model_labels)} labels {list(model_labels)}, the dataset question "
                        f"has {len(dataset_labels)} {sorted(dataset_labels)}: no --label-map makes it answer this "
                        f"question; fine-tune it for these labels instead — training.base_model = {str(source)!r}, "
                        f"then `argilla-worker train` (its encoder is kept, the classification head is new)")


SETFIT_FILES = ("model_head.pkl", "config_setfit.json")  # what a saved SetFit model holds beside its encoder


def _check_trained(source: str, loading: Mapping[str, Iterable[str]]) -> None:
    """Refuse a checkpoint that lacks weights the classifier needs: transformers starts those at random with a
    warning, and a base encoder (no classification head) would be registered as a model whose suggestions are noise.

    Raises:
        ScoringError: names the source, the missing weights, and what to do with a base model instead.
    """
    missing = sorted(loading.get("missing_keys") or ())
    if missing and any((Path(source) / name).is_file() for name in SETFIT_FILES):
        raise ScoringError(
            f"{source!r} is a SetFit model: its classifier is a scikit-learn head ({SETFIT_FILES[0]}) on a sentence "
            f"encoder, not a transformers classification head, so the worker cannot run it (nor MC dropout through "
            f"it). Train the worker's classifier from its fine-tuned encoder: set training.base_model = {source!r} "
            f"and run `argilla-worker train`")
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ScoringError(
            f"{source!r} is not a trained sequence classifier: its checkpoint has no {shown} (transformers would "
            f"start them at random, and its suggestions would be noise). A base model is trained from, not "
            f"registered: set training.base_model = {source!r} and run `argilla-worker train` (or `score --oof K` "
            f"to rank label errors without annotations)")


def _check_kind(source: str, problem_type: str | None, multi_label: bool) -> None:
    """Refuse a model whose config declares the other kind of question than the dataset's.

    Raises:
        DataError: names the source, its ``problem_type`` and the question's kind.
    """
    from worker.scoring.model import MULTI_LABEL_PROBLEM

    if problem_type is None or (problem_type == MULTI_LABEL_PROBLEM) == multi_label:
        return
    model_kind = "label sets (one sigmoid per label)" if problem_type == MULTI_LABEL_PROBLEM else "one label a record"
    question_kind = "label sets (a multi-label question)" if multi_label else "one label (a single-label question)"
    raise DataError(f"{source!r} predicts {model_kind} (config.problem_type = {problem_type!r}) but the dataset's "
                    f"question takes {question_kind}: register a model of that kind, or train one (`argilla-worker "
                    f"train`)")


def question_labels(model_labels: Sequence[str], dataset_labels: Sequence[str], label_map: Mapping[str, str],
                    label_titles: Mapping[str, str]) -> list[str]:
    """Each of the model's labels as the question's label it stands for: ``label_map``'s (``--label-map``), else
    as :class:`~worker.binding.LabelReading` reads it — itself when it is one, the label whose title it is (what the
    UI shows: ``Cars 🚗`` → ``autos``), the one label or title it equals but for letter case (``POSITIVE`` →
    ``positive``). A label none of these reads stays as it is (the caller then lists both sets)."""
    reading = LabelReading(dataset_labels, label_titles)
    return [label_map[label] if label in label_map else reading.read(label) or label for label in model_labels]


def _own_thresholds(source: str, model_labels: Sequence[str], multi_label: bool) -> tuple[float, ...] | None:
    """A local multi-label model's thresholds by output (its ``thresholds.json``, keyed by its own label names);
    None for a single-label model, a Hub id, or a directory without the file."""
    from worker.scoring.model import THRESHOLDS_FILE, thresholds_of

    if multi_label and (Path(source) / THRESHOLDS_FILE).is_file():
        return thresholds_of(Path(source), tuple(model_labels))
    return None


def _carry_decision_files(source: Path, staged: Path, model_labels: Sequence[str], mapped: Sequence[str],
                          multi_label: bool) -> None:
    """Keep what a local model directory says beside its weights about reading its outputs: a multi-label model's
    per-label thresholds (``thresholds.json``, its keys renamed as the question's labels) and the temperature its
    scores are read at (``temperature.json``). Without them its label sets would be cut at 0.5.

    Raises:
        ScoringError: the thresholds file is not a JSON object of numbers in (0, 1).
    """
    from worker.scoring.model import TEMPERATURE_FILE, THRESHOLDS_FILE, thresholds_of

    if multi_label and (source / THRESHOLDS_FILE).is_file():
        thresholds = thresholds_of(source, tuple(model_labels))
        write_json_atomic(staged / THRESHOLDS_FILE, dict(zip(mapped, thresholds, strict=True)))
    if (source / TEMPERATURE_FILE).is_file():
        shutil.copyfile(source / TEMPERATURE_FILE, staged / TEMPERATURE_FILE)
