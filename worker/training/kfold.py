"""Out-of-fold scores: every labelled record's loss comes from a model that never trained on it.

A model scores its own training labels as easy (it has fitted them, errors included), so an
in-sample loss ranking understates label errors. With K folds, K models are trained, each on K−1
folds, and each scores only the fold it held out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.engine import RecordScore
from worker.scoring.mc import MCLayers
from worker.training.data import Example, stratified_folds
from worker.training.trainer import TrainingResult, TrainingSettings, train_classifier

logger = logging.getLogger(__name__)


@dataclass
class OutOfFoldResult:
    """``scores`` by record id; ``fold_of`` which fold held each record out; ``trained_on[f]`` the ids model f saw;
    ``margins`` each record's area under the margin, averaged over the K − 1 models that trained on it."""

    scores: dict[str, RecordScore]
    fold_of: dict[str, int]
    trained_on: list[set[str]] = field(default_factory=list)
    version: str = "oof"
    margins: dict[str, float] = field(default_factory=dict)


def out_of_fold_scores(
    examples: Sequence[Example],
    labels: Sequence[str],
    start_model: str | Path,
    settings: TrainingSettings,
    work_dir: Path,
    *,
    k: int,
    version: str = "oof",
    samples: int = 20,
    mc_layers: MCLayers = "auto",
    dropout_rate: float | None = None,
) -> OutOfFoldResult:
    """Every example's out-of-fold score, collected (memory O(N) scores; see :func:`stream_out_of_fold_scores`)."""
    folds = stratified_folds(examples, k, seed=settings.seed)
    result = OutOfFoldResult(scores={}, fold_of={e.id: f for e, f in zip(examples, folds, strict=True)},
                             version=version)
    margins = MarginAverage()

    def trained(train: list[Example], training: TrainingResult) -> None:
        result.trained_on.append({e.id for e in train})
        margins.add(train, training)

    for score in stream_out_of_fold_scores(examples, labels, start_model, settings, work_dir, k=k, version=version,
                                           samples=samples, mc_layers=mc_layers, dropout_rate=dropout_rate, folds=folds,
                                           on_trained=trained):
        result.scores[score.record_id] = score
    result.margins = margins.means()
    return result


class MarginAverage:
    """Each example's area under the margin, averaged over the models that trained on it (O(N) floats)."""

    def __init__(self):
        self._sum: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def add(self, train: Sequence[Example], training: TrainingResult) -> None:
        """One model's margins [len(train)], in the order of ``train``."""
        for example, margin in zip(train, training.margins.tolist(), strict=True):
            self._sum[example.id] = self._sum.get(example.id, 0.0) + margin
            self._count[example.id] = self._count.get(example.id, 0) + 1

    def means(self) -> dict[str, float]:
        return {example_id: total / self._count[example_id] for example_id, total in self._sum.items()}


def stream_out_of_fold_scores(
    examples: Sequence[Example],
    labels: Sequence[str],
    start_model: str | Path,
    settings: TrainingSettings,
    work_dir: Path,
    *,
    k: int,
    version: str = "oof",
    samples: int = 20,
    mc_layers: MCLayers = "auto",
    dropout_rate: float | None = None,
    folds: Sequence[int] | None = None,
    on_trained: Callable[[list[Example], TrainingResult], None] | None = None,
    trust_remote_code: bool = False,
) -> Iterator[RecordScore]:
    """Train K models (fixed ``settings.epochs``, no early stopping), one after the other, and yield each
    held-out fold's MC-dropout scores (``samples`` = T) as they are computed (a consumer can push fold f's
    scores before model f+1 trains; memory O(N) examples + O(batch) scores).

    The reference label (set) of a record is its example label (consensus or original), so ``loss`` /
    ``expected_loss`` measure disagreement with that label by a model that did not see it. ``folds`` [N]
    (default: :func:`stratified_folds`) assigns each example its held-out fold; ``on_trained`` is called
    with each model's training examples and its :class:`TrainingResult` (which carries their margins);
    ``trust_remote_code``: ``start_model`` may run the code it ships (``registry.trust_remote_code``).
    """
    folds = folds if folds is not None else stratified_folds(examples, k, seed=settings.seed)
    for fold in range(k):
        train = [e for e, f in zip(examples, folds, strict=True) if f != fold]
        held_out = [e for e, f in zip(examples, folds, strict=True) if f == fold]
        logger.info("fold %d/%d: training on %d, scoring %d", fold + 1, k, len(train), len(held_out))
        model_dir = work_dir / f"fold-{fold}"
        training = train_classifier(start_model, train, [], labels, model_dir, settings,
                                    trust_remote_code=trust_remote_code)
        if on_trained is not None:
            on_trained(train, training)
        classifier = load_classifier(model_dir, device=settings.device, version=f"{version}-fold{fold}",
                                     trust_remote_code=trust_remote_code)
        scorer = Scorer(classifier, samples=samples, mc_layers=mc_layers, seed=settings.seed, dropout_rate=dropout_rate)
        yield from scorer.score(ScoringInput(e.id, e.text, e.label, e.text_pair) for e in held_out)
