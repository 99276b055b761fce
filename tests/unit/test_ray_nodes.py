"""What a cluster's nodes do to a score run, on a real multi-node Ray (``ray.cluster_utils.Cluster``: a head without
CPUs and one worker node of 1 CPU, each its own raylet process, on this machine).

- A node lost for good mid-run: the actor on it is started again by Ray but finds no room anywhere. Before the fix
  the run waited for it forever, and with it every job queued behind the score run.
- A node that runs other argilla-worker code than the worker (an image upgraded on one side only): its actors are
  refused before they score. Before, they scored with their own code (or failed with a raw error on the first
  chunk whose results the driver's code could not read). ``config check`` finds such a node before any run."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'argilla-worker[ray]')")

from ray.cluster_utils import Cluster

import worker
from tests.tiny_models import save_tiny_classifier
from tests.training_data import sentiment_examples
from worker.config import RaySettings
from worker.errors import ConfigError, ScoringError
from worker.scoring import ScoringInput
from worker.scoring.distributed import RayScorer, check_cluster


@pytest.fixture()
def cluster():
    """A head node with no CPU (nothing runs there) and one worker node with 1 CPU, joined by this process."""
    if ray.is_initialized():  # another module's local Ray
        ray.shutdown()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def _consume(stream, into: dict) -> None:
    try:
        into["scores"] = list(stream)
    except Exception as error:  # noqa: BLE001 — handed to the test thread, which asserts on it
        into["error"] = error


def test_an_actor_whose_node_is_lost_for_good_fails_the_run_after_the_start_timeout_not_never(cluster, tmp_path):
    """The run fails within ``ray.start_timeout_s`` of the loss with one line naming the actor, what it asks and what
    the cluster has free; the actors are stopped at once (not after close()'s 30 s wait on each); a node added back
    gives the next scorer every record's score."""
    model_dir = save_tiny_classifier(tmp_path / "model")
    records = [ScoringInput(e.id, e.text, e.label) for e in sentiment_examples(30)]
    settings = RaySettings(address=cluster.address, actors=1, gpus_per_actor=0, cpus_per_actor=1, chunk_records=3,
                           in_flight=2, start_timeout_s=120, actor_restarts=3)
    scorer = RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2, "seed": 3})
    # A fresh node's first actor (a Python process importing torch) may take more than 10 s to answer on 2 busy
    # cores: the actors start under 120 s; the run under way gives the lost one 10 s.
    scorer.settings = settings.model_copy(update={"start_timeout_s": 10})
    stream = scorer.score(records)
    first = next(stream)
    assert first.record_id == records[0].record_id
    (worker_node,) = cluster.worker_nodes
    cluster.remove_node(worker_node)
    lost = time.monotonic()

    outcome: dict = {}
    consumer = threading.Thread(target=_consume, args=(stream, outcome), daemon=True)
    consumer.start()
    consumer.join(timeout=90)
    assert not consumer.is_alive(), "the run still waits for an actor the cluster has no room for"
    assert time.monotonic() - lost < 60
    error = outcome.get("error")
    assert isinstance(error, ScoringError), outcome
    assert str(error).startswith("Ray scoring actor 1 of 1 died and was not placed again within 10 s "
                                 "(ray.start_timeout_s): the cluster has no room for its 0 GPU, 1 CPU (free now: "
                                 "0 GPU, 0 CPU; a node lost?)")
    assert "\n" not in str(error) and scorer.broken

    closing = time.monotonic()
    scorer.close()
    assert time.monotonic() - closing < 15

    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    with RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2, "seed": 3}) as again:
        assert [s.record_id for s in again.score(records)] == [r.record_id for r in records]


def _package_copy(into: Path, *, changed: bool) -> Path:
    """A copy of the worker package in a directory of its own (another installation), one comment added when
    ``changed``; that directory (the job's ``working_dir``: Ray puts it first on the actors' import path)."""
    source = Path(worker.__file__).parent
    shutil.copytree(source, into / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    if changed:
        with (into / "worker" / "scoring" / "engine.py").open("a") as edited:
            edited.write("# another release\n")
    return into


def _joined_with_a_copy(cluster, into: Path) -> Iterator[bool]:
    """This process joined again with a copy of the package as the job's ``working_dir`` (:func:`_package_copy`):
    first a changed copy, then an unchanged one; yields whether the copy was changed."""
    for changed in (True, False):
        ray.shutdown()
        copy = _package_copy(into / f"node-{changed}", changed=changed)
        ray.init(address=cluster.address, log_to_driver=False, runtime_env={"working_dir": str(copy)})
        yield changed


def test_actors_on_a_node_with_other_worker_code_are_refused_in_one_line_and_the_same_code_elsewhere_is_not(
        cluster, tmp_path):
    """The actors import the worker from a copy (the job's ``working_dir``, which Ray uploads and puts first on the
    actors' import path, as a node with its own installation): one comment changed → ConfigError naming the node,
    both versions and fingerprints, the actors stopped; an unchanged copy at another path → the actors score (the
    fingerprint is of the code, not its place)."""
    model_dir = save_tiny_classifier(tmp_path / "model")
    settings = RaySettings(address=cluster.address, actors=1, gpus_per_actor=0, cpus_per_actor=1, start_timeout_s=120)
    records = [ScoringInput(e.id, e.text, e.label) for e in sentiment_examples(6)]
    for changed in _joined_with_a_copy(cluster, tmp_path):
        if changed:
            with pytest.raises(ConfigError) as refused:
                RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2})
            said = str(refused.value)
            found = re.fullmatch(r"Ray scoring actor 1 of 1 runs on node [0-9.]+ with argilla-worker (\S+) \(code "
                                 r"([0-9a-f]{12})\), this worker with argilla-worker (\S+) \(code ([0-9a-f]{12})\): "
                                 r"install the same argilla-worker on every node of the cluster", said)
            assert found, said
            their_version, their_code, our_version, our_code = found.groups()
            assert their_version == our_version and their_code != our_code  # same release number, other code
            deadline = time.monotonic() + 30
            while ray.available_resources().get("CPU", 0) < 1:  # the refused actor was stopped: its CPU is free
                assert time.monotonic() < deadline, ray.available_resources()
                time.sleep(0.5)
        else:
            with RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2}) as scorer:
                assert [s.record_id for s in scorer.score(records)] == [r.record_id for r in records]


def test_config_check_names_a_node_with_other_worker_code_before_any_run(cluster, tmp_path):
    """``config check``'s Ray line asks every live node that could hold an actor which code it runs (the head, with
    no CPU, holds none and is not asked): one comment changed on the node → ConfigError naming the node, both
    versions and fingerprints, and no actor is started; the same code at another path → the line says the node runs
    this worker's code."""
    settings = RaySettings(address=cluster.address, actors=1, gpus_per_actor=0, cpus_per_actor=1)
    for changed in _joined_with_a_copy(cluster, tmp_path):
        if changed:
            with pytest.raises(ConfigError) as refused:
                check_cluster(settings)
            said = str(refused.value)
            found = re.fullmatch(r"Ray node [0-9.]+ runs argilla-worker (\S+) \(code ([0-9a-f]{12})\), this worker "
                                 r"argilla-worker (\S+) \(code ([0-9a-f]{12})\): a scoring actor placed there would be "
                                 r"refused; install the same argilla-worker on every node of the cluster", said)
            assert found, said
            assert found.group(1) == found.group(3) and found.group(2) != found.group(4)
        else:
            line = check_cluster(settings)
            assert line == (f"scoring on cluster {cluster.address!r} (0 GPU, 1 CPU): 1 actor(s) × (0 GPU, 1 CPU); "
                            "1 node(s) that can hold an actor run this worker's code"), line
        assert ray.available_resources().get("CPU", 0) == 1  # the check held nothing
