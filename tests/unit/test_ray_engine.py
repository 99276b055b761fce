"""The Ray engine on a real local Ray (CPU, 2 actors): the same scores as the local engine for the same seed,
in input order; an actor's data error reaches the caller as it was raised; a multi-label model too."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'argilla-worker[ray]')")

from tests.tiny_models import save_tiny_classifier
from tests.training_data import sentiment_examples
from worker.config import RaySettings
from worker.errors import DataError
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.distributed import MODEL_COPY_PREFIX, RayScorer, ScoringActor, model_files

FIELDS = ("predicted_label", "reference_label", "disagreement", "mc_samples", "skipped_reason")
NUMBERS = ("score", "bald", "entropy", "margin", "loss", "expected_loss")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of this module's own with the 2 CPUs of a CI machine, stopped after this module: ``address="local"``,
    as the worker's own ``ray.address = ""``, so neither a cluster another process runs here nor an address Ray left in
    /tmp/ray/ray_current_cluster (a `ray start` head killed without `ray stop` leaves it) is joined."""
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _inputs() -> list[ScoringInput]:
    examples = sentiment_examples(40)
    inputs = [ScoringInput(e.id, e.text, e.label if i % 3 else None) for i, e in enumerate(examples)]
    inputs.insert(7, ScoringInput("empty", "   ", "positive"))  # skipped with a reason, in its place
    return inputs


def _model_copies() -> set[Path]:
    """The actors' copies of a model in this machine's temporary directory (the local Ray's actors share it)."""
    return set(Path(tempfile.gettempdir()).glob(f"{MODEL_COPY_PREFIX}*"))


def test_an_actor_scores_from_its_model_after_the_copy_it_loaded_from_is_removed(tmp_path, monkeypatch):
    """In the actor's process, without Ray: ``load`` writes the shipped files to a temporary directory, loads the
    model and removes the directory before it returns; the scores are the local engine's all the same."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "node-tmp"))
    (tmp_path / "node-tmp").mkdir()
    model_dir = save_tiny_classifier(tmp_path / "model")
    options = {"samples": 3, "seed": 5, "consistent": True, "batch_size": 4}
    actor = ScoringActor("v7", "cpu", options)
    assert actor.load(model_files(model_dir)) == "cpu"
    assert list((tmp_path / "node-tmp").iterdir()) == []
    scores, stats, _ = actor.score(_inputs()[:9], [None])
    local = list(Scorer(load_classifier(model_dir, device="cpu", version="v7"), **options).score(_inputs()[:9]))
    assert [s.predicted_label for s in scores] == [s.predicted_label for s in local] and stats.records == 9
    assert [s.loss is None for s in scores] == [s.loss is None for s in local] != [True] * 9
    assert [s.loss for s in scores if s.loss is not None] == pytest.approx(
        [s.loss for s in local if s.loss is not None], rel=1e-5)
    actor.close()


def test_two_actors_give_the_local_engines_scores_in_input_order(local_ray, tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "model")
    options = {"samples": 6, "seed": 3, "consistent": True, "batch_size": 4}
    local = list(Scorer(load_classifier(model_dir, device="cpu", version="v7"), **options).score(_inputs()))

    settings = RaySettings(actors=2, gpus_per_actor=0, cpus_per_actor=1, chunk_records=5, in_flight=2)
    with RayScorer(model_dir, "v7", settings, device="cpu", options=options) as scorer:
        assert len(scorer.actors) == 2
        started = time.perf_counter()
        remote = list(scorer.score(_inputs()))
        elapsed = time.perf_counter() - started
        stats = scorer.stats

    assert [s.record_id for s in remote] == [s.record_id for s in local] == [i.record_id for i in _inputs()]
    for ours, theirs in zip(remote, local, strict=True):
        assert {f: getattr(ours, f) for f in FIELDS} == {f: getattr(theirs, f) for f in FIELDS}
        for name in NUMBERS:
            a, b = getattr(ours, name), getattr(theirs, name)
            assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-4, abs=1e-6)), name
    assert remote[7].skipped and stats.records == 41 and stats.skipped == 1 and stats.scored == 40
    # the run's wall time, as the local engine's (not the actors' summed chunk times): it holds the driver's waits
    assert stats.model_seconds + stats.input_wait_seconds <= stats.seconds <= elapsed


def test_auto_chunks_are_sized_by_what_the_actors_score_and_the_scores_stay_the_same(local_ray, tmp_path,
                                                                                    monkeypatch):
    """``ray.chunk_records = "auto"``: a run's first chunks hold AUTO_CHUNK_FIRST records, the later ones what an
    actor scored in AUTO_CHUNK_SECONDS by the chunk it returned (here 3 records first, then 10 s worth: the rest),
    the next run starts at that size; the scores are the local engine's whatever the chunks."""
    from worker.scoring import distributed

    monkeypatch.setattr(distributed, "AUTO_CHUNK_FIRST", 3)
    monkeypatch.setattr(distributed, "AUTO_CHUNK_SECONDS", 10.0)
    monkeypatch.setattr(distributed, "AUTO_CHUNK_RANGE", (1, 8192))
    model_dir = save_tiny_classifier(tmp_path / "model")
    options = {"samples": 6, "seed": 3, "consistent": True, "batch_size": 4}
    local = list(Scorer(load_classifier(model_dir, device="cpu", version="v7"), **options).score(_inputs()))
    chunks: list[int] = []
    collect = RayScorer._collect

    def counted(self, actor, ref):
        scores = collect(self, actor, ref)
        chunks.append(len(scores))
        return scores

    monkeypatch.setattr(RayScorer, "_collect", counted)
    settings = RaySettings(actors=2, gpus_per_actor=0, cpus_per_actor=1, chunk_records="auto", in_flight=1)
    with RayScorer(model_dir, "v7", settings, device="cpu", options=options) as scorer:
        assert scorer.chunk_records == 3
        remote = list(scorer.score(_inputs()))
        tuned = scorer.chunk_records
        assert tuned > 41  # 10 s of an actor's work: more than this run's records
        assert chunks == [3, 3, 35]  # two chunks in flight at the first size, then the rest in one
        chunks.clear()
        assert [s.record_id for s in scorer.score(_inputs())] == [s.record_id for s in remote]
        assert chunks == [41]  # the next run starts at the size reached: one chunk

    assert [s.record_id for s in remote] == [s.record_id for s in local]
    for ours, theirs in zip(remote, local, strict=True):
        assert {f: getattr(ours, f) for f in FIELDS} == {f: getattr(theirs, f) for f in FIELDS}
        for name in NUMBERS:
            a, b = getattr(ours, name), getattr(theirs, name)
            assert (a is None) == (b is None) and (a is None or a == pytest.approx(b, rel=1e-4, abs=1e-6)), name


def test_an_actors_data_error_reaches_the_caller_and_a_multi_label_model_scores_label_sets(local_ray, tmp_path):
    model_dir = save_tiny_classifier(tmp_path / "model")
    settings = RaySettings(actors=2, gpus_per_actor=0, chunk_records=3)
    with RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2}) as scorer:
        bad = [ScoringInput("a", "fine text", "positive"), ScoringInput("b", "more text", "sarcastic")]
        with pytest.raises(DataError, match=r"record 'b': label 'sarcastic' is not one of the model's labels"):
            list(scorer.score(bad))
        assert [s.record_id for s in scorer.score(bad[:1])] == ["a"]  # the actors are still there

    from tests.training_data import TAGGED, TAGS
    from tests.unit.test_training import FAST
    from worker.training.data import Example
    from worker.training.trainer import TrainingSettings, train_classifier

    base = save_tiny_classifier(tmp_path / "base", labels=TAGS)
    examples = [Example(f"m{i}", text, tags) for i, (text, tags) in enumerate(TAGGED * 3)]
    train_classifier(base, examples, [], TAGS, tmp_path / "tags", TrainingSettings(epochs=2, **FAST))
    with RayScorer(tmp_path / "tags", "v8", settings, device="cpu", options={"samples": 2}) as scorer:
        scores = list(scorer.score(ScoringInput(f"t{i}", text, tags) for i, (text, tags) in enumerate(TAGGED)))
    assert all(isinstance(s.predicted_label, tuple) and s.predicted_label and s.loss is not None for s in scores)


def test_a_model_that_ships_its_code_is_refused_by_the_actors_in_one_line_and_scores_once_trusted(local_ray,
                                                                                                  tmp_path):
    """registry.trust_remote_code reaches the actors: untrusted, the model's refusal names the setting (the
    actors ask nobody on a terminal); trusted, the actors run the code it ships and score as the local engine."""
    from tests.tiny_models import save_remote_code_classifier
    from worker.errors import ScoringError

    model_dir = save_remote_code_classifier(tmp_path / "their-model")
    settings = RaySettings(actors=2, gpus_per_actor=0, chunk_records=5)
    options = {"samples": 4, "seed": 1, "consistent": True, "batch_size": 4}
    with pytest.raises(ScoringError, match=r"could not load model v9: .*registry\.trust_remote_code") as refused:
        RayScorer(model_dir, "v9", settings, device="cpu", options=options)
    assert "\n" not in str(refused.value) and "Traceback" not in str(refused.value)  # one line, not Ray's dump

    local = list(Scorer(load_classifier(model_dir, device="cpu", version="v9", trust_remote_code=True),
                        **options).score(_inputs()))
    with RayScorer(model_dir, "v9", settings, device="cpu", options=options, trust_remote_code=True) as scorer:
        remote = list(scorer.score(_inputs()))
    assert [s.record_id for s in remote] == [s.record_id for s in local]
    for ours, theirs in zip(remote, local, strict=True):
        assert ours.predicted_label == theirs.predicted_label
        assert (ours.bald is None) == (theirs.bald is None)
        assert ours.bald is None or ours.bald == pytest.approx(theirs.bald, rel=1e-4, abs=1e-6)


def test_actors_a_local_ray_cannot_place_are_refused_at_once_and_a_busy_cluster_gets_until_the_timeout(local_ray,
                                                                                                       tmp_path):
    """Asking more CPUs than the local Ray has used to wait forever, silently (Ray keeps an unplaceable actor
    pending). A local Ray never grows: refused at once, naming what was asked and the keys. On a joined cluster
    whose room is taken (or that may add nodes) the run waits ``ray.start_timeout_s`` for them to be placed, then
    fails naming the actors that were not, and leaves the cluster as it found it."""
    from worker.errors import ConfigError, ScoringError

    model_dir = save_tiny_classifier(tmp_path / "model")
    with pytest.raises(ConfigError, match=r"ray: 3 actor\(s\) × \(0 GPU, 1 CPU\) ask 3 CPU, the cluster has 2: "
                                          r"lower ray\.actors"):
        RayScorer(model_dir, "v7", RaySettings(actors=3, gpus_per_actor=0, cpus_per_actor=1), device="cpu")

    busy = RaySettings(actors=2, gpus_per_actor=0, cpus_per_actor=1)
    one_more = RaySettings(address="auto", actors=1, gpus_per_actor=0, cpus_per_actor=1, start_timeout_s=2)
    with RayScorer(model_dir, "v7", busy, device="cpu") as holding_both_cpus:
        with pytest.raises(ScoringError, match=r"1 of 1 Ray scoring actor\(s\) were not placed within 2 s "
                                               r"\(ray\.start_timeout_s\): .*free now: 0 GPU, 0 CPU\): lower "
                                               r"ray\.actors, ray\.gpus_per_actor or ray\.cpus_per_actor, or add "
                                               r"nodes$"):  # (Ray's actor table read: no "or still starting")
            RayScorer(model_dir, "v7", one_more, device="cpu")
        assert len(list(holding_both_cpus.score(_inputs()[:3]))) == 3
    both_again = busy.model_copy(update={"start_timeout_s": 60})  # a refused actor left pending would hold a CPU
    with RayScorer(model_dir, "v7", both_again, device="cpu") as scorer:  # (loading the model is not counted)
        assert len(list(scorer.score(_inputs()[:3]))) == 3


def _slow_starting_actor(seconds: float, cpus: float) -> type:
    """An actor class whose process, once Ray placed it, takes ``seconds`` to start — as a scoring actor's does while
    it imports torch and transformers on a node whose CPUs are busy (made here: it travels by value)."""

    class SlowStart:
        def __init__(self):
            time.sleep(seconds)

        def ready(self) -> int:
            return 1

    return ray.remote(num_cpus=cpus, num_gpus=0)(SlowStart)


def test_actors_placed_but_slow_to_start_are_waited_for_past_the_placement_timeout(local_ray, monkeypatch):
    """``ray.start_timeout_s`` bounds how long Ray may take to place the actors, not how long their processes take to
    start: under load a scoring actor's imports took over a minute, and the run failed saying the cluster had no room
    (its CPUs, "free now: 0", were held by those same actors). An actor with a process is waited for (up to
    ``START_UP_S``: one that hangs fails the run, named); one Ray could not place is still refused after the timeout.
    Real actors on the local Ray, through RayScorer's own wait (the scorer made without loading a model)."""
    from worker.scoring import distributed

    def scorer(actors: list, start_timeout_s: float) -> RayScorer:
        waiting = RayScorer.__new__(RayScorer)
        waiting.actors, waiting.settings = actors, RaySettings(start_timeout_s=start_timeout_s)
        return waiting

    def await_start(actors: list, start_timeout_s: float) -> tuple[distributed._Unanswered, float]:
        began = time.monotonic()
        unanswered = scorer(actors, start_timeout_s)._await_start([actor.ready.remote() for actor in actors])
        for actor in actors:
            ray.kill(actor)
        return unanswered, time.monotonic() - began

    slow = _slow_starting_actor(16.0, cpus=1).remote()  # (10 s to place it: a process of Ray's own starts first)
    unanswered, waited = await_start([slow], start_timeout_s=10)
    assert unanswered == distributed._Unanswered() and waited >= 16.0

    too_big = _slow_starting_actor(0.0, cpus=3).remote()  # the local Ray has 2 CPUs: never placed
    unanswered, waited = await_start([too_big], start_timeout_s=2)
    assert unanswered.unplaced == [0] and unanswered.starting == [] and unanswered.table_read
    assert 2.0 <= waited < 16.0

    monkeypatch.setattr(distributed, "START_UP_S", 3.0)
    hanging = _slow_starting_actor(60.0, cpus=1).remote()
    unanswered, waited = await_start([hanging], start_timeout_s=10)
    assert unanswered.hung == unanswered.starting == [0] and unanswered.unplaced == [] and waited < 30


def test_config_check_says_what_the_actors_would_take_and_refuses_what_a_local_ray_cannot_place(local_ray,
                                                                                                 monkeypatch):
    """``config check``'s line (worker.scoring.distributed.check_cluster): no actor started, no model loaded, and the
    Ray this process runs left running."""
    from worker.errors import ConfigError
    from worker.scoring.distributed import check_cluster

    assert check_cluster(RaySettings(actors=2, gpus_per_actor=0)) == \
        "scoring on a local Ray (0 GPU, 2 CPU): 2 actor(s) × (0 GPU, 1 CPU)"
    assert check_cluster(RaySettings()) == "scoring on a local Ray (0 GPU, 2 CPU): 1 actor(s) × (0 GPU, 1 CPU)"
    with pytest.raises(ConfigError, match=r"ray: 3 actor\(s\) × \(0 GPU, 1 CPU\) ask 3 CPU, the cluster has 2"):
        check_cluster(RaySettings(actors=3))
    with pytest.raises(ConfigError, match=r"ask 1 GPU, the cluster has 0"):
        check_cluster(RaySettings(gpus_per_actor=1))
    may_grow = check_cluster(RaySettings(address="auto", actors=3, start_timeout_s=120))
    assert may_grow == ("scoring on cluster 'auto' (0 GPU, 2 CPU): 3 actor(s) × (0 GPU, 1 CPU); 1 node(s) that can "
                        "hold an actor run this worker's code — ray: 3 actor(s) × (0 GPU, 1 CPU) ask 3 CPU, the "
                        "cluster has 2: a run waits up to 120 s (ray.start_timeout_s) for the cluster to add nodes")
    monkeypatch.setenv("RAY_ADDRESS", "auto")  # ray.init joins what it names: a cluster, which may grow
    assert check_cluster(RaySettings(actors=3)).startswith("scoring on cluster 'auto' (0 GPU, 2 CPU): 3 actor(s)")
    assert ray.is_initialized()  # the Ray it found is left running


def test_an_actor_that_dies_fails_the_run_and_marks_the_actors_for_replacement(local_ray, tmp_path):
    """An actor dead for good (killed without a restart, or past ``ray.actor_restarts``) fails the run with one line;
    the scorer says it is ``broken`` so that Services starts new actors for the next run instead of failing every
    run on the dead one."""
    from worker.errors import ScoringError

    model_dir = save_tiny_classifier(tmp_path / "model")
    settings = RaySettings(actors=2, gpus_per_actor=0, chunk_records=5)
    with RayScorer(model_dir, "v7", settings, device="cpu", options={"samples": 2}) as scorer:
        assert len(list(scorer.score(_inputs()[:4]))) == 4 and not scorer.broken
        ray.kill(scorer.actors[0])
        with pytest.raises(ScoringError, match=r"^a Ray scoring actor failed: ") as failed:
            list(scorer.score(_inputs()))
        assert scorer.broken and "\n" not in str(failed.value)


def test_an_actor_whose_process_dies_mid_run_is_started_again_and_the_run_gives_every_score(local_ray, tmp_path,
                                                                                           caplog):
    """The OOM killer (or a lost node) ends an actor's process while it holds chunks: Ray starts it again, it loads
    the model again and scores those chunks, and the run returns every record's score, the same as a run where
    nothing died (consistent masks), and the worker's log says so; with ``actor_restarts = 0`` the same death fails
    the run."""
    import os
    import signal

    from worker.errors import ScoringError

    model_dir = save_tiny_classifier(tmp_path / "model")
    options = {"samples": 4, "seed": 3, "consistent": True, "batch_size": 4}
    records = _inputs()
    copies_before = _model_copies()
    for restarts in (3, 0):
        settings = RaySettings(actors=2, gpus_per_actor=0, chunk_records=3, in_flight=2, actor_restarts=restarts)
        with RayScorer(model_dir, "v7", settings, device="cpu", options=options) as scorer:
            calm = list(scorer.score(records))
            stream = scorer.score(records)
            first = next(stream)
            killed = scorer.processes[1]
            os.kill(killed, signal.SIGKILL)  # chunks 1 and 3 are queued on actor 1
            if restarts:
                with caplog.at_level("WARNING", logger="worker.scoring.distributed"):
                    rest = list(stream)
                assert not scorer.broken
                process = ray.get(scorer.actors[1].ready.remote())
                assert process != killed and scorer.processes[1] == process  # a new process, known to the driver
                summary = scorer.summary()
                assert (summary["actors"], summary["devices"], summary["restarts"]) == (2, ["cpu", "cpu"], 1)
                said = [r.getMessage() for r in caplog.records if "runs in a new process" in r.getMessage()]
                expected = (f"Ray scoring actor 2 of 2 runs in a new process ({process}, was {killed}): its process "
                            "died and Ray started it again (ray.actor_restarts = 3 each); it loaded the model again "
                            "and scores the chunks it held")
                assert said == [expected]
            else:
                with pytest.raises(ScoringError, match=r"^a Ray scoring actor failed: "):
                    list(stream)
                assert scorer.broken
    survived = [first, *rest]
    # the killed processes' copies of the model are gone with them (each actor's copy lives only while it loads)
    assert _model_copies() - copies_before == set()
    assert [s.record_id for s in survived] == [s.record_id for s in calm] == [i.record_id for i in records]
    for ours, theirs in zip(survived, calm, strict=True):
        assert {f: getattr(ours, f) for f in FIELDS} == {f: getattr(theirs, f) for f in FIELDS}
        assert (ours.loss is None and theirs.loss is None) or ours.loss == pytest.approx(theirs.loss, rel=1e-5)


def test_a_cluster_address_nothing_answers_at_is_refused_at_once_not_after_ray_retries_for_minutes():
    """``ray.init(address="host:port")`` at a port nobody listens on retried for about 12 minutes (measured with Ray
    2.60: still retrying after 6), printing only Ray's own warnings."""
    import socket
    import time

    from worker.errors import ConfigError
    from worker.scoring.distributed import check_reachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}", "ray.address")  # something answers: Ray's turn
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^ray\.address = '127\.0\.0\.1:{port}': nothing answers there \(.*\): "
                                          r"give the head node's address"):
        check_reachable(f"127.0.0.1:{port}", "ray.address")
    assert time.monotonic() - started < 10
    for left_to_ray in ("ray://head:10001", "head"):
        check_reachable(left_to_ray, "ray.address")


def test_only_a_ray_client_session_the_server_failed_to_start_is_joined_again():
    """The texts are Ray 2.60's (ray/util/client/worker.py wraps the proxier's traceback); the retry itself runs in
    tests/unit/test_ray_cluster.py against a restarted head, where 5 of 12 first joins failed this way."""
    from worker.scoring.distributed import _client_session_not_started

    def from_server(raised: str) -> ConnectionAbortedError:
        return ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                      '  File "proxier.py", line 772, in Datapath\n    raise RuntimeError(\n'
                                      f"{raised}\n")

    assert _client_session_not_started(from_server("RuntimeError: Starting Ray client server failed. See "
                                                   "ray_client_server_23000.err for detailed logs."))
    assert _client_session_not_started(from_server("RuntimeError: Proxy failed to Connect to backend! Check …"))
    assert _client_session_not_started(ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\n  File \"proxier.py\", line 765, in "
        "Datapath\n  File \"proxier.py\", line 396, in start_specific_server\n    cmd = psutil_proc.cmdline()\n"
        "psutil.ZombieProcess: PID still exists but it's a zombie (pid=16413)"))
    assert not _client_session_not_started(from_server("RuntimeEnvSetupError: Failed to set up runtime environment."))
    assert not _client_session_not_started(ConnectionError("ray client connection timeout"))
    assert not _client_session_not_started(RuntimeError("Starting Ray client server failed."))  # not from Ray Client


def test_auto_is_refused_at_once_when_the_cluster_rays_address_file_names_is_gone(tmp_path, monkeypatch):
    """A head node that crashed leaves Ray's address file behind; ``address = "auto"`` then retried for minutes."""
    import socket

    from worker.errors import ConfigError
    from worker.scoring.distributed import check_reachable

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    check_reachable("auto", "ray.address")  # no file: Ray's to say there is no cluster
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        port = gone.getsockname()[1]
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
    with pytest.raises(ConfigError, match=rf"^ray\.address = 'auto' \(Ray's address file on this machine names "
                                          rf"127\.0\.0\.1:{port}\): nothing answers there"):
        check_reachable("auto", "ray.address")


def test_status_says_where_the_ray_actors_run_and_that_none_are_held_before_the_first_run(local_ray, tmp_path,
                                                                                           monkeypatch):
    """``Services.scoring_summary`` → status.json → ``argilla-worker status``: the cluster, the actors, their node,
    devices and model once a run holds them; "no actors held" before."""
    import shutil

    from click.testing import CliRunner

    from worker.cli import cli
    from worker.config import load_settings
    from worker.jobs import Services
    from worker.status import StatusBook

    state = tmp_path / "state"
    settings = load_settings(scoring={"engine": "ray", "device": "cpu"}, state_dir=str(state),
                             ray={"actors": 2, "gpus_per_actor": 0}, registry={"path": str(tmp_path / "registry")})
    services = Services(settings)
    with services.registry.staging() as staged:
        shutil.copytree(save_tiny_classifier(tmp_path / "model"), staged, dirs_exist_ok=True)
        services.registry.promote(services.registry.add(staged, {}).version)
    book = StatusBook(state / "status.json", "http://argilla")
    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(state))
    try:
        book.set_scoring(services.scoring_summary())
        book.save([])
        assert services.scoring_summary() == {"engine": "ray", "cluster": "local", "actors": 0}
        assert "scoring on a local Ray: no actors held (they start with the next score run)" in \
            CliRunner().invoke(cli, ["status"]).output

        services.ray_scorer({"samples": 2})
        book.set_scoring(services.scoring_summary())
        book.save([])
        node = ray.util.get_node_ip_address()
        assert f"scoring on a local Ray: 2 actor(s) holding v0001 on {node} (cpu × 2)" in \
            CliRunner().invoke(cli, ["status"]).output.splitlines()
    finally:
        services.close_ray_scorer()
    assert services.scoring_summary()["actors"] == 0
