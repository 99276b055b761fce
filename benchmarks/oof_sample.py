"""What ``training.max_original`` costs ``score --oof K`` in finding wrong labels: the fold models train on a sample,
every record is still scored by a model that never trained on it.

A seeded sample of a real labelled set with a fraction of its labels flipped (as ``benchmarks/label_errors.py``),
run through the job's own steps without a server: ``labelled_sample`` (the pull: every annotated record — none
here — and a seeded sample of at most ``--caps`` of the others, plus up to 50 of each label), the sample's
stratified folds, the K fold models (offline all-MiniLM-L6-v2), each scoring its fold of the sample and of the
records outside it (``LabelledRecords``). Per cap:

  trained on            examples the fold models train on (K − 1 folds of them each)
  accuracy              the held-out predictions against the true labels, all records
  loss AUROC / P@50     every record ranked by its held-out expected loss (what annotators sort the others by)
  outside AUROC         the same, among the records outside the sample only
  label_issue AUROC     label_issue, among the sampled records (the only ones that get it)
  one key AUROC / P@50  every record ranked by one key: label_issue where the record was sampled, 1 − p̄(y) (the
                        held-out probability of its label) outside the sample

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python -m benchmarks.oof_sample [--dataset movies] [--records 1000]
        [--caps all 400 150] [--folds 3] [--epochs 3] [--seed 0]

Writes benchmarks/results/oof_sample-<dataset>-s<seed>.{json,md}. About 12 minutes on 2 CPU cores at the defaults.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from benchmarks._shared import precision_at, write_results
from benchmarks.label_errors import DATASETS, _noisy_sample
from worker.config import TrainingSettings
from worker.jobs import held_out_probability, labelled_sample
from worker.label_issues import label_issue_scores
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import PulledRecord
from worker.training.data import stratified_folds
from worker.training.kfold import LabelledRecords, MarginAverage, stream_out_of_fold_scores

logger = logging.getLogger("benchmarks.oof_sample")


def run_cap(cap: int | str, noisy, truth: dict[str, str], flipped: set[str], labels, args) -> dict:
    """One cap through the job's steps; the row of the table."""
    settings = TrainingSettings(max_original=cap, epochs=args.epochs, max_length=args.max_length, batch_size=16,
                                learning_rate=args.learning_rate, seed=args.seed, device=args.device, min_steps=0)
    now = datetime.now(UTC)
    records = (PulledRecord(f"srv-{p.id}", p.id, p.text, {"original_label": p.label}, None, (), now) for p in noisy)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        store = LabelledRecords(Path(work) / "labelled.sqlite", k=args.folds, seed=args.seed)
        sample, _ = labelled_sample(records, labels, store, settings)
        folds = stratified_folds(sample, args.folds, seed=args.seed)
        store.assign({example.id: fold for example, fold in zip(sample, folds, strict=True)})
        margins = MarginAverage()
        scores = {s.record_id: s for s in stream_out_of_fold_scores(
            sample, labels, fetch(MINILM_MODEL), settings, Path(work) / "folds", k=args.folds, samples=args.samples,
            folds=folds, held_out=store.fold, on_trained=margins.add)}
        store.close()
    sampled = {example.id for example in sample}
    loss = {i: s.expected_loss for i, s in scores.items()}
    outside = [i for i in loss if i not in sampled]
    aum = margins.means()
    inside = sorted(sampled)
    issue = label_issue_scores(np.array([held_out_probability(scores[i]) for i in inside]),
                               np.array([aum[i] for i in inside]))
    one_key = {i: 1 - held_out_probability(scores[i]) for i in outside}  # no margins: p̄(y) alone
    one_key.update(zip(inside, issue.tolist(), strict=True))
    return {"cap": cap, "trained_on": len(sample), "records": len(scores),
            "one_key_auroc": _auroc(one_key, flipped),
            "one_key_p50": precision_at(sorted(one_key, key=one_key.get, reverse=True), flipped, 50),
            "accuracy": float(np.mean([scores[i].predicted_label == truth[i] for i in scores])),
            "loss_auroc": _auroc(loss, flipped),
            "loss_p50": precision_at(sorted(loss, key=loss.get, reverse=True), flipped, 50),
            "outside_auroc": _auroc({i: loss[i] for i in outside}, flipped) if outside else None,
            "label_issue_auroc": _auroc(dict(zip(inside, issue.tolist(), strict=True)), flipped),
            "seconds": time.perf_counter() - started}


def _auroc(scores: dict[str, float], flipped: set[str]) -> float | None:
    truth = [i in flipped for i in scores]
    return float(roc_auc_score(truth, list(scores.values()))) if 0 < sum(truth) < len(truth) else None


def _cell(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="movies")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--caps", nargs="+", default=["all", "400", "150"])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_logging("INFO")
    posts, noisy, flipped, labels = _noisy_sample(args.dataset, args.records, args.flip, args.seed)
    truth = {p.id: p.label for p in posts}
    rows = []
    for cap in args.caps:
        rows.append(run_cap(cap if cap == "all" else int(cap), noisy, truth, flipped, labels, args))
        logger.info("%s", rows[-1])
    lines = [(f"{DATASETS[args.dataset]}, {len(posts)} records, {len(flipped)} wrong labels, K = {args.folds}, "
             f"{args.epochs} epochs, max {args.max_length} tokens, T = {args.samples}, seed {args.seed}"), "",
             ("| max_original | trained on | accuracy | loss AUROC | loss P@50 | outside AUROC | label_issue AUROC "
             "(sampled) | one key AUROC | one key P@50 | s |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['cap']} | {row['trained_on']} | {row['accuracy']:.3f} | {_cell(row['loss_auroc'])} | "
              f"{row['loss_p50']:.2f} | {_cell(row['outside_auroc'])} | {_cell(row['label_issue_auroc'])} | "
              f"{_cell(row['one_key_auroc'])} | {row['one_key_p50']:.2f} | {row['seconds']:.0f} |" for row in rows]
    write_results(f"oof_sample-{args.dataset}-s{args.seed}", {"args": vars(args), "rows": rows}, lines)


if __name__ == "__main__":
    main()
