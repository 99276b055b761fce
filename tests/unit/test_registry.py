"""The model registry: gate logic, atomic promotion (simulated crashes), rollback, retention, retraining."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.tiny_models import save_tiny_classifier, save_tiny_encoder
from tests.training_data import LABELS, sentiment_examples
from worker.errors import DataError, RegistryError, ScoringError
from worker.registry import CURRENT, REJECTED, RETIRED, ModelRegistry, gate
from worker.scoring import read_head
from worker.training.data import build_training_set
from worker.training.job import retrain, settings_digest, trained_before
from worker.training.register import question_labels, register_model
from worker.training.trainer import TrainingSettings


def _add(registry, source, **metrics):
    with registry.staging() as staged:
        shutil.copytree(source, staged, dirs_exist_ok=True)
        return registry.add(staged, metrics)


def test_the_gate_passes_within_tolerance_and_rejects_beyond_it():
    assert gate(0.80, None, 0.01).passed
    assert gate(0.80, 0.805, 0.01).passed
    assert gate(0.90, 0.80, 0.0).passed
    decision = gate(0.78, 0.80, 0.01)
    assert not decision.passed
    assert "0.7800 is 0.0200 below the current model's 0.8000 (tolerance 0.01)" in decision.reason


def test_versions_promote_reject_and_roll_back(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    first, second, third = (_add(registry, tiny_model_dir, note=n) for n in "abc")
    assert [v.version for v in registry.versions()] == ["v0001", "v0002", "v0003"]
    assert registry.current() is None and first.status == "candidate" and third.metrics["note"] == "c"

    registry.promote(first.version)
    registry.promote(second.version)
    registry.reject(third.version, "worse")

    assert registry.current().version == "v0002"
    assert registry.get("v0001").status == RETIRED
    assert registry.get("v0003").status == REJECTED and registry.get("v0003").metrics["rejection_reason"] == "worse"
    assert registry.get("v0002").metrics["parent"] is None  # added while nothing was current
    assert _add(registry, tiny_model_dir).metrics["parent"] == "v0002"
    assert os.readlink(tmp_path / "registry" / "current") == "versions/v0002"

    assert registry.rollback().version == "v0001"
    assert registry.current().version == "v0001" and registry.get("v0002").status == RETIRED
    registry.reject("v0004", "unused")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    with pytest.raises(RegistryError, match="no model version 'v0042'"):
        registry.get("v0042")


@pytest.mark.parametrize("name", ["", ".", "..", "../versions", "v0001/", "/tmp"])
def test_a_name_that_is_not_a_versions_plain_name_is_no_version(tiny_model_dir, tmp_path, name):
    """`models promote ''` once made the versions directory itself current (its path is versions/ + '') and wrote a
    metrics file into it: a name typed by a person, or read from a record's metadata, is only ever a plain name."""
    registry = ModelRegistry(tmp_path / "registry")
    first = _add(registry, tiny_model_dir)
    registry.promote(first.version)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))

    for action in (registry.promote, registry.get, registry.update_metrics):
        with pytest.raises(RegistryError, match=f"no model version {name!r} in .* \\(known: \\['v0001'\\]\\)"):
            action(name)

    assert registry.taught(name) is None and registry.current().version == "v0001"
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before


def test_a_crash_mid_promotion_leaves_the_current_model_in_place(tiny_model_dir, tmp_path, monkeypatch):
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir).version)
    candidate = _add(registry, tiny_model_dir)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed during the switch")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        registry.promote(candidate.version)
    monkeypatch.undo()

    reopened = ModelRegistry(tmp_path / "registry")
    assert reopened.current().version == "v0001" and reopened.current().status == CURRENT
    assert reopened.get(candidate.version).status == "candidate"
    assert not list((tmp_path / "registry").glob(".current-*")), "the temporary link was left behind"
    assert (reopened.current().path / "config.json").exists()


def test_a_crash_after_the_switch_shows_exactly_one_current_version_the_linked_one(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir).version)
    rejected = _add(registry, tiny_model_dir)
    registry.reject(rejected.version, "worse")

    registry._switch_current(rejected.version)  # killed before the stored statuses were updated

    statuses = {entry.version: entry.status for entry in ModelRegistry(tmp_path / "registry").versions()}
    assert statuses == {"v0001": RETIRED, "v0002": CURRENT}
    assert registry.current().version == "v0002" and registry.current().status == CURRENT


def test_a_crash_during_training_leaves_no_version_and_the_current_untouched(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir).version)

    with pytest.raises(RuntimeError), registry.staging() as staged:
        (staged / "model.safetensors").write_bytes(b"half written")
        raise RuntimeError("out of memory in epoch 2")

    assert [v.version for v in registry.versions()] == ["v0001"]
    assert registry.current().version == "v0001"
    assert not any((tmp_path / "registry" / "staging").iterdir())


_HOLD_STAGING = """
import sys, time
from pathlib import Path
from worker.registry import ModelRegistry
with ModelRegistry(Path(sys.argv[1])).staging() as staged:
    (staged / "model.safetensors").write_bytes(b"x" * 100_000)
    print(staged, flush=True)
    time.sleep(600)
"""


def test_a_killed_trainers_staging_directory_is_removed_on_open_and_a_running_ones_never(tmp_path, caplog):
    """A training killed mid-way (kill -9, the OOM killer: nothing of its own runs) leaves its staging directory; the
    next registry to open removes it. A training still running keeps its directory, whoever opens the registry —
    this same process too (the worker's own retrain while it opens the registry again), which the pid-named staging
    removed, and a process in another container, whose pid numbers mean nothing here."""
    root = tmp_path / "registry"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_STAGING, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        with holder.stdout:
            held = Path(holder.stdout.readline().strip())
        with ModelRegistry(root).staging() as own:
            (own / "config.json").write_text("{}")
            ModelRegistry(root)
            assert (own / "config.json").exists() and (held / "model.safetensors").exists()
        assert not own.parent.exists()  # its block ended: nothing of it is left
    finally:
        holder.kill()
        holder.wait()
    assert held.exists()  # nothing runs in a process killed with SIGKILL
    with caplog.at_level(logging.WARNING, logger="worker.files"):
        ModelRegistry(root)
    assert not held.parent.exists() and not any(root.joinpath("staging").iterdir())
    assert "(0.1 MB): what a job left when its process ended before it finished" in caplog.text


def test_leftovers_of_an_older_worker_and_of_a_crashed_promotion_are_removed_on_open(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    orphan = registry.staging_root / f"999999999-{uuid.uuid4().hex}"  # named as before the lock; a pid not running
    orphan.mkdir(parents=True)
    theirs = registry.staging_root / "notes"  # not the worker's: kept
    theirs.mkdir()
    crashed, promoting = (registry.root / f".current-1-{uuid.uuid4().hex}" for _ in range(2))
    for link in (crashed, promoting):
        os.symlink("versions/v0001", link)
    an_hour_ago = time.time() - 3600
    os.utime(crashed, (an_hour_ago, an_hour_ago), follow_symlinks=False)

    ModelRegistry(tmp_path / "registry")

    assert not orphan.exists() and theirs.exists()
    assert not crashed.is_symlink() and promoting.is_symlink()  # a link made a moment ago is another's promotion


def test_only_the_last_versions_are_kept_but_never_the_current_or_its_rollback_target(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry", keep=2)
    registry.promote(_add(registry, tiny_model_dir).version)
    for _ in range(3):
        registry.reject(_add(registry, tiny_model_dir).version, "worse")
    registry.promote(_add(registry, tiny_model_dir).version)

    assert [v.version for v in registry.versions()] == ["v0001", "v0004", "v0005"]
    assert registry.rollback().version == "v0001"


def test_rejected_versions_are_pruned_without_a_promotion_and_a_registered_one_waiting_is_kept(tiny_model_dir,
                                                                                                tmp_path):
    """A schedule whose retraining the gate keeps rejecting adds no model to the disk past ``keep``; a model a team
    registered that waits for `models promote` is theirs to decide on, however old."""
    registry = ModelRegistry(tmp_path / "registry", keep=2)
    registry.promote(_add(registry, tiny_model_dir).version)
    waiting = _add(registry, tiny_model_dir, registered_from="their-model").version
    for _ in range(4):
        registry.reject(_add(registry, tiny_model_dir).version, "worse")

    assert [v.version for v in registry.versions()] == ["v0001", waiting, "v0005", "v0006"]
    registry.promote(_add(registry, tiny_model_dir).version)  # waiting still: still kept
    assert [v.version for v in registry.versions()] == ["v0001", waiting, "v0006", "v0007"]


def test_retraining_registers_a_model_with_its_metrics_and_gates_it(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    training_set = build_training_set(sentiment_examples(40), [], LABELS, min_annotated=10)
    settings = TrainingSettings(base_model=str(tiny_model_dir), epochs=8, patience=8, batch_size=4, learning_rate=3e-3,
                                max_length=32, device="cpu")

    first = retrain(training_set, registry, settings, mc_samples=4)

    assert first.promoted and first.decision.reason == "no current model"
    metrics = json.loads((first.model.path / "metrics.json").read_text())
    assert metrics["status"] == CURRENT and metrics["training"]["fingerprint"] == training_set.fingerprint
    assert set(metrics["validation"]) >= {"accuracy", "macro_f1", "ece_deterministic", "ece_mc"}
    for name in ("reliability.png", "ece_vs_T.png", "confusion_matrix.png", "report.json"):
        assert (first.model.path / "calibration" / name).stat().st_size > 0
    assert (first.model.path / "validation.jsonl").read_text().count("\n") == len(training_set.validation)

    strict = settings.model_copy(update={"gate_tolerance": 0.0, "epochs": 1, "learning_rate": 1e-9})
    second = retrain(training_set, registry, strict, mc_samples=4)  # barely trained: worse than the current model

    gate_record = second.model.metrics["gate"]
    assert gate_record["current_version"] == "v0001"
    assert gate_record["current_macro_f1_same_validation"] == pytest.approx(metrics["validation"]["macro_f1"])
    assert metrics["validation"]["macro_f1"] >= 0.9, "the tiny model should learn this easy task"
    assert not second.promoted and second.model.status == REJECTED
    assert "below the current model's" in second.model.metrics["rejection_reason"]
    assert registry.current().version == "v0001"

    # training again would repeat v0002 (same data, same settings, v0001 still current); other settings or other
    # data would not; where the training runs is no setting of the model
    assert trained_before(registry, training_set, settings_digest(strict, None)).version == "v0002"
    assert trained_before(registry, training_set, settings_digest(settings, None)) is None
    assert settings_digest(strict.model_copy(update={"device": "cuda", "micro_batch_size": 2}), None) \
        == settings_digest(strict, None)
    assert settings_digest(strict, {"samples": 20}) != settings_digest(strict, {"samples": 10})
    other = build_training_set(sentiment_examples(41), [], LABELS, min_annotated=10)
    assert trained_before(registry, other, settings_digest(strict, None)) is None
    registry.promote("v0002")  # made current by hand: v0002 is the current model, still a repeat
    assert trained_before(registry, training_set, settings_digest(strict, None)).version == "v0002"


def test_a_stop_request_abandons_training_and_keeps_the_current_model(tiny_model_dir, tmp_path):
    import threading

    from worker.errors import Interrupted

    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir).version)
    training_set = build_training_set(sentiment_examples(40), [], LABELS, min_annotated=10)
    settings = TrainingSettings(base_model=str(tiny_model_dir), epochs=5, batch_size=8, max_length=32, device="cpu")
    stop = threading.Event()
    stop.set()

    with pytest.raises(Interrupted, match=r"at step 1 of \d+ of epoch 1 of \d+; the current model is unchanged"):
        retrain(training_set, registry, settings, mc_samples=2, stop=stop)

    assert [v.version for v in registry.versions()] == ["v0001"] and registry.current().version == "v0001"
    assert not any((tmp_path / "registry" / "staging").iterdir())


def test_a_new_version_numbers_past_the_versions_a_dataset_already_holds(tmp_path):
    registry = ModelRegistry(tmp_path / "fresh")
    assert registry.next_version() == "v0001"
    registry.avoid({"v0003", "v0007-oof5", "base-oof3", "gpt-labeller", "v12x"})
    assert registry.next_version() == "v0008"
    registry.avoid({"v0002"})  # never lowers it
    assert registry.next_version() == "v0008"


def test_a_number_another_process_registers_first_is_skipped_not_an_error(tiny_model_dir, tmp_path, monkeypatch):
    """The service and a `train` from the command line finish at once: both read v0001 as the next number; the
    one that renames second registers as v0002 instead of failing after its training."""
    registry = ModelRegistry(tmp_path / "registry")
    other = ModelRegistry(tmp_path / "registry")
    real_next = ModelRegistry.next_version
    raced: list = []

    def next_version_while_another_registers(self):
        name = real_next(self)
        if self is registry and not raced:  # the other process claims the same number right after this one read it
            raced.append(None)
            raced[0] = _add(other, tiny_model_dir, note="theirs")
        return name

    monkeypatch.setattr(ModelRegistry, "next_version", next_version_while_another_registers)
    ours = _add(registry, tiny_model_dir, note="ours")

    assert [v.version for v in raced] == ["v0001"] and ours.version == "v0002"
    assert registry.get("v0001").metrics["note"] == "theirs" and ours.metrics["note"] == "ours"
    assert ours.metrics["version"] == "v0002"
    with pytest.raises(RegistryError, match="model version v0002 already exists"), registry.staging() as staged:
        shutil.copytree(tiny_model_dir, staged, dirs_exist_ok=True)
        registry.add(staged, {}, version="v0002")


def test_a_base_model_without_a_trained_head_is_refused_naming_the_missing_weights(tmp_path):
    """transformers would load it with a classification head started at random (a warning only). Its own load
    report (a table of the missing weights) is not shown above the worker's one-line error."""
    import logging

    registry = ModelRegistry(tmp_path / "registry")
    base = save_tiny_encoder(tmp_path / "encoder")
    shown: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = shown.append  # type: ignore[method-assign]
    logging.getLogger("transformers").addHandler(handler)

    try:
        with pytest.raises(ScoringError) as refused:
            register_model(str(base), registry, ["negative", "positive"],
                           label_map={"LABEL_0": "negative", "LABEL_1": "positive"})
    finally:
        logging.getLogger("transformers").removeHandler(handler)

    assert not [record for record in shown if "classifier" in record.getMessage()], shown

    assert "is not a trained sequence classifier: its checkpoint has no classifier.bias, classifier.weight" in str(
        refused.value)
    assert f"set training.base_model = {str(base)!r}" in str(refused.value)
    assert registry.versions() == [] and registry.current() is None
    trained = register_model(str(save_tiny_classifier(tmp_path / "trained")), registry, ["negative", "positive"])
    assert trained.version == "v0001" and registry.current().version == "v0001"


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_a_model_whose_weights_are_cut_short_is_one_line_and_registers_nothing(tmp_path, weights):
    """A copy interrupted mid-file, a disk error: safetensors' and torch's own errors were a traceback."""
    registry = ModelRegistry(tmp_path / "registry")
    model = save_tiny_classifier(tmp_path / "model")
    for saved in model.glob("*.safetensors"):
        saved.unlink()
    (model / weights).write_bytes(b"cut short")

    with pytest.raises(ScoringError, match=r"cannot load a sequence classifier from '.*model': its weights cannot be "
                                           r"read \(\w+"):
        register_model(str(model), registry, ["negative", "positive"])
    assert registry.versions() == [] and registry.current() is None


def test_a_setfit_model_is_refused_saying_to_train_from_its_encoder(tmp_path):
    """A team's SetFit model: a sentence encoder with a scikit-learn head beside it (model_head.pkl)."""
    setfit = save_tiny_encoder(tmp_path / "their-setfit")
    (setfit / "model_head.pkl").write_bytes(b"not read")
    (setfit / "config_setfit.json").write_text(json.dumps({"labels": ["negative", "positive"]}))
    registry = ModelRegistry(tmp_path / "registry")

    with pytest.raises(ScoringError) as refused:
        register_model(str(setfit), registry, ["negative", "positive"])

    assert f"{str(setfit)!r} is a SetFit model: its classifier is a scikit-learn head" in str(refused.value)
    assert f"set training.base_model = {str(setfit)!r} and run `argilla-worker train`" in str(refused.value)
    assert registry.versions() == []


def _with_problem_type(directory, problem_type):
    config = json.loads((directory / "config.json").read_text())
    config["problem_type"] = problem_type
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_a_model_is_registered_as_the_questions_kind_and_one_declaring_the_other_kind_is_refused(tmp_path):
    """Many multi-label checkpoints declare no problem_type: read as softmax, their label sets were refused at
    scoring. One that declares the other kind is refused when registered, before anything scores with it."""
    tags = ["billing", "bug", "feature"]
    registry = ModelRegistry(tmp_path / "registry")
    undeclared = save_tiny_classifier(tmp_path / "undeclared", labels=("BILLING", "bug", "ft"))
    (undeclared / "thresholds.json").write_text(json.dumps({"BILLING": 0.3, "ft": 0.7}))  # tuned where it was trained

    entry = register_model(str(undeclared), registry, tags, multi_label=True, label_map={"ft": "feature"})

    head = read_head(entry.path, entry.version)
    assert head.multi_label and dict(zip(head.labels, head.thresholds)) == {"billing": 0.3, "bug": 0.5,
                                                                            "feature": 0.7}
    declared_single = _with_problem_type(save_tiny_classifier(tmp_path / "single", labels=tuple(tags)),
                                         "single_label_classification")
    with pytest.raises(DataError, match=r"predicts one label a record \(config.problem_type = "
                                        r"'single_label_classification'\) but the dataset's question takes label sets"):
        register_model(str(declared_single), registry, tags, multi_label=True)
    declared_multi = _with_problem_type(save_tiny_classifier(tmp_path / "multi"), "multi_label_classification")
    with pytest.raises(DataError, match="predicts label sets .* but the dataset's question takes one label"):
        register_model(str(declared_multi), registry, ["negative", "positive"])
    assert [version.version for version in registry.versions()] == [entry.version]
    single = register_model(str(save_tiny_classifier(tmp_path / "plain")), ModelRegistry(tmp_path / "other"),
                            ["negative", "positive"])
    assert not read_head(single.path, single.version).multi_label


def test_the_models_labels_are_read_as_the_questions_through_titles_and_letter_case(tmp_path):
    """distilbert-sst2 says NEGATIVE / POSITIVE; a model trained on the labels the UI shows says their titles."""
    values, titles = ["neg", "pos", "neutral"], {"neg": "Negative 👎", "pos": "Positive 👍"}
    assert question_labels(["Negative 👎", "POSITIVE 👍", "NEUTRAL"], values, {}, titles) == ["neg", "pos", "neutral"]
    assert question_labels(["LABEL_0", "pos"], values, {"LABEL_0": "neutral"}, titles) == ["neutral", "pos"]
    assert question_labels(["Pos"], ["pos", "POS"], {}, {}) == ["Pos"]  # two readings: left for --label-map

    registry = ModelRegistry(tmp_path / "registry")
    shouting = save_tiny_classifier(tmp_path / "sst2-like", labels=("NEGATIVE", "POSITIVE"))
    entry = register_model(str(shouting), registry, ["negative", "positive"])
    assert read_head(entry.path, entry.version).labels == ("negative", "positive")
    assert entry.metrics["label_map"] == {"NEGATIVE": "negative", "POSITIVE": "positive"}
    with pytest.raises(DataError, match=r"the model's labels \['negative', 'negative'\]"):
        register_model(str(save_tiny_classifier(tmp_path / "twice", labels=("Negative", "NEGATIVE"))), registry,
                       ["negative", "positive"])


def test_status_without_a_running_worker_shows_the_registrys_current_model(tiny_model_dir, tmp_path, monkeypatch):
    """A team that trains and scores from the command line, no worker running: `status` says so (exit 1) and shows
    the model their commands use; with no registry yet it creates none."""
    from click.testing import CliRunner

    from worker.cli import cli

    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ARGILLA_WORKER_REGISTRY__PATH", str(tmp_path / "registry"))
    nothing = CliRunner().invoke(cli, ["status"])
    assert nothing.exit_code == 1 and "model: none" in nothing.output, nothing.output
    assert not (tmp_path / "registry").exists()

    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir, validation={"macro_f1": 0.8125, "records": 40,
                                                                "ece_deterministic": 0.05, "ece_mc": 0.04}).version)
    shown = CliRunner().invoke(cli, ["status"])
    assert shown.exit_code == 1
    assert shown.output.splitlines()[0].startswith("no worker is running: none has run with state directory")
    assert "model: v0001 (macro-F1 0.8125, ECE det 0.0500, MC 0.0400; 40 validation records" in shown.output


def test_labels_that_differ_by_more_than_letter_case_are_refused_with_a_mapping_guessed_from_their_spelling(tmp_path):
    from worker.training.register import guessed_label_map, register_model

    registry = ModelRegistry(tmp_path / "registry")
    theirs = save_tiny_classifier(tmp_path / "theirs", labels=("NEG", "POS"))

    with pytest.raises(DataError) as refused:
        register_model(str(theirs), registry, ["negative", "positive"])

    assert "differ from the dataset question's labels ['negative', 'positive']" in str(refused.value)
    assert "(by their spelling: --label-map NEG=negative,POS=positive — check it" in str(refused.value)
    assert registry.versions() == []
    assert guessed_label_map(["LABEL_0", "LABEL_1"], ["LABEL_0", "LABEL_1"], ["negative", "positive"]) == {}
    assert guessed_label_map(["pos", "p"], ["pos", "p"], ["positive", "neutral"]) == {}  # "p": no single match left
    assert guessed_label_map(["Spam", "ok"], ["spam", "ok"], ["spam", "okay"]) == {"ok": "okay"}


def test_a_model_for_another_number_of_labels_is_refused_with_the_way_to_fine_tune_it_for_the_question(tmp_path):
    """An SST-2 model (2 labels) for a question of 3: no --label-map can make it answer, so the error does not offer
    one — it says to train from it (the trainer keeps its encoder and puts a new head on it)."""
    from worker.training.register import register_model

    registry = ModelRegistry(tmp_path / "registry")
    theirs = save_tiny_classifier(tmp_path / "sst2", labels=("NEGATIVE", "POSITIVE"))
    with pytest.raises(DataError) as refused:
        register_model(str(theirs), registry, ["negative", "neutral", "positive"])
    assert str(refused.value) == (
        f"the model predicts 2 labels ['NEGATIVE', 'POSITIVE'], the dataset question has 3 ['negative', 'neutral', "
        f"'positive']: no --label-map makes it answer this question; fine-tune it for these labels instead — "
        f"training.base_model = {str(theirs)!r}, then `argilla-worker train` (its encoder is kept, the "
        f"classification head is new)")
    assert registry.versions() == []


def test_what_each_version_was_taught_is_read_from_its_directory(tiny_model_dir, tmp_path):
    from worker.registry import write_taught_ids

    registry = ModelRegistry(tmp_path / "registry")
    brought = _add(registry, tiny_model_dir, registered_from="/models/team")  # a team's model: taught none here
    unknown = _add(registry, tiny_model_dir)  # trained before the worker kept what a model was taught
    with registry.staging() as staged:
        shutil.copytree(tiny_model_dir, staged, dirs_exist_ok=True)
        write_taught_ids(staged, ["r2", "r1"])
        trained = registry.add(staged, {})

    assert registry.taught(brought.version) == frozenset()
    assert registry.taught(unknown.version) is None
    assert registry.taught(trained.version) == {"r1", "r2"}
    assert registry.taught("v0042") is None  # a version the registry no longer keeps
    assert registry.taught("../registry/versions/v0003") is None  # a name from the records' metadata, never a path
    assert registry.taught("v0003-oof5") is None  # an out-of-fold run's values


def test_a_versions_metrics_file_cut_short_is_one_line_naming_it_in_models_list(tiny_model_dir, tmp_path,
                                                                               monkeypatch):
    from click.testing import CliRunner

    from worker.cli import cli
    from worker.errors import DataError

    registry = ModelRegistry(tmp_path / "registry")
    registry.promote(_add(registry, tiny_model_dir).version)
    metrics = tmp_path / "registry" / "versions" / "v0001" / "metrics.json"
    metrics.write_text(metrics.read_text()[:20])
    with pytest.raises(DataError, match=rf"^{metrics} is not valid JSON"):
        registry.versions()
    monkeypatch.setenv("ARGILLA_WORKER_REGISTRY__PATH", str(tmp_path / "registry"))
    listed = CliRunner().invoke(cli, ["models", "list"])
    assert listed.exit_code == 1 and f"{metrics} is not valid JSON" in listed.output, listed.output
    assert "Traceback" not in listed.output


def test_the_same_model_registered_again_is_the_version_it_already_is(tmp_path):
    """A deploy script that runs `models register` on every start: one version, not one per run. The same weights
    under another label map, or other weights, are another model."""
    registry = ModelRegistry(tmp_path / "registry")
    theirs = save_tiny_classifier(tmp_path / "theirs", labels=("NEG", "POS"))
    first = register_model(str(theirs), registry, ["negative", "positive"],
                           label_map={"NEG": "negative", "POS": "positive"})

    again = register_model(str(theirs), registry, ["negative", "positive"],
                           label_map={"NEG": "negative", "POS": "positive"})

    assert again.version == first.version == "v0001" and [v.version for v in registry.versions()] == ["v0001"]
    assert not any((tmp_path / "registry" / "staging").iterdir())  # the second copy is not left behind
    swapped = register_model(str(theirs), registry, ["negative", "positive"],
                             label_map={"NEG": "positive", "POS": "negative"})
    other = register_model(str(save_tiny_classifier(tmp_path / "other", labels=("NEG", "POS"), seed=1)), registry,
                           ["negative", "positive"], label_map={"NEG": "negative", "POS": "positive"})
    assert (swapped.version, other.version) == ("v0002", "v0003")
