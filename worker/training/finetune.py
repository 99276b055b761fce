"""Quick fine-tuning without a validation split (the demo's first model, the benchmarks).

A thin wrapper over :func:`worker.training.trainer.train_classifier`: one training loop for everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from worker.errors import DataError
from worker.records import LabelledText
from worker.training.data import ORIGINAL, Example
from worker.training.trainer import TrainingSettings, train_classifier


def fine_tune(
    base_model: str | Path,
    records: Sequence[LabelledText],
    labels: Sequence[str],
    output_dir: Path,
    *,
    epochs: int = 1,
    max_length: int = 64,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    seed: int = 0,
    device: str = "auto",
) -> Path:
    """Fine-tune ``base_model`` (Hub id or directory) on ``records`` for ``epochs`` and save to ``output_dir``.

    Raises:
        DataError: a record has no label or a label outside ``labels``, or there are no records.
    """
    if not records:
        raise DataError("no labelled records to train on")
    for record in records:
        if record.label is None or record.label not in labels:
            raise DataError(f"record {record.id!r}: label {record.label!r} is not one of {list(labels)}")
    settings = TrainingSettings(base_model=str(base_model), epochs=epochs, max_length=max_length,
                                batch_size=batch_size, learning_rate=learning_rate, seed=seed, device=device)
    examples = [Example(record.id, record.text, str(record.label), 1.0, ORIGINAL) for record in records]
    train_classifier(base_model, examples, [], labels, output_dir, settings)
    return output_dir
