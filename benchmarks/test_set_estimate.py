"""How far a model's validation figure, and its test-set figure, are from its accuracy on the records it makes
suggestions for — in an active-learning loop, where annotators review the records the worker puts first.

Per set and seed, on a pool of records: a test set of ``--test`` records is drawn at random first (the worker's
``draw_test_set``) and never reviewed for training; annotators then review the cold start's first ``--first``
records (TypiClust ranks, ``cold_start_ranks``) and a model trains on them (``train_classifier``, a stratified
20 % held out as validation, ``stratified_split``); it scores the rest and the ``--second`` records it is least
sure of (smallest margin) are reviewed next; a second model trains on both batches. For each model: accuracy on
its validation records, on the test set (``worker.test_set.measure``, with its 95 % Wilson interval) and on every
other pool record nobody reviewed — the truth the two figures estimate.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.test_set_estimate [--seeds 2] [--pool 1200] [--test 200]
        [--sets bbc groups]

Writes benchmarks/results/test_set_estimate.{json,md}. CPU: about 7 minutes per set and seed on 2 cores (run it
alone: a second torch process on the 2 cores slows both several-fold).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks._shared import write_results
from worker.coldstart import RANK_PROPERTY, ColdStartSettings, cold_start_ranks
from worker.config import TrainingSettings
from worker.demo_data import load_bbc_news, load_newsgroups
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import LabelledText, PulledRecord
from worker.scoring import load_classifier
from worker.scoring.model import Classifier
from worker.test_set import draw_test_set, measure
from worker.training.data import Example, stratified_split
from worker.training.evaluate import predict_probabilities
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.test_set_estimate")

SETS = {  # name -> (loader, first batch, second batch)
    "BBC News (5 sections)": (load_bbc_news, 30, 40),
    "20 Newsgroups (20 groups)": (lambda: load_newsgroups("train"), 100, 100),
}


def _pulled(record: LabelledText) -> PulledRecord:
    """A pool record as the worker pulls it: nobody has responded yet."""
    return PulledRecord(f"srv-{record.id}", record.id, record.text, {}, None, (), None)


def _examples(records: list[LabelledText]) -> list[Example]:
    return [Example(r.id, r.text, str(r.label)) for r in records]


def _accuracy(classifier: Classifier, records: list[LabelledText]) -> float:
    """Deterministic accuracy on ``records`` (their true labels)."""
    return measure(classifier, "m", _examples(records)).accuracy


def _least_sure(classifier: Classifier, records: list[LabelledText], count: int) -> list[LabelledText]:
    """The ``count`` records with the smallest margin between the model's two likeliest labels."""
    probabilities = predict_probabilities(classifier, [r.text for r in records], samples=1).deterministic  # [N, C]
    top_two = np.sort(probabilities, axis=1)[:, -2:]  # [N, 2]
    order = np.argsort(top_two[:, 1] - top_two[:, 0], kind="stable")
    return [records[index] for index in order[:count]]


def _train(reviewed: list[LabelledText], labels: list[str], seed: int,
           work: Path) -> tuple[Classifier, list[Example], frozenset[str]]:
    """A model trained on the stratified 80 % of ``reviewed``; (the classifier, its validation examples, the ids it
    trained on)."""
    train, validation = stratified_split(_examples(reviewed), 0.2, seed=seed)
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed)
    train_classifier(settings.base_model, train, validation, labels, work, settings)
    return load_classifier(work, device="auto"), validation, frozenset(example.id for example in train)


@dataclass(frozen=True)
class LoopModel:
    """One model of the loop: its name, how many records were reviewed for it, the model, its validation examples,
    the test set's records (in rank order), the pool's other unreviewed records (the truth) and the ids it trained
    on."""

    name: str
    reviewed: int
    classifier: Classifier
    validation: list[Example]
    test: list[LabelledText]
    unreviewed: list[LabelledText]
    taught: frozenset[str]


def loop_models(pool: list[LabelledText], first: int, second: int, test_size: int, seed: int,
                work: Path) -> Iterator[LoopModel]:
    """The active-learning loop on one pool: a test set drawn first, the cold start's batch → model 1, its least
    sure ``second`` records added → model 2."""
    labels = sorted({str(r.label) for r in pool})
    by_id = {r.id: r for r in pool}
    test_set = draw_test_set((_pulled(r) for r in pool), test_size, seed=seed)
    test = [by_id[record_id] for record_id in test_set.ids]
    rest = [r for r in pool if r.id not in set(test_set.ids)]
    ranks = cold_start_ranks([r.id for r in rest], [r.text for r in rest], str(fetch(MINILM_MODEL)),
                             ColdStartSettings(clusters=first, device="auto", seed=seed))
    ranked = sorted((r for r in rest if r.id in ranks), key=lambda r: ranks[r.id][RANK_PROPERTY])
    reviewed = ranked[:first]
    for name in ("first model (cold start's batch)", "second model (+ the least sure)"):
        classifier, validation, taught = _train(reviewed, labels, seed, work / name[:5])
        taken = {r.id for r in reviewed}
        unreviewed = [r for r in rest if r.id not in taken]
        yield LoopModel(name, len(reviewed), classifier, validation, test, unreviewed, taught)
        reviewed = reviewed + _least_sure(classifier, unreviewed, second)


def add_loop_arguments(parser: argparse.ArgumentParser, *, seeds: int) -> None:
    """The options that choose the loops: seeds, pool size, test-set size, sets."""
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--pool", type=int, default=1200, help="records per pool (a seeded sample of the set)")
    parser.add_argument("--test", type=int, default=200, help="test-set records drawn from the pool")
    parser.add_argument("--sets", nargs="*", default=None, help="substrings of the set names to run")


def loops(args: argparse.Namespace) -> Iterator[tuple[str, int, Iterator[LoopModel]]]:
    """(set name, seed, the loop's models) for each set and seed ``args`` choose (see :func:`add_loop_arguments`);
    consume each loop's models before asking for the next (they live in a temporary directory until then)."""
    for set_name, (loader, first, second) in SETS.items():
        if args.sets and not any(part.lower() in set_name.lower() for part in args.sets):
            continue
        records = loader()
        for seed in range(args.seeds):
            pool = random.Random(seed).sample(records, min(args.pool, len(records)))
            with tempfile.TemporaryDirectory() as work:
                yield set_name, seed, loop_models(pool, first, second, args.test, seed, Path(work))


def loop_rows(args: argparse.Namespace, rows_of: Callable[[Iterator[LoopModel], int], list[dict]],
              describe: Callable[[dict], str]) -> list[dict]:
    """The rows ``rows_of(models, seed)`` gives for each loop ``args`` choose (:func:`loops`), each with its set and
    seed, and logged as ``describe`` says."""
    runs: list[dict] = []
    for set_name, seed, models in loops(args):
        for row in rows_of(models, seed):
            runs.append({"set": set_name, "seed": seed, **row})
            logger.warning("%s seed %d %s", set_name, seed, describe(row))
    return runs


def run_one(models: Iterator[LoopModel], seed: int = 0) -> list[dict]:
    """Both models' three figures on one pool: [{model, reviewed, validation…, test…, truth}]."""
    rows = []
    for model in models:
        on_test = measure(model.classifier, model.name, _examples(model.test))
        rows.append({"model": model.name, "reviewed": model.reviewed, "validation_records": len(model.validation),
                     "validation_accuracy": measure(model.classifier, model.name, model.validation).accuracy,
                     "test_records": on_test.records, "test_accuracy": on_test.accuracy,
                     "test_interval": list(on_test.interval), "truth_records": len(model.unreviewed),
                     "truth": _accuracy(model.classifier, model.unreviewed)})
    return rows


def mean_text(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_loop_arguments(parser, seeds=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = loop_rows(args, run_one, lambda row: (
        f"{row['model']}: validation {row['validation_accuracy']:.3f} ({row['validation_records']}), test "
        f"{row['test_accuracy']:.3f} [{row['test_interval'][0]:.3f}, {row['test_interval'][1]:.3f}] "
        f"({row['test_records']}), truth {row['truth']:.3f} ({row['truth_records']})"))
    lines = [("| set | model | reviewed | validation accuracy (records) | test-set accuracy [95 % interval] | "
             "truth: the other unreviewed records | truth inside the interval |"), "|---|---|---:|---|---|---:|---:|"]
    for run in runs:
        low, high = run["test_interval"]
        lines.append(f"| {run['set']} s{run['seed']} | {run['model']} | {run['reviewed']} | "
                     f"{run['validation_accuracy']:.3f} ({run['validation_records']}) | {run['test_accuracy']:.3f} "
                     f"[{low:.3f}, {high:.3f}] | {run['truth']:.3f} ({run['truth_records']}) | "
                     f"{'yes' if low <= run['truth'] <= high else 'no'} |")
    gaps_validation = [abs(r["validation_accuracy"] - r["truth"]) for r in runs]
    gaps_test = [abs(r["test_accuracy"] - r["truth"]) for r in runs]
    if runs:
        lines += ["", (f"Mean distance from the truth: validation {mean_text(gaps_validation)}, test set "
                      f"{mean_text(gaps_test)}; the truth inside the test set's interval in "
                      f"{sum(r['test_interval'][0] <= r['truth'] <= r['test_interval'][1] for r in runs)} of "
                      f"{len(runs)} runs.")]
    write_results("test_set_estimate", {"runs": runs, "seeds": args.seeds, "pool": args.pool, "test": args.test},
                  lines)


if __name__ == "__main__":
    main()
