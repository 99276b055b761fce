"""The host work a GPU host's scoring thread does per record, measured on any CPU.

On an H100 the deterministic path is bound by the Python its one process runs per record under the GIL
(benchmarks/RESULTS.md, 2026-12-05): the device's passes take ≈ 7 µs a record, the Rust encoding runs on 16
threads without the GIL, and what is left — windows of token ids, padding, copies, each record's results — runs
on two threads that share one interpreter lock. This script measures exactly that work on a CPU: the scorer's
real code with the Rust encodings cached (encoded once, before the clock) and the model's passes replaced by
ready log-probabilities of the right shapes ([B, C] and [B, C, T]), so neither the encoding nor the model's
arithmetic is in the figures. One thread (no prefetch), so the figure is the sum of both threads' GIL-held work.

Rows per label count: the windows (token ids into padded, length-bucketed arrays), each batch's results
(reference labels and ``RecordScore``s from the log-probabilities) and the whole ``Scorer.score`` call, in µs a
record (best of ``--rounds``); 1e6 / the whole call's µs bounds a GPU host's deterministic rate whatever its
device does. With ``--baseline DIR`` (a git worktree of another commit) the same measure runs from that tree too,
alternating with this one in fresh processes, and the table gives both side by side.

    python benchmarks/host_side.py                              # 20,000 movie snippets, 2 and 20 labels, T = 20
    git worktree add /tmp/base HEAD~1 && python benchmarks/host_side.py --baseline /tmp/base

Writes benchmarks/results/host_side.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

HERE = Path(__file__).resolve()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--labels", default="2,20", help="label counts C, comma-separated")
    parser.add_argument("--samples", type=int, default=20, help="MC samples T (head-only: the deterministic path)")
    parser.add_argument("--batch-size", type=int, default=1024, help="records a batch (a GPU's auto maximum)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per tree and label count")
    parser.add_argument("--baseline", type=Path, default=None, help="another tree of the project, measured beside")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)  # one tree, in this process
    parser.add_argument("--label-count", type=int, default=2, help=argparse.SUPPRESS)
    return parser.parse_args()


def measure(tree: Path, args: argparse.Namespace) -> dict:
    """µs a record of the windows, the results and the whole score call, with ``tree``'s worker (best of 5 each)."""
    sys.path.insert(0, str(tree))  # before the installed project: the tree's own worker package
    import numpy as np
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from worker.demo_data import load_movie_snippets
    from worker.offline_assets import MINILM_MODEL, fetch
    from worker.scoring import Scorer, ScoringInput, batching, load_classifier
    from worker.scoring.mc import PendingPrediction

    assert Path(batching.__file__).is_relative_to(tree), f"{batching.__file__} is not from {tree}"
    torch.set_num_threads(1)
    labels = [f"label_{index}" for index in range(args.label_count)]
    with tempfile.TemporaryDirectory() as work:
        tokenizer = AutoTokenizer.from_pretrained(fetch(MINILM_MODEL))
        config = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                            intermediate_size=8, num_labels=len(labels), id2label=dict(enumerate(labels)),
                            label2id={label: index for index, label in enumerate(labels)})
        BertForSequenceClassification(config).save_pretrained(work)
        tokenizer.save_pretrained(work)
        classifier = load_classifier(work, device="cpu")
    scorer = Scorer(classifier, progress=False, batch_size=args.batch_size, pipeline=False, samples=args.samples,
                    mc_layers=0)
    snippets = [snippet.text for snippet in load_movie_snippets()]
    records = [ScoringInput(str(index), snippets[index % len(snippets)], labels[index % len(labels)])
               for index in range(args.records)]

    encode, encodings = batching._encode_batch, {}

    def cached_encode(backend, texts, pairs):  # the Rust encoding, once per window's texts
        key = (texts[0], texts[-1], len(texts))
        if key not in encodings:
            encodings[key] = encode(backend, texts, pairs)
        return encodings[key]

    generator = torch.Generator().manual_seed(0)
    deterministic = torch.log_softmax(torch.randn(args.batch_size, len(labels), generator=generator) * 3, dim=1)
    mc = torch.log_softmax(torch.randn(args.batch_size, len(labels), args.samples, generator=generator) * 3, dim=1)

    def ready_prediction(inputs, reference=None):  # the passes' results, as a finished GPU copy would hand them
        rows = len(next(iter(inputs.values())))
        return PendingPrediction(deterministic=deterministic[:rows], mc=mc[:rows])

    batching._encode_batch = cached_encode
    scorer.predictor.launch = ready_prediction

    def all_windows():
        return list(batching.windows(records, classifier.tokenizer, batch_size=scorer.batch_size,
                                     max_length=classifier.max_length, window_batches=scorer.window_batches))

    batches = [batch for window in all_windows() for batch in window.batches]

    def results():
        for batch in batches:
            scorer._score_batch(batch, scorer._reference_indices(batch), ready_prediction(batch.inputs).result())

    def whole():
        assert sum(1 for _ in scorer.score(records)) == len(records)

    whole()  # warm: every window's encoding cached
    per_record = {name: min(timeit.repeat(function, number=1, repeat=5)) / len(records) * 1e6
                  for name, function in (("windows", all_windows), ("results", results), ("whole", whole))}
    return {**per_record, "numpy": np.__version__}


def run_tree(tree: Path, label_count: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(HERE), "--measure", str(tree), "--label-count", str(label_count),
               "--records", str(args.records), "--samples", str(args.samples), "--batch-size", str(args.batch_size)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure.resolve(), args)))
        return
    sys.path.insert(0, str(HERE.parents[1]))
    from benchmarks._shared import write_results

    trees = {"this tree": HERE.parents[1]}
    if args.baseline is not None:
        trees = {f"baseline ({args.baseline})": args.baseline.resolve(), **trees}
    table: dict[str, dict[str, dict]] = {}
    for label_count in [int(part) for part in args.labels.split(",")]:
        for _ in range(args.rounds):
            for name, tree in trees.items():
                figures = run_tree(tree, label_count, args)
                best = table.setdefault(f"{label_count} labels", {}).setdefault(name, figures)
                for key in ("windows", "results", "whole"):
                    best[key] = min(best[key], figures[key])
    title = (f"Host work per record, µs (best of {args.rounds} processes × 5; {args.records} movie snippets, "
             f"batches of {args.batch_size}, T = {args.samples}, encodings cached, passes replaced)")
    lines = [title, "", "| labels | tree | windows | results | whole score call | records/s bound |",
             "|---|---|---:|---:|---:|---:|"]
    for labels, by_tree in table.items():
        for name, figures in by_tree.items():
            lines.append(f"| {labels} | {name} | {figures['windows']:.2f} | {figures['results']:.2f} | "
                         f"{figures['whole']:.2f} | {1e6 / figures['whole']:,.0f} |")
    write_results("host_side", {"args": {key: str(value) for key, value in vars(args).items()}, "table": table}, lines)


if __name__ == "__main__":
    main()
