"""Out-of-fold scores: every labelled record's loss comes from a model that never trained on it.

A model scores its own training labels as easy (it has fitted them, errors included), so an
in-sample loss ranking understates label errors. With K folds, K models are trained, each on K−1
folds, and each scores only the fold it held out.

On a large dataset the fold models train on a bounded sample (``training.max_original``, as a training does) and
the records outside it, which no fold model trains on, wait on disk (:class:`LabelledRecords`) for the model of the
fold their id hashes to: every labelled record is still scored by a model that never saw it, in memory O(sample).

The K trainings are most of a run's time, so a run that stops (a crash, a lost server, Ctrl-C) keeps the fold models
it completed (:func:`fold_models_dir`): a rerun on the same records and settings trains only the others. The scores
pushed before the stop are computed again and found unchanged (same models, same seed), not pushed twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from worker.iterables import batched
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.engine import RecordScore
from worker.scoring.mc import MCLayers
from worker.training.data import Example, fingerprint, stratified_folds
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
    held_out: Callable[[int], HeldOut] | None = None,
    scorer_options: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
) -> Iterator[RecordScore]:
    """Train K models (fixed ``settings.epochs``, no early stopping), one after the other, and yield each
    held-out fold's MC-dropout scores (``samples`` = T) as they are computed (a consumer can push fold f's
    scores before model f+1 trains; memory O(len(examples)) training examples + O(batch) scores).

    The reference label (set) of a record is its example label (consensus or original), so ``loss`` /
    ``expected_loss`` measure disagreement with that label by a model that did not see it. ``folds`` [N]
    (default: :func:`stratified_folds`) assigns each example its held-out fold; ``on_trained`` is called
    with each model's training examples and its :class:`TrainingResult` (which carries their margins);
    ``trust_remote_code``: ``start_model`` may run the code it ships (``registry.trust_remote_code``);
    ``held_out(f)``: the examples model f scores (default: those of ``examples`` in fold f) — with a sample of the
    records as ``examples``, fold f of the sample and of the records outside it (:meth:`LabelledRecords.fold`);
    ``scorer_options``: more :class:`Scorer` options (batch sizes, plugin scorers … as a score run has them);
    ``stop`` set: the fold model in training stops after its current step (:class:`~worker.errors.Interrupted`).
    A fold model a stopped run completed in ``work_dir`` is used again, not retrained (:func:`trained_fold`).
    """
    folds = folds if folds is not None else stratified_folds(examples, k, seed=settings.seed)
    for fold in range(k):
        train = [e for e, f in zip(examples, folds, strict=True) if f != fold]
        scored = (held_out(fold) if held_out is not None
                  else [e for e, f in zip(examples, folds, strict=True) if f == fold])
        logger.info("fold %d/%d: training on %d, scoring %d", fold + 1, k, len(train), len(scored))
        model_dir = work_dir / f"fold-{fold}"
        training = trained_fold(start_model, train, labels, model_dir, settings, trust_remote_code=trust_remote_code,
                                stop=stop)
        if on_trained is not None:
            on_trained(train, training)
        classifier = load_classifier(model_dir, device=settings.device, version=f"{version}-fold{fold}",
                                     trust_remote_code=trust_remote_code)
        scorer = Scorer(classifier, samples=samples, mc_layers=mc_layers, seed=settings.seed, dropout_rate=dropout_rate,
                        **(scorer_options or {}))
        yield from scorer.score(ScoringInput(e.id, e.text, e.label, e.text_pair) for e in scored)


class HeldOut(Sized, Iterable[Example], Protocol):
    """The examples one fold model scores: counted, then read once."""


def hashed_fold(record_id: str, k: int, seed: int) -> int:
    """The fold (0..k-1) of a record no fold model trains on: a seeded hash of its id (the same id, seed and K give
    the same fold on every run), independent of the sample's own hash."""
    digest = hashlib.blake2b(f"{seed}\0fold\0{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % k


class LabelledRecords:
    """Every labelled example of an out-of-fold run — id, server id, text(s), label — in an SQLite file, each with
    its held-out fold: :func:`hashed_fold` when added, the sample's stratified fold once :meth:`assign` names it.
    Memory O(batch) whatever the dataset's size; disk O(N) texts; :meth:`fold` reads one fold in insertion order."""

    def __init__(self, path: Path, *, k: int, seed: int, batch_size: int = 1000) -> None:
        self.k, self.seed, self.batch_size = k, seed, batch_size
        self._db = sqlite3.connect(path)
        self._db.executescript("""
            CREATE TABLE examples (id TEXT PRIMARY KEY, server_id TEXT, text TEXT, text_pair TEXT, label TEXT,
                                   fold INTEGER);""")
        self._pending: list[tuple] = []

    def add(self, example: Example, server_id: str) -> None:
        label = json.dumps(list(example.label) if isinstance(example.label, tuple) else example.label)
        self._pending.append((example.id, server_id, example.text, example.text_pair, label,
                              hashed_fold(example.id, self.k, self.seed)))
        if len(self._pending) >= self.batch_size:
            self._flush()

    def assign(self, folds: Mapping[str, int]) -> None:
        """Give the records the fold models train on (a sample of the records: id → fold) their folds; then index."""
        self._flush()
        self._db.executemany("UPDATE examples SET fold = ? WHERE id = ?",
                             ((fold, record_id) for record_id, fold in folds.items()))
        self._db.execute("CREATE INDEX IF NOT EXISTS by_fold ON examples (fold)")
        self._db.commit()

    def fold(self, fold: int) -> HeldOut:
        """The examples held out in ``fold`` (after :meth:`assign`)."""
        return _StoredFold(self, fold)

    def server_ids(self, record_ids: Iterable[str]) -> dict[str, str]:
        """Record id → server id, for the ids that were added."""
        found: dict[str, str] = {}
        for chunk in batched(record_ids, 500):
            marks = ",".join("?" * len(chunk))
            found.update(self._db.execute(f"SELECT id, server_id FROM examples WHERE id IN ({marks})", chunk))
        return found

    def close(self) -> None:
        self._db.close()

    def _flush(self) -> None:
        if self._pending:
            self._db.executemany("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?)", self._pending)
            self._pending.clear()

    def _count(self, fold: int) -> int:
        count, = self._db.execute("SELECT COUNT(*) FROM examples WHERE fold = ?", (fold,)).fetchone()
        return int(count)

    def _read(self, fold: int) -> Iterator[Example]:
        cursor = self._db.execute("SELECT id, text, text_pair, label FROM examples WHERE fold = ? ORDER BY rowid",
                                  (fold,))
        while rows := cursor.fetchmany(self.batch_size):
            for record_id, text, text_pair, label in rows:
                value = json.loads(label)
                yield Example(record_id, text, tuple(value) if isinstance(value, list) else value,
                              text_pair=text_pair)


@dataclass(frozen=True)
class _StoredFold:
    store: LabelledRecords
    fold: int

    def __len__(self) -> int:
        return self.store._count(self.fold)

    def __iter__(self) -> Iterator[Example]:
        return self.store._read(self.fold)


MARGINS_FILE = "margins.npy"  # written last: a fold model directory holding it is complete


def trained_fold(start_model: str | Path, train: Sequence[Example], labels: Sequence[str], model_dir: Path,
                 settings: TrainingSettings, *, trust_remote_code: bool = False,
                 stop: threading.Event | None = None) -> TrainingResult:
    """Fold model ``model_dir`` trained on ``train``, or the one a stopped run completed there (its margins [len(train)]
    saved beside it, last); a directory a run left half-written is trained again from scratch."""
    margins_file = model_dir / MARGINS_FILE
    if margins_file.exists():
        margins = np.load(margins_file)
        if margins.shape == (len(train),):
            logger.info("%s: trained by a stopped run on the same examples and settings; used again", model_dir.name)
            return TrainingResult(model_dir, margins=margins)
    shutil.rmtree(model_dir, ignore_errors=True)
    training = train_classifier(start_model, train, [], labels, model_dir, settings, stop=stop,
                                trust_remote_code=trust_remote_code)
    partial = model_dir / f"{MARGINS_FILE}.partial"
    with partial.open("wb") as file:
        np.save(file, training.margins)
    partial.replace(margins_file)
    return training


def completed_folds(work_dir: Path, k: int) -> int:
    """How many of an out-of-fold run's K fold models in ``work_dir`` are complete (a rerun uses them again)."""
    return sum((work_dir / f"fold-{fold}" / MARGINS_FILE).exists() for fold in range(k))


def fold_models_dir(root: Path, version: str, sample: Sequence[Example], folds: Sequence[int],
                    settings: TrainingSettings, start_model: str | Path) -> Path:
    """Where an out-of-fold run's K models train: ``root``/<version>-<hash of the sample, its folds, the start model
    and the training settings>, kept when the run stops so that a rerun on the same records resumes after the last
    fold model it completed. Any other run's directory under ``root`` is removed (disk: one run's K models)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (fingerprint(sample, []), json.dumps(list(folds)), str(start_model), settings.model_dump_json()):
        digest.update(part.encode())
    path = root / f"{version}-{digest.hexdigest()}"
    if root.is_dir():
        for other in root.iterdir():
            if other != path:
                logger.info("removing %s: fold models of an out-of-fold run on other records or settings", other)
                shutil.rmtree(other, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path
