"""The embedded default: the whole loop on the local Argilla, offline data and the offline MiniLM.

1. start the local Argilla; ingest movie-review snippets with a seeded fraction of labels flipped;
2. fine-tune MiniLM briefly on the (noisy) labels and register it as the first model;
3. score every record with MC dropout and push suggestions + metadata; report how many flipped
   labels the loss ranking puts in the top 50;
4. (demo only) act as an annotator: submit the true label of the top records by loss through the
   same endpoint the UI's Submit button calls;
5. retrain on the corrections (+ original labels of the unreviewed records, weighted down), gate
   against the current model, rescore after a promotion, publish the cleaned dataset to a directory;
6. keep running as the worker, so a person can annotate in the UI and watch suggestions refresh.
"""

from __future__ import annotations

import logging
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from worker.config import WorkerSettings, load_settings
from worker.demo_data import SENTIMENT_LABELS, LabelledText, flip_labels, load_movie_snippets
from worker.errors import NothingNewError
from worker.jobs import publish_job, score_job, train_job
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.registry import CURRENT
from worker.services import Services
from worker.training.finetune import fine_tune

logger = logging.getLogger(__name__)

DEMO_DATASET = "movie-reviews-demo"
TOP_K = 50


@dataclass
class DemoSummary:
    url: str
    dataset: str
    records: int
    flipped: int
    model_version: str | None = None
    pushed: int = 0
    flipped_in_top: int | None = None
    top_k: int = TOP_K
    corrections_submitted: int = 0
    flipped_fixed: int = 0
    retrained_version: str | None = None
    promoted: bool | None = None
    gate_reason: str | None = None
    flipped_in_next_top: int | None = None
    published: list[str] = field(default_factory=list)
    work_dir: Path | None = None
    services: Services | None = field(default=None, repr=False)  # to keep running as the worker


def demo_settings(stack: LocalArgillaSettings, dataset_name: str, work_dir: Path, *, mc_samples: int,
                  mc_layers: int | str, epochs: int, learning_rate: float, seed: int,
                  min_steps: int | None = None) -> WorkerSettings:
    training_floor = {} if min_steps is None else {"min_steps": min_steps}
    return load_settings(
        state_dir=str(work_dir / "state"),
        argilla={"api_url": stack.api_url, "api_key": stack.api_key.get_secret_value(), "dataset": dataset_name,
                 "workspace": stack.workspace, "labels": list(SENTIMENT_LABELS)},
        scoring={"samples": mc_samples, "mc_layers": mc_layers, "interval_minutes": 1.0},
        # align_first_token off: the retraining starts from the plain encoder, as the demo's first model (fine-tuned
        # by fine_tune and cached) did, so that the gate compares two trainings of one recipe
        training={"base_model": str(fetch(MINILM_MODEL)), "data": "annotated+original", "epochs": epochs,
                  "patience": 1, "learning_rate": learning_rate, "max_length": 64, "batch_size": 32,
                  "min_annotated": 20, "gate_tolerance": 0.02, "seed": seed, "align_first_token": False,
                  **training_floor},
        registry={"path": str(work_dir / "models")},
        publish={"directory": str(work_dir / "published"), "split": "stratified", "license": "mit"},
        retrain={"min_new_corrections": 25},
    )


def run_demo(
    stack_settings: LocalArgillaSettings,
    *,
    records: int = 2000,
    flip_fraction: float = 0.1,
    seed: int = 0,
    dataset_name: str = DEMO_DATASET,
    score: bool = True,
    epochs: int = 2,
    learning_rate: float = 1e-4,
    mc_samples: int = 20,
    mc_layers: int | str = 1,
    corrections: int = 100,
    work_dir: Path | None = None,
    min_steps: int | None = None,
) -> DemoSummary:
    """Run the demo loop; ``score=False`` stops after ingesting, ``corrections=0`` after the first scoring.
    ``min_steps`` replaces ``training.min_steps`` for the retraining (a small sample's floor of optimizer steps).
    The summary's ``services`` let the caller keep running as the worker (``Runner``)."""
    LocalArgilla(stack_settings).up()
    work_dir = work_dir or cache_root() / "demo" / dataset_name
    truth, noisy, flipped_ids = _demo_records(records, flip_fraction, seed)
    settings = demo_settings(stack_settings, dataset_name, work_dir, mc_samples=mc_samples, mc_layers=mc_layers,
                             epochs=epochs, learning_rate=learning_rate, seed=seed, min_steps=min_steps)
    services = Services(settings)
    services.gateway.ensure_dataset(SENTIMENT_LABELS)
    services.gateway.log_labelled_texts(noisy)
    logger.info("demo dataset %s: %d records, %d labels flipped (seed %d)", dataset_name, len(noisy),
                len(flipped_ids), seed)
    summary = DemoSummary(url=stack_settings.api_url, dataset=dataset_name, records=len(noisy),
                          flipped=len(flipped_ids), work_dir=work_dir, services=services)
    if not score:
        return summary

    summary.model_version = _first_model(services, noisy, flip_fraction, seed, epochs, learning_rate)
    report = score_job(services, full=True)
    summary.pushed = report.pushed + report.unchanged + report.up_to_date
    ranked = _ranked_by_loss(services, key="original_loss")  # stays comparable when a re-run finds reviews
    summary.flipped_in_top = sum(record.record_id in flipped_ids for record in ranked[:TOP_K])
    logger.info("flipped labels among the top %d by loss: %d (%.0f%% of all labels were flipped)", TOP_K,
                summary.flipped_in_top, 100 * flip_fraction)
    if corrections:
        _review_and_retrain(services, summary, ranked[:corrections], truth, flipped_ids, stack_settings)
    return summary


def _demo_records(records: int, flip_fraction: float, seed: int):
    snippets = load_movie_snippets()
    sample = random.Random(seed).sample(snippets, min(records, len(snippets)))
    noisy, flipped_ids = flip_labels(sample, fraction=flip_fraction, labels=SENTIMENT_LABELS, seed=seed)
    return {r.id: r.label for r in sample}, noisy, flipped_ids


def _first_model(services: Services, noisy: list[LabelledText], flip_fraction: float, seed: int, epochs: int,
                 learning_rate: float) -> str:
    """Fine-tune on the noisy original labels (cached) and register it as the first current model."""
    current = services.registry.current()
    if current is not None:
        return current.version
    key = f"minilm-movies-n{len(noisy)}-f{flip_fraction}-s{seed}-e{epochs}-lr{learning_rate:g}"  # same sample
    model_dir = cache_root() / "demo-models" / key
    if not (model_dir / "config.json").exists():
        fine_tune(fetch(MINILM_MODEL), noisy, SENTIMENT_LABELS, model_dir, epochs=epochs, seed=seed,
                  learning_rate=learning_rate)
    with services.registry.staging() as staged:
        shutil.copytree(model_dir, staged, dirs_exist_ok=True)
        entry = services.registry.add(staged, {"labels": list(SENTIMENT_LABELS), "training": {
            "data": "original labels (noisy, not reviewed)", "records": len(noisy), "epochs": epochs}})
    return services.registry.promote(entry.version, reason="first model of the demo").version


def _ranked_by_loss(services: Services, key: str = "loss") -> list:
    """Records by ``loss`` (against the current label) or ``original_loss`` (against the original), worst first."""
    records = [r for r in services.gateway.pull() if key in r.metadata]
    return sorted(records, key=lambda r: r.metadata[key], reverse=True)


def _review_and_retrain(services: Services, summary: DemoSummary, top: list, truth: dict[str, str],
                        flipped_ids: set[str], stack: LocalArgillaSettings) -> None:
    """Scripted annotator: submit the true label of each top record, then retrain, rescore and publish."""
    for record in top:
        submit_response(stack, record.server_id, truth[record.record_id])
    summary.corrections_submitted = len(top)
    summary.flipped_fixed = sum(record.record_id in flipped_ids for record in top)
    logger.info("scripted review: %d records submitted, %d of them had a flipped label", len(top),
                summary.flipped_fixed)
    try:
        outcome = train_job(services)
        summary.retrained_version, summary.promoted = outcome.model.version, outcome.promoted
        summary.gate_reason = outcome.decision.reason
    except NothingNewError as repeat:  # a re-run of the demo: the same reviews, the same settings, its model kept
        repeated = services.registry.get(repeat.version)
        summary.retrained_version, summary.promoted = repeated.version, repeated.status == CURRENT
        summary.gate_reason = str(repeat)
    score_job(services, full=summary.promoted)  # promoted: everything; else the reviewed records (as the worker)
    reviewed = {record.record_id for record in top}
    unreviewed = [r for r in _ranked_by_loss(services) if r.record_id not in reviewed]
    summary.flipped_in_next_top = sum(r.record_id in flipped_ids for r in unreviewed[:TOP_K])
    summary.published = [f"{r.location} ({'published' if r.published else 'unchanged'})"
                         for r in publish_job(services)]


def submit_response(stack: LocalArgillaSettings, record_server_id: str, label: str) -> None:
    """What the UI's Submit button does: POST /api/v1/records/{id}/responses (demo only)."""
    response = httpx.post(f"{stack.api_url}/api/v1/records/{record_server_id}/responses",
                          headers={"X-Argilla-Api-Key": stack.api_key.get_secret_value()},
                          json={"values": {"label": {"value": label}}, "status": "submitted"}, timeout=30)
    if response.status_code == 409:  # already answered by this user in an earlier demo run
        return
    response.raise_for_status()
