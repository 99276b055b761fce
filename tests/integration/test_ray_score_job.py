"""A score run on the Ray engine against the real local Argilla: 2 actors on a local Ray (CPU) score a
dataset made with the SDK, the one pusher writes every record, the actors are kept for the next run of the
same model (and replaced after one of them died), and the local engine with the same options computes exactly
the values the Ray run stored."""

from __future__ import annotations

import shutil

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'argilla-worker[ray]')")

from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.errors import ScoringError
from worker.jobs import Services, record_scorer, reference_label, score_job
from worker.scoring import ScoringInput


def test_the_ray_engine_scores_a_dataset_like_the_local_engine(local_argilla, stack_settings, dataset_name,
                                                             tmp_path, monkeypatch):
    import argilla as rg

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="review")],
                           questions=[rg.LabelQuestion(name="tone", labels=list(LABELS))])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(60)
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}, metadata=None,
                                   suggestions=[rg.Suggestion("tone", e.label, agent="import")] if i % 4 else [])
                         for i, e in enumerate(examples)])

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    options = {
        "argilla": {"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        "scoring": {"samples": 4, "device": "cpu", "push_batch": 16, "engine": "ray"},
        "ray": {"actors": 2, "gpus_per_actor": 0, "chunk_records": 8},
        "registry": {"path": str(tmp_path / "registry")}, "state_dir": str(tmp_path / "state")}
    services = Services(load_settings(**options))
    with services.registry.staging() as staged:
        shutil.copytree(save_tiny_classifier(tmp_path / "model"), staged, dirs_exist_ok=True)
        version = services.registry.add(staged, {}).version
    services.registry.promote(version)

    try:
        first = score_job(services, full=True)
        actors = services._ray_scorer
        assert first.scored == first.pushed == len(examples) and first.failed == 0
        assert first.time_shares()["model"] > 0 and sum(first.time_shares().values()) <= 1  # (waiting for actors)
        assert set(first.actor_shares) == {"records", "model"} and first.actor_shares["model"] > 0  # their own time
        assert sum(first.actor_shares.values()) <= 1 and "(the Ray actors: in the model " in first.summary()
        assert actors is not None and len(actors.actors) == 2
        assert score_job(services, full=True).up_to_date == len(examples)
        assert services._ray_scorer is actors  # the same model: the actors were kept

        ray.kill(actors.actors[0])  # a lost node, the OOM killer: the run fails, the next starts new actors
        later = sentiment_examples(68)[60:]
        dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}) for e in later])
        with pytest.raises(ScoringError, match=r"^a Ray scoring actor failed: "):
            score_job(services)
        after = score_job(services)
        assert after.scored == after.pushed == len(later) and services._ray_scorer is not actors
        assert len(services._ray_scorer.actors) == 2
    finally:
        services.close_ray_scorer()
        ray.shutdown()  # the local Ray the run started (its processes would idle through the other tests)

    pulled = [r for r in services.gateway.pull()]
    assert all(r.metadata["model_version"] == version for r in pulled)
    labelled = [r for r in pulled if r.reference is not None]
    assert len(labelled) == sum(1 for i in range(60) if i % 4) and all("loss" in r.metadata for r in labelled)
    assert len(pulled) == len(examples) + len(later)

    options["scoring"]["engine"] = "local"  # the same options on this process's engine
    local = Services(load_settings(**options))
    scorer = record_scorer(local, local.extra_scorers())
    inputs = [ScoringInput(r.record_id, r.text, reference_label(r), r.text_pair) for r in pulled]
    for record, score in zip(pulled, scorer.score(inputs), strict=True):
        # equal up to the metadata's rounding (4 significant digits: a float32 difference of 1e-10 between the
        # batchings may flip the last digit, as it did for a BALD of 1.0745e-06); different dropout masks differ
        # far more than this
        assert record.metadata["bald"] == pytest.approx(score.bald, rel=1e-3, abs=1e-9), record.record_id
        if record.reference is not None:
            assert record.metadata["loss"] == pytest.approx(score.loss, rel=1e-3, abs=1e-9), record.record_id
