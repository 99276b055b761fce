"""What a later model should train on when the records carry labels of their own (an import, a weak labeller):
the annotated records alone (``training.data = "annotated"``, the default) or with the unreviewed records' own
labels at ``training.original_weight`` (``"annotated+original"``, what every first model does).

Movie snippets: ``--pool`` records carry a label, ``--noise`` of them wrong (flipped, seeded); ``--reviewed`` of
them, drawn at random, have the annotators' (true) label. Both variants build the training set with the worker's
own ``build_training_set`` (the same validation split) and train MiniLM with ``train_classifier`` (default
schedule); the truth is accuracy / macro-F1 on ``--test`` held-out snippets.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.later_data [--seeds 2] [--noise 0.1 0.3]

Writes benchmarks/results/later_data.{json,md}. CPU: about 4 minutes a training on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
from pathlib import Path

from benchmarks._shared import held_out_metrics, write_results
from worker.config import TrainingSettings
from worker.demo_data import load_movie_snippets
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.training.data import ORIGINAL, Example, build_training_set
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.later_data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--noise", type=float, nargs="*", default=[0.1, 0.3])
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--reviewed", type=int, default=150)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snippets = load_movie_snippets()
    labels = sorted({s.label for s in snippets})
    runs = []
    for noise in args.noise:
        for seed in range(args.seeds):
            rng = random.Random(seed)
            drawn = rng.sample(snippets, args.pool + args.test)
            pool, test = drawn[:args.pool], [Example(s.id, s.text, s.label) for s in drawn[args.pool:]]
            reviewed = set(rng.sample(range(args.pool), args.reviewed))
            annotated, original = [], []
            for position, snippet in enumerate(pool):
                if position in reviewed:
                    annotated.append(Example(snippet.id, snippet.text, snippet.label))
                else:
                    wrong = rng.random() < noise
                    label = next(other for other in labels if other != snippet.label) if wrong else snippet.label
                    original.append(Example(snippet.id, snippet.text, label, 0.3, ORIGINAL))
            settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed)
            for variant, extra in (("annotated", []), ("annotated+original", original)):
                training_set = build_training_set(annotated, extra, labels, seed=seed)
                with tempfile.TemporaryDirectory() as work:
                    train_classifier(settings.base_model, training_set.train, training_set.validation, labels,
                                     Path(work), settings)
                    accuracy, macro_f1 = held_out_metrics(load_classifier(Path(work), device="auto"), test)
                runs.append({"noise": noise, "seed": seed, "variant": variant, "train": len(training_set.train),
                             "accuracy": accuracy, "macro_f1": macro_f1})
                logger.warning("%s", runs[-1])
    title = (f"Movie snippets: {args.pool} records with their own label, {args.reviewed} of them reviewed (true "
             f"label); held-out accuracy on {args.test}; seeds shown side by side")
    lines = [title, "", "| wrong own labels | training.data | examples trained on | accuracy | macro-F1 |",
             "|---:|---|---:|---|---|"]
    for noise in args.noise:
        for variant in ("annotated", "annotated+original"):
            group = [r for r in runs if r["noise"] == noise and r["variant"] == variant]
            accuracies = " / ".join(f"{r['accuracy']:.3f}" for r in group)
            macro_f1s = " / ".join(f"{r['macro_f1']:.3f}" for r in group)
            lines.append(f"| {noise:.0%} | {variant} | {statistics.mean(r['train'] for r in group):.0f} | "
                         f"{accuracies} | {macro_f1s} |")
    write_results("later_data", {"runs": runs, **vars(args)}, lines)


if __name__ == "__main__":
    main()
