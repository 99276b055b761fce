"""From a stream of records to padded, length-bucketed batches; memory stays O(window).

Records are read a window at a time (``window_batches`` batches; the first windows smaller). Inside a window they are
sorted by token length so each batch pads only to its own longest text (dynamic padding):
short texts don't pay for long ones. Texts longer than the model's limit are truncated and
counted. Empty texts are skipped with a reason; a non-string text is an error naming the record.

A batch holds at most ``batch_size`` records and, with ``batch_tokens``, at most that many
padded tokens (records × padded length): on a GPU the batch size is chosen for the device
(:func:`worker.scoring.engine.probe_batch_tokens`) and short texts get larger batches than long
ones. :func:`prefetch` runs the window generator on a background thread, so tokenization and
padding overlap the model's forward passes; with ``pin_memory`` the tensors are page-locked for
non-blocking host-to-device copies.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain, islice
from typing import TypeVar

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from worker.errors import DataError
from worker.records import LabelValue, has_text


@dataclass(frozen=True)
class ScoringInput:
    """One record to score; ``reference_label`` is the current label (original or consensus), if any."""

    record_id: str
    text: object
    reference_label: LabelValue | None = None  # a tuple: the label set under review (multi-label)
    text_pair: str | None = None  # the second text of a two-field dataset (the tokenizer's text_pair)


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
    if record.text_pair is not None and not isinstance(record.text_pair, str):
        raise DataError(f"record {record.record_id!r}: second text must be a string, got "
                        f"{type(record.text_pair).__name__}")
    if not has_text(record.text, record.text_pair):
        return "text is empty or whitespace only"
    return None


def windows(
    records: Iterable[ScoringInput],
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int,
    max_length: int,
    window_batches: int = 16,
    batch_tokens: int | None = None,
    pin_memory: bool = False,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[Window]:
    """Split ``records`` into windows of ``batch_size * window_batches`` records, tokenized and bucketed; the
    first windows are smaller (1, 2, 4 … batches: :func:`window_sizes`), so the model starts on a first batch
    while the rest of the first ``window_batches`` is still being tokenized.

    ``batch_tokens`` caps records × padded length per batch (None: no cap); ``pin_memory`` page-locks
    the batches' tensors (CUDA hosts only); with a ``pool`` (:func:`tokenizer_pool`) the windows are
    tokenized and padded in its worker processes, a few windows ahead, and come back in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    iterator = iter(records)
    sizes = window_sizes(batch_size, window_batches)
    chunks = iter(lambda: list(islice(iterator, next(sizes))), [])
    shape = _Shape(batch_size=batch_size, max_length=max_length, batch_tokens=batch_tokens)
    if pool is None:
        for chunk in chunks:
            scorable, positions, skipped = _split_scorable(chunk)
            encoded = encode_texts([str(record.text) for record in scorable], tokenizer, shape, _pairs(scorable))
            yield _assemble(chunk, scorable, positions, skipped, encoded, pin_memory)
        return
    pending: deque[_Pending] = deque()
    for chunk in chunks:  # up to 2 windows per worker process in flight, results in input order
        try:
            scorable, positions, skipped = _split_scorable(chunk)
        except DataError:  # raised after the windows before it, as without a pool
            while pending:
                yield _assemble(*_resolve(pending.popleft()), pin_memory)
            raise
        future = pool.submit(_encode_in_worker, [str(record.text) for record in scorable], shape, _pairs(scorable))
        pending.append((chunk, scorable, positions, skipped, future))
        if len(pending) >= 2 * pool_size(pool):
            yield _assemble(*_resolve(pending.popleft()), pin_memory)
    while pending:
        yield _assemble(*_resolve(pending.popleft()), pin_memory)


def window_sizes(batch_size: int, window_batches: int) -> Iterator[int]:
    """Records of each window: ``batch_size`` × 1, 2, 4 … batches, then ``batch_size × window_batches`` for good.

    A score call cannot start the model before its first window is tokenized (the prefetch thread overlaps the
    later ones): a full first window on a GPU (16 batches of up to 1,024 texts: ≈ 0.23 s on a 16-core host at
    70,000 texts/s) is idle device time on every call — a Ray actor's every chunk, a webhook's rescore. Growing
    windows cost only the first few batches some of their length sorting (a little more padding).
    """
    batches = 1
    while batches < window_batches:
        yield batch_size * batches
        batches *= 2
    while True:
        yield batch_size * window_batches


@dataclass(frozen=True)
class _Shape:
    batch_size: int
    max_length: int
    batch_tokens: int | None


@dataclass
class _Encoded:
    """A window's texts tokenized and bucketed: members per batch (indices into the texts) and their padded arrays."""

    batches: list[tuple[list[int], dict[str, np.ndarray]]]
    truncated: int


def _split_scorable(chunk: list[ScoringInput]) -> tuple[list[ScoringInput], list[int], dict[int, str]]:
    skipped: dict[int, str] = {}
    scorable: list[ScoringInput] = []
    positions: list[int] = []
    for position, record in enumerate(chunk):
        reason = validate_text(record)
        if reason is None:
            scorable.append(record)
            positions.append(position)
        else:
            skipped[position] = reason
    return scorable, positions, skipped


def _pairs(records: list[ScoringInput]) -> list[str] | None:
    """The second texts of a two-field binding (every record has one), else None."""
    if not records or records[0].text_pair is None:
        return None
    return [record.text_pair or "" for record in records]


def encode_texts(texts: list[str], tokenizer: PreTrainedTokenizerBase, shape: _Shape,
                 pairs: list[str] | None = None) -> _Encoded:
    """Tokenize (texts, or text / text_pair), sort by length, bucket and pad (a pure function: it also
    runs in worker processes)."""
    if not texts:
        return _Encoded([], 0)
    backend = _truncating_backend(tokenizer, shape.max_length)
    if backend is not None:
        return _backend_window(backend, tokenizer, texts, shape, pairs)
    encodings, truncated = tokenize_texts(tokenizer, texts, shape.max_length, pairs)
    lengths = [len(encoding["input_ids"]) for encoding in encodings]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    batches = [(members, pad_arrays([encodings[index] for index in members], tokenizer))
               for members in bucket(order, lengths, batch_size=shape.batch_size, batch_tokens=shape.batch_tokens)]
    return _Encoded(batches, truncated)


def _assemble(chunk: list[ScoringInput], scorable: list[ScoringInput], positions: list[int],
              skipped: dict[int, str], encoded: _Encoded, pin_memory: bool) -> Window:
    batches = []
    for members, arrays in encoded.batches:
        inputs = {key: torch.from_numpy(array) for key, array in arrays.items()}
        if pin_memory:
            inputs = {key: tensor.pin_memory() for key, tensor in inputs.items()}
        batches.append(Batch(records=[scorable[index] for index in members],
                             positions=[positions[index] for index in members], inputs=inputs))
    return Window(records=chunk, skipped=skipped, batches=batches, truncated=encoded.truncated)


_Pending = tuple[list[ScoringInput], list[ScoringInput], list[int], dict[int, str], Future]


def _resolve(item: _Pending) -> tuple[list[ScoringInput], list[ScoringInput], list[int], dict[int, str], _Encoded]:
    """A window whose tokenization ran in the pool, with the pool's result."""
    chunk, scorable, positions, skipped, future = item
    return chunk, scorable, positions, skipped, future.result()


# A worker process's tokenizer, set once by the pool's initializer.
_WORKER_TOKENIZER: PreTrainedTokenizerBase | None = None


def _init_worker(tokenizer: PreTrainedTokenizerBase) -> None:
    """One thread per worker process: the processes are the parallelism (no oversubscribed cores)."""
    global _WORKER_TOKENIZER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    torch.set_num_threads(1)
    _WORKER_TOKENIZER = tokenizer


def _encode_in_worker(texts: list[str], shape: _Shape, pairs: list[str] | None) -> _Encoded:
    assert _WORKER_TOKENIZER is not None, "the pool was not started by tokenizer_pool()"
    return encode_texts(texts, _WORKER_TOKENIZER, shape, pairs)


def tokenizer_pool(tokenizer: PreTrainedTokenizerBase, workers: int) -> ProcessPoolExecutor:
    """``workers`` spawned processes that each hold a copy of ``tokenizer`` (for :func:`windows`' ``pool``).

    Converting a fast tokenizer's output to Python lists holds the GIL: one process tokenizes about
    20,000 short texts/s, less than one GPU scores, so a GPU host spreads it over processes.
    Spawned, not forked: the parent may hold CUDA state and threads.
    """
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(tokenizer,))


def pool_size(pool: ProcessPoolExecutor) -> int:
    return pool._max_workers  # type: ignore[attr-defined]  # the executor keeps its size private


def bucket(order: list[int], lengths: list[int], *, batch_size: int, batch_tokens: int | None) -> Iterator[list[int]]:
    """Cut ``order`` (indices sorted by ascending length) into consecutive batches.

    Each batch has at most ``batch_size`` members and, when ``batch_tokens`` is set, at most
    ``batch_tokens`` padded tokens (members × the longest member's length); a single text longer
    than the budget still gets a batch of its own.
    """
    members: list[int] = []
    for index in order:
        full = len(members) >= batch_size
        over_budget = batch_tokens is not None and members and (len(members) + 1) * lengths[index] > batch_tokens
        if full or over_budget:
            yield members
            members = []
        members.append(index)
    if members:
        yield members


def pad_arrays(encodings: list[dict], tokenizer: PreTrainedTokenizerBase, *,
               multiple_of: int = 1) -> dict[str, np.ndarray]:
    """Pad per-text encodings to the longest, rounded up to ``multiple_of`` → int64 arrays [batch, padded_length].

    Equivalent to ``tokenizer.pad(..., pad_to_multiple_of=multiple_of, return_tensors="pt")`` (right or
    left, as the tokenizer pads), without its per-item Python work.
    """
    longest = round_up(max(len(encoding["input_ids"]) for encoding in encodings), multiple_of)
    pad_values = {"input_ids": tokenizer.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0,
                  "special_tokens_mask": 1}
    left = tokenizer.padding_side == "left"
    arrays = {}
    for key in encodings[0]:
        array = np.full((len(encodings), longest), pad_values.get(key, 0), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            values = encoding[key]
            if left:
                array[row, longest - len(values):] = values
            else:
                array[row, :len(values)] = values
        arrays[key] = array
    return arrays


def round_up(length: int, multiple_of: int) -> int:
    """The smallest multiple of ``multiple_of`` that is at least ``length``."""
    return -(-length // multiple_of) * multiple_of


def pad_encodings(encodings: list[dict], tokenizer: PreTrainedTokenizerBase, *, pin_memory: bool = False,
                  multiple_of: int = 1) -> dict[str, torch.Tensor]:
    """:func:`pad_arrays` as tensors; ``pin_memory`` page-locks them for non-blocking copies."""
    tensors = {key: torch.from_numpy(array)
               for key, array in pad_arrays(encodings, tokenizer, multiple_of=multiple_of).items()}
    return {key: tensor.pin_memory() for key, tensor in tensors.items()} if pin_memory else tensors


Item = TypeVar("Item")


def prefetch(items: Iterator[Item], depth: int = 2) -> Iterator[Item]:
    """Run ``items`` on a background thread, up to ``depth`` items ahead of the consumer.

    The tokenizers' Rust code and numpy release the GIL, so tokenizing and padding the next
    window overlaps the model's forward passes on the current one. An exception raised by the
    producer is re-raised in the consumer at the same point of the stream; closing the returned
    generator early stops the producer (memory stays O(depth × window)).
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((done, None))
        except BaseException as error:  # noqa: BLE001 — handed to the consumer, raised there
            buffer.put((done, error))

    thread = threading.Thread(target=produce, name="scoring-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def tokenize_texts(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
              pairs: list[str] | None = None) -> tuple[list[dict], int]:
    """Tokenize without padding; return per-text encodings (first ``max_length`` tokens) and the truncated count.

    A fast tokenizer's Rust backend is called directly (:func:`_backend_encode`); other tokenizers go through
    ``tokenizer(...)``. Both give the same encodings (``tests/unit/test_scoring_pipeline.py`` checks it).
    """
    backend = _truncating_backend(tokenizer, max_length)
    if backend is not None:
        return _backend_encode(backend, _model_input_keys(tokenizer), texts, max_length, pairs)
    return _wrapper_encode(tokenizer, texts, max_length, pairs)


def _wrapper_encode(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int,
                    pairs: list[str] | None = None) -> tuple[list[dict], int]:
    """:func:`tokenize_texts` through the tokenizer's ``__call__`` (any tokenizer)."""
    encoded = tokenizer(
        texts,
        pairs,
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


# What a backend Encoding calls the model inputs the scorer passes on.
_BACKEND_FIELDS = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}
_BACKENDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {max_length: Tokenizer}
_BACKENDS_LOCK = threading.Lock()


def _model_input_keys(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The encodings' keys, as ``tokenizer(...)`` returns them: the model's inputs among input_ids,
    token_type_ids and attention_mask (the mask always: it is how padding is told apart)."""
    names = list(tokenizer.model_input_names)
    return [key for key in _BACKEND_FIELDS if key in names or key == "attention_mask"]


def _truncating_backend(tokenizer: PreTrainedTokenizerBase, max_length: int):
    """A private copy of a fast tokenizer's Rust backend set to truncate at ``max_length`` (the tokenizer's own
    backend is left alone: its ``__call__`` re-configures it on every call), or None for a tokenizer whose
    inputs the backend does not give (a slow tokenizer, or a model input beyond ``_BACKEND_FIELDS``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None or any(name not in _BACKEND_FIELDS for name in tokenizer.model_input_names):
        return None
    with _BACKENDS_LOCK:
        by_length = _BACKENDS.setdefault(tokenizer, {})
        if max_length not in by_length:
            copy = type(backend).from_str(backend.to_str())
            copy.enable_truncation(max_length, strategy="longest_first",
                                   direction=getattr(tokenizer, "truncation_side", "right"))
            copy.no_padding()
            by_length[max_length] = copy
        return by_length[max_length]


def _backend_encode(backend, keys: list[str], texts: list[str], max_length: int,
                    pairs: list[str] | None) -> tuple[list[dict], int]:
    """:func:`tokenize_texts` on the Rust backend: the texts are encoded in parallel without the GIL
    (``encode_batch_fast``: no character offsets), and each encoding becomes one dict of lists — a fifth of
    the Python work of ``tokenizer(...)``, which is what bounds a GPU's scoring rate on short texts
    (benchmarks/tokenizing.py)."""
    encoded = _encode_batch(backend, texts, pairs)
    fields = [(key, _BACKEND_FIELDS[key]) for key in keys]
    encodings = [{key: getattr(encoding, name) for key, name in fields} for encoding in encoded]
    truncated = sum(1 for encoding in encoded if len(encoding) >= max_length and encoding.overflowing)
    return encodings, truncated


def _encode_batch(backend, texts: list[str], pairs: list[str] | None) -> list:
    """The backend's encodings of the texts (or text / text_pair), in parallel without the GIL; ``encode_batch_fast``
    (no character offsets) where the tokenizers release has it."""
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return encode(texts if pairs is None else list(zip(texts, pairs, strict=True)))


def _backend_window(backend, tokenizer: PreTrainedTokenizerBase, texts: list[str], shape: _Shape,
                    pairs: list[str] | None) -> _Encoded:
    """:func:`encode_texts` on the Rust backend, with one Python list per text instead of one per model input.

    The encodings are unpadded, so each attention mask is all ones over the text's tokens, and the token types
    of a single text are its post-processor's template's (all zeros for BERT's: probed once a window,
    :func:`_single_types_are_zero`); only a pair's token types are read per text. The window's ids go into one
    flat array [total tokens] and each batch is gathered from it at once (arrays [batch, padded length]), the
    same arrays as :func:`pad_arrays` over :func:`_backend_encode` (tests/unit/test_scoring_pipeline.py).
    O(window) time and memory.
    """
    encoded = _encode_batch(backend, texts, pairs)
    ids = [encoding.ids for encoding in encoded]
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))  # [N]
    starts = np.cumsum(lengths) - lengths  # [N] each text's offset into the flat arrays
    flat = {"input_ids": np.fromiter(chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))}
    keys = _model_input_keys(tokenizer)
    if "token_type_ids" in keys and (pairs is not None or not _single_types_are_zero(backend)):
        flat["token_type_ids"] = np.fromiter(chain.from_iterable(encoding.type_ids for encoding in encoded),
                                             dtype=np.int64, count=len(flat["input_ids"]))
    long = np.flatnonzero(lengths >= shape.max_length).tolist()
    truncated = sum(1 for index in long if encoded[index].overflowing)
    order = np.argsort(lengths, kind="stable").tolist()
    length_list = lengths.tolist()
    left = tokenizer.padding_side == "left"
    pad_id = tokenizer.pad_token_id or 0
    batches = []
    for members in bucket(order, length_list, batch_size=shape.batch_size, batch_tokens=shape.batch_tokens):
        rows = np.asarray(members)
        member_lengths = lengths[rows]  # [B]
        longest = int(member_lengths.max())
        columns = np.arange(longest)
        mask = (columns >= longest - member_lengths[:, None]) if left else (columns < member_lengths[:, None])
        # [B, longest]: True where a token goes; row-major order visits each row's tokens in their order
        gather = np.repeat(starts[rows] - (np.cumsum(member_lengths) - member_lengths), member_lengths)
        gather += np.arange(len(gather))  # [tokens of the batch] index into the flat arrays
        arrays = {}
        for key in keys:
            if key == "attention_mask":
                arrays[key] = mask.astype(np.int64)
            elif key in flat:
                array = np.full((len(members), longest), pad_id if key == "input_ids" else 0, dtype=np.int64)
                array[mask] = flat[key][gather]
                arrays[key] = array
            else:  # token types of single texts whose template gives zeros
                arrays[key] = np.zeros((len(members), longest), dtype=np.int64)
        batches.append((members, arrays))
    return _Encoded(batches, truncated)


def _single_types_are_zero(backend) -> bool:
    """Whether the backend's post-processor gives a single text token type 0 throughout (BERT's does; a template
    may say otherwise). The type of a token depends on the template's piece, not on the text, so one probe
    answers for every text."""
    return not any(backend.encode("a b").type_ids)
