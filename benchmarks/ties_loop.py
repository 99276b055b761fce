"""Ties of two votes decided in the loop: the model that breaks them is the loop's own, trained on the records it
looks at.

``benchmarks/ties.py`` decided ties with an independent model (fine-tuned on 1,200 other snippets). In the worker the
view stored on a reviewed record is the current model's, and after a retrain the full rescore writes it on the very
records that model trained on: an in-sample view, which echoes the label the record was trained with (a tie decided
at the previous training stays decided that way), and which makes the model look as reliable as the votes it learnt
— its weight and temperature in the crowd estimate are fitted on those records. This replays the loop: reviews come
in rounds (50 → 100 → 200 → 400 records, two votes each, the votes fixed per record), after each round a model is
trained on what the arm hands on, and the next round's ties are decided with the view that model stored on every
reviewed record.

  keep                  a tie gives no label
  annotators only       the tie goes to the voter the annotators' weights favour (no view)
  loop view             the previous round's model's view on every reviewed record (what the worker does)
  fresh view            that view only on records reviewed since that model trained (its out-of-sample answers); the
                        records it trained on carry none, so neither their ties nor the model's weight and temperature
                        read an echo of their own training label

The first round has no model yet: every arm but ``keep`` decides its ties by the annotators' weights there (as the
worker does). The simulation and the trained models are ``benchmarks/ties.py``'s (the same pools: the first
``reviewed`` records of one permutation a seed); each model is tested on the same 2,000 held-out snippets against
the truth.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ties_loop                 # rounds 50 100 200 400, 3 seeds
    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ties_loop --seeds 0 --rounds 150 400

Writes benchmarks/results/ties_loop.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import replace

import numpy as np

from benchmarks._shared import write_results
from benchmarks.multi_annotator import _pulled, simulate
from benchmarks.ties import _estimate, _share, _train_and_test, mean_sd, pool_of, split_snippets
from worker.crowd import verdict
from worker.demo_data import SENTIMENT_LABELS
from worker.logging_setup import configure_logging
from worker.records import consensus
from worker.training.data import examples_from_records
from worker.training.evaluate import predict_probabilities

logger = logging.getLogger("benchmarks.ties_loop")

ARMS = ("keep", "annotators only", "loop view", "fresh view")
VIEWED = ("loop view", "fresh view")  # the arms whose ties a view decides from the second round on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    configure_logging("INFO")
    started = time.perf_counter()
    ratings, _, held_out, rest = split_snippets()  # ties.py's split: the same held-out snippets and pools
    runs = []
    for seed in args.seeds:
        pool = pool_of(rest, seed, max(args.rounds))
        runs.extend(run_loop(pool, ratings, held_out, sorted(args.rounds), seed, args.device))
    lines = report(runs, args, time.perf_counter() - started)
    write_results("ties_loop", {"args": vars(args), "runs": runs}, lines)


def run_loop(pool, ratings, held_out, rounds: list[int], seed: int, device: str) -> list[dict]:
    """Every arm through the rounds of one seed's pool; each arm's model of a round gives the next round its view."""
    votes = simulate(pool, ratings, votes=2, seed=seed)  # sequential per record: a prefix's votes are the same
    truth = {r.id: r.label for r in pool}
    views: dict[str, tuple[np.ndarray, int] | None] = {arm: None for arm in VIEWED}  # [N, 2] and records trained on
    out: list[dict] = []
    annotators_view = None  # the annotators-only arm's model's view of this round [N, 2]
    stored, trained_on = None, 0  # the fresh-view arm's estimate kept at the last training, and its round
    for reviewed in rounds:
        reviewed_pool = pool[:reviewed]
        no_view = [replace(_pulled(r.id, votes[r.id], np.array([0.5, 0.5])), metadata={}, text=r.text)
                   for r in reviewed_pool]
        tied = {record.record_id for record in no_view if consensus(record).label is None}
        arms = {"keep": no_view, "annotators only": no_view}
        for arm in VIEWED:
            arms[arm] = no_view if views[arm] is None else _viewed(reviewed_pool, votes, *views[arm],
                                                                  fresh_only=arm == "fresh view")
        if stored is not None and views["fresh view"] is not None:
            out.append(_between_trainings(arms["fresh view"][trained_on:], stored, tied, truth, seed, reviewed))
        stored, trained_on = _estimate(arms["fresh view"]), reviewed  # what the worker keeps until the next one
        for arm, records in arms.items():
            if arm in VIEWED and views[arm] is None:  # no model before this round: the annotators-only arm's run
                row = dict(out[-1], arm=arm)
                views[arm] = (annotators_view, reviewed)
                logger.info("%s", row)
                out.append(row)
                continue
            crowd = _estimate(records)
            if arm != "keep":
                crowd = replace(crowd, resolve_ties=True)
            examples, _, left_out = examples_from_records(records, SENTIMENT_LABELS, crowd=crowd)
            decided_ties = [e for e in examples if e.id in tied]
            row = {"arm": arm, "reviewed": reviewed, "seed": seed, "ties": len(tied), "examples": len(examples),
                   "left_out": len(left_out), "model_weight": crowd.model_weight,
                   "model_temperature": crowd.model_temperature, "label_accuracy": _share(examples, truth),
                   "tie_accuracy": _share(decided_ties, truth) if decided_ties else None}
            row.update(_train_and_test(examples, held_out, seed, device, keep_model=arm != "keep"))
            if arm != "keep":  # the full rescore: the model's view on every record, the ones it trained on too
                view = predict_probabilities(row.pop("model"), [r.text for r in pool], samples=1).deterministic
                if arm in VIEWED:
                    views[arm] = (view, reviewed)
                else:
                    annotators_view = view
            logger.info("%s", row)
            out.append(row)
    return out


def _between_trainings(since, stored, tied: set[str], truth: dict[str, str], seed: int, reviewed: int) -> dict:
    """The ties reviewed since the last training (``since``: they carry that model's view, which it was not taught),
    decided as score runs and publishing decide them until the next training: with the estimate ``stored`` then.
    Three ways — the annotators' weights alone; the view at the stored model weight even when it was not measured
    (1, what the worker did); the view at :meth:`~worker.crowd.CrowdModel.deciding`'s weight (now). An undecided
    tie counts half."""
    resolving = replace(stored, resolve_ties=True)
    ways = {"annotators only": (lambda r: verdict(replace(r, metadata={}), resolving)),
            "unmeasured weight counted": (lambda r: verdict(r, replace(resolving, model_records=max(
                1, resolving.model_records or 0)))),
            "deciding weight": (lambda r: verdict(r, resolving))}
    ties = [record for record in since if record.record_id in tied]
    row = {"arm": "between trainings", "reviewed": reviewed, "seed": seed, "ties": len(ties),
           "model_weight": stored.model_weight, "model_measured": stored.model_measured}
    for way, decide in ways.items():
        labels = [decide(record).label for record in ties]
        row[way] = (sum(1.0 if label == truth[r.record_id] else 0.5 if label is None else 0.0
                        for r, label in zip(ties, labels, strict=True)) / len(ties)) if ties else None
    logger.info("%s", row)
    return row


def _viewed(reviewed_pool, votes, view: np.ndarray, trained_on: int, *, fresh_only: bool):
    """The round's reviewed records carrying the stored view [N, 2] (rows in pool order); with ``fresh_only`` the
    first ``trained_on`` records (the ones that model trained on) carry none."""
    records = []
    for index, snippet in enumerate(reviewed_pool):
        record = replace(_pulled(snippet.id, votes[snippet.id], view[index]), text=snippet.text)
        if fresh_only and index < trained_on:
            record = replace(record, metadata={})
        records.append(record)
    return records


def report(runs: list[dict], args, seconds: float) -> list[str]:
    lines = [(f"# Ties of two votes decided in the loop (`benchmarks/ties_loop.py`, seeds {args.seeds}, "
              f"{seconds / 60:.0f} min)"), "",
             ("| reviewed | arm | ties | examples | ties decided right | model weight | T | held-out accuracy | "
              "macro-F1 | ECE |"), "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for reviewed in sorted(args.rounds):
        for arm in ARMS:
            rows = [r for r in runs if r["reviewed"] == reviewed and r["arm"] == arm]
            lines.append(f"| {reviewed} | {arm} | {mean_sd(rows, 'ties', 0)} | {mean_sd(rows, 'examples', 0)} | "
                         f"{mean_sd(rows, 'tie_accuracy')} | {mean_sd(rows, 'model_weight', 2)} | "
                         f"{mean_sd(rows, 'model_temperature', 2)} | {mean_sd(rows, 'accuracy')} | "
                         f"{mean_sd(rows, 'macro_f1')} | {mean_sd(rows, 'ece')} |")
    lines += ["", ("Ties reviewed since the last training, decided with the estimate kept at it (score runs and "
                   "publishing until the next training; an undecided tie counts half):"), "",
              ("| reviewed | ties | stored model weight | measured | annotators only | unmeasured weight counted | "
               "deciding weight |"), "|---:|---:|---:|---|---:|---:|---:|"]
    for reviewed in sorted(args.rounds):
        rows = [r for r in runs if r["reviewed"] == reviewed and r["arm"] == "between trainings"]
        if rows:
            measured = sorted({str(r["model_measured"]).lower() for r in rows})
            lines.append(f"| {reviewed} | {mean_sd(rows, 'ties', 0)} | {mean_sd(rows, 'model_weight', 2)} | "
                         f"{'/'.join(measured)} | {mean_sd(rows, 'annotators only')} | "
                         f"{mean_sd(rows, 'unmeasured weight counted')} | {mean_sd(rows, 'deciding weight')} |")
    return lines


if __name__ == "__main__":
    main()
