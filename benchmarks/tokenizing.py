"""How fast the scorer turns texts into padded batches: the tokenizer's own call vs its Rust backend called
directly (issue #16: on a GPU, one process's tokenizing bounds the deterministic scoring rate).

Rows, on the same texts in one run, best of ``--repeats``:

  ceiling: backend encode only     the Rust encoding alone (``encode_batch_fast``), no Python lists: the limit
  tokenizer(...) (before)          what ``tokenize_texts`` did: the transformers call with overflow tracking
  backend direct (now)             what ``tokenize_texts`` does for a fast tokenizer
  windows before / per-text / now  the whole window step (tokenize, sort by length, bucket, pad to int64 arrays):
                                   through tokenizer(...); through the backend with a dict of lists per text, padded
                                   row by row (2026-11-30); through the backend with one list per text, each batch
                                   gathered from flat arrays (now)

each with the tokenizer's Rust threads on (TOKENIZERS_PARALLELISM, as on a GPU host) and off (one thread: the
Python work that cannot run in parallel, the part a many-core host still pays serially).

Then the whole deterministic scoring path (``Scorer``, head-only MC: k = 0, T = 20, records in, ``RecordScore``s out)
with a **tiny** 2-layer BERT (hidden size 32) behind the same tokenizer, before / per-text / now, in batches of
32 in line (a CPU's shape) and of 1,024 with the prefetch thread (a GPU's): the model costs almost nothing, so the
rate is the pipeline's own bound — what a GPU's deterministic rate cannot exceed.

    .venv/bin/python benchmarks/tokenizing.py [--records 20000] [--repeats 3]

Texts: the offline movie-review snippets (repeated to ``--records``); tokenizer: the offline all-MiniLM-L6-v2.
Writes benchmarks/results/tokenizing.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.demo_data import load_movie_snippets
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import batching


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    snippets = [snippet.text for snippet in load_movie_snippets()]
    texts = (snippets * (args.records // len(snippets) + 1))[:args.records]
    rows: dict[str, dict[str, float]] = {}
    for parallel in (True, False):
        os.environ["TOKENIZERS_PARALLELISM"] = "true" if parallel else "false"
        tokenizer = AutoTokenizer.from_pretrained(str(fetch(MINILM_MODEL)))  # after the switch: it is read once
        column = "rust threads on" if parallel else "one thread"
        for name, run in _paths(tokenizer, texts, args.max_length).items():
            rows.setdefault(name, {})[column] = len(texts) / _best(run, args.repeats)
    title = (f"Tokenizing {len(texts):,} movie snippets (max {args.max_length} tokens), all-MiniLM-L6-v2's "
             f"tokenizer, {os.cpu_count()} CPUs, texts/s (best of {args.repeats})")
    lines = [title, "",
             "| path | rust threads on | one thread |", "|---|---:|---:|",
             *(f"| {name} | {values['rust threads on']:,.0f} | {values['one thread']:,.0f} |"
               for name, values in rows.items())]
    before, now = rows["tokenizer(...) (before)"], rows["backend direct (now)"]
    lines += ["", *(f"backend direct / tokenizer(...), {column}: {now[column] / before[column]:.2f}×"
                    for column in before)]
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    pipeline = _pipeline_rates(texts, args.repeats)
    shapes = list(pipeline["now"])
    lines += ["", f"| deterministic scorer, tiny model (the pipeline's bound), records/s | {' | '.join(shapes)} |",
              "|---|" + "---:|" * len(shapes),
              *(f"| {name} | {' | '.join(f'{rates[shape]:,.0f}' for shape in shapes)} |"
                for name, rates in pipeline.items()),
              "", *(f"{shape}: now / before {pipeline['now'][shape] / pipeline['before'][shape]:.2f}×, "
                    f"now / per-text {pipeline['now'][shape] / pipeline['per-text'][shape]:.2f}×" for shape in shapes)]
    write_results("tokenizing", {"args": vars(args), "rows": rows, "pipeline": pipeline}, lines)


def _pipeline_rates(texts: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Records/s of the deterministic scorer with a tiny model, {version: {shape: rate}}: versions "before"
    (the tokenizer's call), "per-text" (the backend, a dict of lists per text, RecordScore's own __init__: the
    2026-11-30 path) and "now"; shapes: a CPU's (batches of 32, in line) and a GPU's (batches of up to 1,024,
    the windows tokenized on the prefetch thread while the main thread scores: the host side a GPU waits on)."""
    import contextlib
    import tempfile

    from transformers import BertConfig, BertForSequenceClassification

    from worker.scoring import Scorer, ScoringInput, load_classifier
    from worker.scoring.engine import RecordScore

    tokenizer = AutoTokenizer.from_pretrained(str(fetch(MINILM_MODEL)))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    records = [ScoringInput(str(index), text, ("negative", "positive")[index % 2]) for index, text in enumerate(texts)]
    dataclass_init = mock.patch.object(RecordScore, "from_rows", classmethod(
        lambda cls, names, rows: [cls(**dict(zip(names, row, strict=True))) for row in rows]))
    versions = {
        "before": (mock.patch.object(batching, "_truncating_backend", return_value=None), dataclass_init),
        "per-text": (mock.patch.object(batching, "_backend_window", _per_text_window), dataclass_init),
        "now": (),
    }
    shapes = {"batch 32, in line (CPU)": {"batch_size": 32, "pipeline": False},
              "batch 1,024, prefetch thread (GPU's shape)": {"batch_size": 1024, "pipeline": True}}
    rates: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        BertForSequenceClassification(config).save_pretrained(work)
        tokenizer.save_pretrained(work)
        classifier = load_classifier(work, device="cpu")
        for shape, options in shapes.items():
            scorer = Scorer(classifier, samples=20, strategy="partial", mc_layers=0, progress=False, **options)
            for name, patches in versions.items():
                with contextlib.ExitStack() as stack:
                    for patch in patches:
                        stack.enter_context(patch)
                    rate = len(records) / _best(lambda run=scorer.score: sum(1 for _ in run(records)), repeats)
                rates.setdefault(name, {})[shape] = rate
    return rates


def _paths(tokenizer, texts: list[str], max_length: int) -> dict[str, Callable[[], object]]:
    backend = batching._truncating_backend(tokenizer, max_length)
    assert backend is not None, "the offline MiniLM has a fast tokenizer"
    keys = batching._model_input_keys(tokenizer)
    shape = batching._Shape(batch_size=256, max_length=max_length, batch_tokens=None)

    def windows_before():
        with mock.patch.object(batching, "_truncating_backend", return_value=None):
            return batching.encode_texts(texts, tokenizer, shape)

    return {
        "ceiling: backend encode only": lambda: backend.encode_batch_fast(texts),
        "tokenizer(...) (before)": lambda: batching._wrapper_encode(tokenizer, texts, max_length),
        "backend direct (now)": lambda: batching._backend_encode(backend, keys, texts, max_length, None),
        "windows before (tokenize + bucket + pad)": windows_before,
        "windows per-text (dicts of lists, padded by row)": lambda: _per_text_window(backend, tokenizer, texts, shape,
                                                                                      None),
        "windows now (tokenize + bucket + pad)": lambda: batching.encode_texts(texts, tokenizer, shape),
    }


def _per_text_window(backend, tokenizer, texts: list[str], shape, pairs) -> batching._Encoded:
    """The window step of 2026-11-30: a dict of lists per text from the backend, each batch padded row by row."""
    keys = batching._model_input_keys(tokenizer)
    encodings, truncated = batching._backend_encode(backend, keys, texts, shape.max_length, pairs)
    lengths = [len(encoding["input_ids"]) for encoding in encodings]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    return batching._Encoded([(members, batching.pad_arrays([encodings[index] for index in members], tokenizer))
                              for members in batching.bucket(order, lengths, batch_size=shape.batch_size,
                                                             batch_tokens=shape.batch_tokens)], truncated)


def _best(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


if __name__ == "__main__":
    main()
