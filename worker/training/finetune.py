"""A plain fine-tuning loop: a pretrained encoder + a new classification head on labelled texts.

The full training job (validation split, early stopping, model registry) builds on this.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from worker.demo_data import LabelledText
from worker.errors import DataError
from worker.scoring.device import autocast, pick_device

logger = logging.getLogger(__name__)


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
    """Fine-tune ``base_model`` (Hub id or directory) on ``records`` and save model + tokenizer to ``output_dir``.

    Raises:
        DataError: a record has no label or a label outside ``labels``, or there are no records.
    """
    label_ids = {label: index for index, label in enumerate(labels)}
    for record in records:
        if record.label not in label_ids:
            raise DataError(f"record {record.id!r}: label {record.label!r} is not one of {list(labels)}")
    if not records:
        raise DataError("no labelled records to train on")
    torch.manual_seed(seed)
    target = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(base_model), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids,
        ignore_mismatched_sizes=True,
    ).to(target)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    steps = epochs * ((len(records) + batch_size - 1) // batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = random.Random(seed + epoch).sample(list(records), len(records))
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            inputs = tokenizer([r.text for r in batch], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt").to(target)
            targets = torch.tensor([label_ids[r.label] for r in batch], device=target)
            with autocast(target, torch.bfloat16 if target.type == "cuda" else None):
                loss = model(**inputs, labels=targets).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += loss.item() * len(batch)
        logger.info("epoch %d/%d: training loss %.4f", epoch + 1, epochs, total / len(order))
    model.eval()
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "training.json").write_text(json.dumps(
        {"records": len(records), "epochs": epochs, "seconds": round(time.perf_counter() - started, 1),
         "base_model": str(base_model), "seed": seed}))
    logger.info("fine-tuned %s on %d records in %.0f s", base_model, len(records), time.perf_counter() - started)
    return output_dir
