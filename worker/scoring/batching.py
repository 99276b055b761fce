"""From a stream of records to padded, length-bucketed batches; memory stays O(window).

Records are read a window at a time (``window_batches`` batches). Inside a window they are
sorted by token length so each batch pads only to its own longest text (dynamic padding):
short texts don't pay for long ones. Texts longer than the model's limit are truncated and
counted. Empty texts are skipped with a reason; a non-string text is an error naming the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import torch
from transformers import PreTrainedTokenizerBase

from worker.errors import DataError


@dataclass(frozen=True)
class ScoringInput:
    """One record to score; ``reference_label`` is the current label (original or consensus), if any."""

    record_id: str
    text: object
    reference_label: str | None = None


@dataclass
class Batch:
    """Records of one forward pass, in the order of the model inputs."""

    records: list[ScoringInput]
    positions: list[int]  # where each record stands in its window
    inputs: dict[str, torch.Tensor]  # input_ids / attention_mask (...): [batch, padded_length]


@dataclass
class Window:
    """One window of the stream: the records in input order, the skipped ones, and the batches."""

    records: list[ScoringInput]
    skipped: dict[int, str]  # position in ``records`` -> reason
    batches: list[Batch]
    truncated: int = 0


def validate_text(record: ScoringInput) -> str | None:
    """Return a skip reason for a missing/blank text, None when it can be scored.

    Raises:
        DataError: the text is not a string (names the record id and the value's type).
    """
    if record.text is None:
        return "text is missing (None)"
    if not isinstance(record.text, str):
        raise DataError(
            f"record {record.record_id!r}: text must be a string, got {type(record.text).__name__} "
            f"({str(record.text)[:80]!r})"
        )
    if not record.text.strip():
        return "text is empty or whitespace only"
    return None


def windows(
    records: Iterable[ScoringInput],
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int,
    max_length: int,
    window_batches: int = 16,
) -> Iterator[Window]:
    """Split ``records`` into windows of ``batch_size * window_batches`` records, tokenized and bucketed."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    iterator = iter(records)
    while chunk := list(islice(iterator, batch_size * window_batches)):
        yield _make_window(chunk, tokenizer, batch_size=batch_size, max_length=max_length)


def _make_window(
    chunk: list[ScoringInput], tokenizer: PreTrainedTokenizerBase, *, batch_size: int, max_length: int
) -> Window:
    skipped: dict[int, str] = {}
    scorable: list[ScoringInput] = []
    scorable_positions: list[int] = []
    for position, record in enumerate(chunk):
        reason = validate_text(record)
        if reason is None:
            scorable.append(record)
            scorable_positions.append(position)
        else:
            skipped[position] = reason
    if not scorable:
        return Window(records=chunk, skipped=skipped, batches=[])
    encodings, truncated = _tokenize(tokenizer, [record.text for record in scorable], max_length)
    order = sorted(range(len(scorable)), key=lambda index: len(encodings[index]["input_ids"]))
    batches = []
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        padded = tokenizer.pad([encodings[index] for index in members], return_tensors="pt")
        batches.append(Batch(records=[scorable[index] for index in members],
                             positions=[scorable_positions[index] for index in members], inputs=dict(padded)))
    return Window(records=chunk, skipped=skipped, batches=batches, truncated=truncated)


def _tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> tuple[list[dict], int]:
    """Tokenize without padding; return per-text encodings (first ``max_length`` tokens) and the truncated count."""
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        return_overflowing_tokens=True,
        return_attention_mask=True,
    )
    keys = [key for key in encoded if key not in ("overflow_to_sample_mapping", "length")]
    sample_of_chunk = encoded["overflow_to_sample_mapping"]
    first_chunk: dict[int, int] = {}
    for chunk_index, sample in enumerate(sample_of_chunk):
        first_chunk.setdefault(int(sample), chunk_index)
    truncated = {int(sample) for index, sample in enumerate(sample_of_chunk) if first_chunk[int(sample)] != index}
    encodings = [{key: encoded[key][first_chunk[sample]] for key in keys} for sample in range(len(texts))]
    return encodings, len(truncated)
