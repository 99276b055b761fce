"""Scoring on a Ray cluster (``scoring.engine = "ray"``): a pool of actors, one model each, fed from the
streaming pull; the scores come back in input order to the one process that pushes them.

Each actor holds one :class:`~worker.scoring.engine.Scorer` (tokenizing, MC dropout and the per-record
arrays all run there) on the GPU its reservation gives it (``ray.gpus_per_actor``; Ray sets each actor's
``CUDA_VISIBLE_DEVICES``). The driver cuts the record stream into chunks of ``ray.chunk_records`` (auto: about
``AUTO_CHUNK_SECONDS`` of an actor's work each), sends
them to the actors in turn, keeps ``ray.in_flight`` chunks queued in each actor's own queue (an actor starts
its next chunk while the driver collects the last) and takes the results back in submission order: memory
O(actors × in_flight × chunk) records whatever the dataset's size, and pushing, checkpoints and crash safety
stay exactly as with the local engine (one pusher, Argilla as the checkpoint).

Why actors and not Ray Data's ``map_batches``: a Ray Dataset needs its input as a list or a datasource
planned up front, and its actor pool lives for one dataset's execution; a score run's input is a stream
the driver filters as it reads (up-to-date records skipped, the watermark moved, failed pushes first).
Actors fed chunk by chunk give the same one-model-per-GPU layout on a stream, with the models loaded
once per run (kept between runs of the same model by ``Services.ray_scorer``).

The model directory travels through Ray's object store (read once by the driver, O(model size)): nodes
need no shared filesystem, only the worker installed (``pip install argilla-worker[ray]``).

Scores equal the local engine's for the same seed with consistent MC masks (the default with adaptive
sampling): a record's samples then depend on the seed alone, not on which chunk or batch it was in.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Self

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from worker.config import RaySettings
from worker.errors import ConfigError, ScoringError, WorkerError
from worker.iterables import timed
from worker.scoring.batching import ScoringInput
from worker.scoring.engine import RecordScore, Scorer, ScoringStats

logger = logging.getLogger(__name__)

PROBE_GROUP = "probe"  # the actors' second concurrency group: alive() answers there while a chunk runs
PROBE_EVERY_S = 30.0  # how long a chunk may take before the driver asks whether its actor still has a place
# ray.chunk_records = "auto": a run's first chunks hold AUTO_CHUNK_FIRST records (until one comes back); then each
# chunk holds what an actor scored in AUTO_CHUNK_SECONDS by the last chunk it returned, within AUTO_CHUNK_RANGE (the
# upper bound bounds memory: O(actors × in_flight × 8,192) records). An actor scores its chunks one after the other,
# so a chunk's fixed costs (its first batch tokenized before the model starts, the call, the results' trip) are
# paid once per chunk: small beside a CPU's model (the chunk size was within the noise on 2 cores, RESULTS.md
# 2026-12-06), large beside a GPU's; and a CPU actor's chunk stays a few seconds long (a stopped run waits for the
# chunks in flight).
AUTO_CHUNK_FIRST = 512
AUTO_CHUNK_SECONDS = 2.0
AUTO_CHUNK_RANGE = (16, 8192)
NODE_CHECK_TIMEOUT_S = 60.0  # config check: how long each node that could hold an actor has to say what code it runs
# an actor Ray placed (a process on a node) has this long to start (import torch and transformers: a minute or more on
# a node whose CPUs are busy) before the run fails as hung; placing it is bounded by ray.start_timeout_s
START_UP_S = 600.0
# Ray Client (ray://): tries of a join whose server side failed to start this client's server (Ray 2.60 measured: right
# after the head restarted, 5 of 12 first joins; the next connection gets a server on the next port and joins)
CLIENT_JOIN_TRIES = 3
CLIENT_SESSION_NOT_STARTED = ("Starting Ray client server failed", "Proxy failed to Connect to backend",
                              "in start_specific_server")  # Ray 2.60's proxier.py: its words, its function's name
MODEL_COPY_PREFIX = "argilla-worker-model-"  # an actor's copy of the model on its node, while it loads


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("scoring.engine = 'ray' needs Ray: pip install 'argilla-worker[ray]'") from None
    return ray


def model_files(directory: Path) -> dict[str, bytes]:
    """Every file of a model directory (relative path → content), to ship through the object store."""
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


class ScoringActor:
    """One model on one device, scoring the chunks it is sent (runs inside a Ray actor). The constructor only keeps
    its (small) arguments, so that the actor answers :meth:`ready` as soon as Ray placed it; :meth:`load` loads the
    model from its files — and :meth:`score` does, in an actor Ray started again after its process died
    (``ray.actor_restarts``: Ray runs the constructor again, then the chunks the dead process held). The files are
    never a constructor argument: Ray cannot restart an actor whose constructor's arguments left its object store
    (ray-project/ray#53727); each chunk carries a reference to them instead, which the driver keeps alive."""

    def __init__(self, version: str, device: str, options: dict, trust_remote_code: bool = False):
        self.arguments = (version, device, dict(options), trust_remote_code)
        self.scorer: Scorer | None = None

    def ready(self) -> int:
        """Answers once the actor runs (placed by Ray, its process started): its process id."""
        return os.getpid()

    def load(self, files: dict[str, bytes]) -> str:
        """Write the model's ``files`` to a directory of the actor's, load the model, remove the directory; its device.

        The copy on disk lives only while the model loads (everything a classifier needs is read then): an actor Ray
        kills or restarts, or one whose driver died, leaves no model behind in the node's temporary directory — a
        copy per restart used to stay there.

        Raises:
            WorkerError: the model cannot be loaded (Ray hands a task's error back whole).
        """
        import torch

        from worker.scoring import load_classifier

        version, device, options, trust_remote_code = self.arguments
        options = dict(options)
        threads = options.pop("threads", None)
        if threads:
            torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix=MODEL_COPY_PREFIX) as copy:
            directory = Path(copy)
            for name, content in files.items():
                target = directory / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            classifier = load_classifier(directory, device=device, version=version,
                                         trust_remote_code=trust_remote_code)
        self.scorer = Scorer(classifier, progress=False, **options)
        return str(classifier.device)

    def score(self, chunk: list[ScoringInput], model: list) -> tuple[list[RecordScore], ScoringStats, int]:
        """The chunk's scores, the scorer's stats and the actor's process id (the driver tells a restart by it);
        ``model``: [the reference to the model's files] (in a list, so that Ray passes the reference, fetched only by
        an actor started again, whose constructor ran, not load())."""
        if self.scorer is None:
            logging.getLogger(__name__).warning("scoring actor started again (process %d): loading the model",
                                                os.getpid())
            self.load(_ray().get(model[0]))
        assert self.scorer is not None
        scores = list(self.scorer.score(chunk))
        return scores, self.scorer.stats, os.getpid()

    def release(self) -> None:
        """Give the GPU memory the last run cached back to the device, and the host memory it freed back to the
        system (:mod:`worker.memory`), the model staying loaded: an idle actor kept for the next run (a webhook's
        rescore) holds its model, not the last run's peak, beside a training in the worker's process on the same GPU
        (a local Ray on a machine with GPUs: actor 1 shares the training's)."""
        import torch

        from worker.memory import return_freed_memory

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return_freed_memory(after="a score run on this actor")

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()


def _probed(ray: Any) -> Any:
    """:class:`ScoringActor` with ``alive()``: its process id, answered in a concurrency group of its own while a
    chunk runs (``ray.method`` needs Ray, an optional extra: the class is made when a RayScorer starts; Ray Client
    takes a method's group only from its decorator, not from ``.options()``); and ``installed()``.

    Made in a function, the class travels to the nodes by value (cloudpickle), its methods with it: ``installed()``
    runs the driver's code on a node whatever argilla-worker that node has."""

    class ProbedScoringActor(ScoringActor):
        @ray.method(concurrency_group=PROBE_GROUP)
        def alive(self) -> int:
            return os.getpid()

        def installed(self) -> tuple[str, str, str]:
            """(argilla-worker's version, its code's fingerprint, the node's address) in this process: the
            fingerprint is the first 12 hex digits of SHA-256 over the package's .py files (relative path and
            content, in order), the same wherever the same code is installed. The driver calls it unbound."""
            import hashlib
            import importlib.metadata

            import worker

            try:
                version = importlib.metadata.version("argilla-worker")
            except importlib.metadata.PackageNotFoundError:
                version = "unknown"
            root = Path(worker.__file__).parent
            digest = hashlib.sha256()
            for path in sorted(root.rglob("*.py")):
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
            return version, digest.hexdigest()[:12], ray.util.get_node_ip_address()

    return ProbedScoringActor


class RayScorer:
    """The :class:`~worker.scoring.engine.Scorer` interface (``score``, ``close``, ``stats``) over Ray actors.

    Args:
        model_dir: the model version's directory (read once, shipped to every actor).
        version: the model version (the suggestions' agent).
        settings: the ``[ray]`` table.
        device: each actor's ``scoring.device`` (``auto``: the GPU it reserved, else its CPU).
        options: the local Scorer's keyword arguments (samples, mc_layers, batch_size, seed, adaptive …).
        trust_remote_code: the actors run the code the model ships (``registry.trust_remote_code``).

    Raises:
        ConfigError: Ray is not installed, the cluster cannot be joined, a local Ray can never place the actors, or
            an actor's node runs other argilla-worker code.
        ScoringError: the actors were not placed within ``ray.start_timeout_s``, or could not load the model.
    """

    def __init__(self, model_dir: Path, version: str, settings: RaySettings, *, device: str = "auto",
                 options: dict | None = None, trust_remote_code: bool = False):
        ray = _ray()
        self.settings = settings
        self.version = version
        self.options = dict(options or {})  # as given (the cache in Services compares them)
        self.stats = ScoringStats()  # the run's counts; its waits are this driver's (for records, for the actors)
        self.actor_stats = ScoringStats()  # the actors' own time over the run's chunks: in their model, for input
        self._run_began = 0.0  # when the last run began (its stats.seconds: wall time from there to its last result)
        self.broken = False  # an actor died for good (or Ray failed it): these actors score no further run
        self.unplaced: set[int] = set()  # actors started again that found no room: killed, not asked to close
        self.processes: list[int] = []
        self.nodes: list[str] = []  # each actor's node address
        self.devices: list[str] = []  # each actor's device
        self.restarts = 0  # actors Ray started again while these ran
        # records a chunk: fixed, or (auto) sized again from each chunk an actor returns, kept for the next run
        self.chunk_records = AUTO_CHUNK_FIRST if settings.chunk_records == "auto" else settings.chunk_records
        _join(settings)
        ask, _, shortfall = _plan(settings)
        if shortfall:
            logger.warning("%s", shortfall)
        options = dict(options or {})
        if not ask.gpus and ask.cpus >= 1:
            options["threads"] = int(ask.cpus)
        self.files = ray.put(model_files(Path(model_dir)))  # kept: an actor started again loads from it
        self.ask = ask
        self.actor_type = _probed(ray)
        actor_class = ray.remote(num_gpus=ask.gpus, num_cpus=ask.cpus, max_restarts=settings.actor_restarts,
                                 max_task_retries=settings.actor_restarts,
                                 concurrency_groups={PROBE_GROUP: 1})(self.actor_type)
        self.actors = [actor_class.remote(version, device, options, trust_remote_code)
                       for _ in range(ask.count)]
        self.devices = self._started(ask)
        logger.info("scoring with %s on %s", ask, ", ".join(self.devices))

    def _started(self, ask: _Ask) -> list[str]:
        """Wait until Ray has placed every actor (at most ``ray.start_timeout_s``) and its process has started (at
        most ``START_UP_S``: :meth:`_await_start`), then until each has loaded the model (as long as that takes,
        while it runs: :meth:`_wait`); their devices.

        Raises:
            ScoringError: an actor was not placed within ``ray.start_timeout_s`` (names how many, what they ask and
                what the cluster has free), or its process hung starting, or it was placed again after its process
                died, or could not load the model; every actor is stopped.
        """
        ray = _ray()
        placed = [actor.ready.remote() for actor in self.actors]
        unanswered = self._await_start(placed)
        if unanswered.unplaced:
            free = ray.available_resources()
            self.close(unplaced=unanswered.actors)
            raise ScoringError(
                f"{len(unanswered.unplaced)} of {ask.count} Ray scoring actor(s) were not placed within "
                f"{self.settings.start_timeout_s:g} s (ray.start_timeout_s): {ask} ask more than the cluster gives "
                f"(free now: {_resources(free)}): lower ray.actors, ray.gpus_per_actor or ray.cpus_per_actor, or "
                "add nodes" + ("" if unanswered.table_read else
                               " — or, where the room was there, their processes had not started yet (each imports "
                               "torch and transformers first: a minute or more on a node whose CPUs are busy): a "
                               "larger ray.start_timeout_s waits for them"))
        if unanswered.hung:
            self.close(unplaced=unanswered.actors)
            raise ScoringError(
                f"{len(unanswered.hung)} of {ask.count} Ray scoring actor(s) were placed but their processes had not "
                f"started within {START_UP_S:g} s (actors {', '.join(str(i + 1) for i in unanswered.hung)}): a "
                "process that hangs while it imports its code; see the Ray worker logs of their nodes "
                "(/tmp/ray/session_latest/logs/worker-*.err)")
        try:
            self.processes = ray.get(placed)  # the actors' process ids (on their nodes)
            installed = ray.get([actor.installed.remote() for actor in self.actors],
                                timeout=self.settings.start_timeout_s)  # (one that died since may find no room)
        except ray.exceptions.RayError as error:
            self.close()
            raise ScoringError(f"the Ray scoring actors could not start: {_one_line(_cause(error))} (every node needs "
                               "argilla-worker installed: pip install 'argilla-worker[ray]')") from None
        self._check_installed(installed)
        self.nodes = [node for _, _, node in installed]
        try:
            loads = [actor.load.remote(self.files) for actor in self.actors]
            for index, ref in enumerate(loads):  # an actor whose node is lost while it loads gets placed again
                self._wait(index, ref)
            return ray.get(loads)
        except ray.exceptions.RayError as error:  # (first: an actor's error is also an instance of its own class)
            self.close()
            raise ScoringError(f"the Ray scoring actors could not load model {self.version}: "
                               f"{_one_line(_cause(error))}") from None
        except ScoringError:  # _wait's: an actor lost while it loaded found no room again
            self.close()
            raise

    def _await_start(self, answers: list[Any]) -> _Unanswered:
        """Wait for every actor's ``ready()`` answer (``answers``, one per actor, in order): up to
        ``ray.start_timeout_s`` for Ray to place it (give it a process on a node), and once placed up to
        ``START_UP_S`` for that process to start; every ``PROBE_EVERY_S`` the actors not answered yet are looked up
        in Ray's actor table (one lookup each) and logged. Returns the actors that did not answer in time (none
        where all did)."""
        ray = _ray()
        began = time.monotonic()
        placed_at: dict[int, float] = {}  # actor → when it was first seen with a process
        waiting = dict(enumerate(answers))
        table_read = True
        while True:
            ends = [placed_at[actor] + START_UP_S for actor in waiting if actor in placed_at]
            if not set(waiting) <= set(placed_at):
                ends.append(began + self.settings.start_timeout_s)
            pause = max(0.0, min(PROBE_EVERY_S, *(end - time.monotonic() for end in ends)))
            left = set(ray.wait(list(waiting.values()), num_returns=len(waiting), timeout=pause)[1])
            waiting = {actor: ref for actor, ref in waiting.items() if ref in left}
            if not waiting:
                return _Unanswered()
            now = time.monotonic()
            for actor in set(waiting) - set(placed_at):
                process = _has_process(self.actors[actor])
                table_read = table_read and process is not None
                if process:
                    placed_at[actor] = now
            starting = sorted(set(waiting) & set(placed_at))
            unplaced = sorted(set(waiting) - set(placed_at))
            hung = [actor for actor in starting if now - placed_at[actor] >= START_UP_S]
            if (unplaced and now - began >= self.settings.start_timeout_s) or hung:
                return _Unanswered(unplaced=unplaced, starting=starting, hung=hung, table_read=table_read)
            if table_read:
                logger.info("Ray scoring actors after %.0f s: %d placed, their processes still starting (importing "
                            "torch and transformers); %d waiting for room (up to ray.start_timeout_s)", now - began,
                            len(starting), len(unplaced))
            else:
                logger.info("Ray scoring actors after %.0f s: %d not started yet (waiting for room, up to "
                            "ray.start_timeout_s, or starting)", now - began, len(waiting))

    def _check_installed(self, installed: list[tuple[str, str, str]]) -> None:
        """Refuse actors whose node runs other argilla-worker code than this process (an image upgraded on the
        worker's machine, not on the cluster): a chunk's scores from other code would be written as this model's.

        Raises:
            ConfigError: naming the first such actor's node, its version and fingerprint, and this process's; every
                actor is stopped.
        """
        version, code, _ = self.actor_type.installed(None)
        for index, (their_version, their_code, node) in enumerate(installed):
            if their_code != code:
                self.close()
                raise ConfigError(
                    f"Ray scoring actor {index + 1} of {len(installed)} runs on node {node} with argilla-worker "
                    f"{their_version} (code {their_code}), this worker with argilla-worker {version} (code {code}): "
                    "install the same argilla-worker on every node of the cluster")

    def summary(self) -> dict:
        """What ``status`` shows of these actors: how many, their nodes and devices, the model they hold, and how
        many times Ray started one again."""
        return {"actors": len(self.actors), "nodes": sorted(set(self.nodes)), "devices": list(self.devices),
                "model": self.version, "restarts": self.restarts}

    def __repr__(self) -> str:
        return f"RayScorer({len(self.actors)} actors, chunk_records={self.chunk_records})"

    def score(self, records: Iterable[ScoringInput]) -> Iterator[RecordScore]:
        """One RecordScore per input record, in input order (as :meth:`Scorer.score`).

        Chunk i goes to actor i mod n; each actor holds up to ``in_flight`` chunks in its own queue (Ray runs
        an actor's calls one after the other), so it starts the next chunk while the driver collects the last
        one. Results are taken in submission order.

        An actor whose process dies (a lost node, the OOM killer) is started again by Ray, up to
        ``ray.actor_restarts`` times, on a node with room: it loads the model again and scores the chunks it held,
        the run goes on, the scores are the same. A chunk that takes longer than ``PROBE_EVERY_S`` has its actor
        asked whether it runs (``alive``, in a concurrency group of its own: answered while a chunk runs); an actor
        started again that is not placed within ``ray.start_timeout_s`` (its node lost for good, no room left on
        the others) fails the run instead of holding it forever.

        Raises:
            DataError / ScoringError: as the local engine (an actor's error is re-raised as it was), or
                ScoringError when an actor died past its restarts, or was not placed again within
                ``ray.start_timeout_s`` (``broken`` then: the next run needs new actors).
        """
        ray = _ray()
        pending: deque[tuple[int, Any]] = deque()  # (actor index, object ref) of submitted chunks, oldest first
        limit = len(self.actors) * self.settings.in_flight
        self.stats, self.actor_stats = ScoringStats(), ScoringStats()
        self._run_began = time.perf_counter()
        stream = timed(records, self.stats.waited_for_input)
        sent = 0
        try:
            while chunk := list(islice(stream, self.chunk_records)):  # (the size may change as chunks come back)
                actor = sent % len(self.actors)
                pending.append((actor, self.actors[actor].score.remote(chunk, [self.files])))
                sent += 1
                while len(pending) >= limit:
                    yield from self._collect(*pending.popleft())
            while pending:
                yield from self._collect(*pending.popleft())
        except ray.exceptions.RayError as error:
            cause = _cause(error)
            if isinstance(cause, WorkerError):  # the actor's own answer (a record it cannot score): it lives on
                raise cause from None
            self.broken = True
            raise ScoringError(f"a Ray scoring actor failed: {_one_line(cause)}") from None
        except ConnectionError as error:  # Ray Client (ray://) lost its server: raised outside Ray's error tree
            self.broken = True
            raise lost_connection(error) from None
        finally:
            self._drain(pending)  # a run stopped or failed midway: the queued chunks finish before reuse
            self._release()

    def _collect(self, actor: int, ref: Any) -> list[RecordScore]:
        """The chunk's scores, once its actor sent them (the wait counted in ``stats.model_seconds``)."""
        started = time.perf_counter()
        self._wait(actor, ref)
        scores, stats, process = _ray().get(ref)
        self.stats.model_seconds += time.perf_counter() - started
        if process != self.processes[actor]:  # the actor's own warning stays in its node's log
            logger.warning("Ray scoring actor %d of %d runs in a new process (%d, was %d): its process died and Ray "
                           "started it again (ray.actor_restarts = %d each); it loaded the model again and scores the "
                           "chunks it held", actor + 1, len(self.actors), process, self.processes[actor],
                           self.settings.actor_restarts)
            self.processes[actor] = process
            self.restarts += 1
        self._add(stats)
        self.stats.seconds = time.perf_counter() - self._run_began  # as the local engine's: wall time, not the actors'
        self._size_chunks(stats)
        return scores

    def _size_chunks(self, chunk: ScoringStats) -> None:
        """With ``ray.chunk_records = "auto"``: the next chunks hold what an actor scores in ``AUTO_CHUNK_SECONDS``,
        by the ``chunk`` it just returned (its records over its own time), within ``AUTO_CHUNK_RANGE``."""
        if self.settings.chunk_records != "auto" or chunk.seconds <= 0 or not chunk.records:
            return
        low, high = AUTO_CHUNK_RANGE
        self.chunk_records = min(high, max(low, round(chunk.records / chunk.seconds * AUTO_CHUNK_SECONDS)))

    def _release(self) -> None:
        """The run's cached GPU memory back to the device (:meth:`ScoringActor.release`), in every actor but the
        lost ones; at most a few seconds (the actors are idle: their chunks were collected or drained)."""
        ray = _ray()
        if self.broken or not self.actors:
            return
        try:
            ray.get([actor.release.remote() for actor in self.actors], timeout=10)
        except (ray.exceptions.RayError, ConnectionError) as error:
            logger.debug("Ray scoring actors did not release their GPU memory: %s", _one_line(error))

    def _wait(self, actor: int, ref: Any) -> None:
        """Wait for the chunk ``ref`` queued on actor number ``actor``, as long as that actor has a place: every
        ``PROBE_EVERY_S`` (or ``ray.start_timeout_s`` when shorter) without an answer, it is asked whether it runs.

        Raises:
            ScoringError: the actor does not answer within ``ray.start_timeout_s`` (Ray started it again and has
                found it no room); ``broken`` then.
        """
        ray = _ray()
        timeout = self.settings.start_timeout_s
        while not ray.wait([ref], timeout=min(PROBE_EVERY_S, timeout))[0]:
            probe = self.actors[actor].alive.remote()
            if not ray.wait([probe], timeout=timeout)[0]:
                self.broken = True
                self.unplaced.add(actor)
                free = _resources(ray.available_resources())
                raise ScoringError(
                    f"Ray scoring actor {actor + 1} of {len(self.actors)} died and was not placed again within "
                    f"{timeout:g} s (ray.start_timeout_s): the cluster has no room for its "
                    f"{self.ask.gpus:g} GPU, {self.ask.cpus:g} CPU (free now: {free}; a node lost?): the next run "
                    "starts new actors on what the cluster has; add nodes, or lower ray.actors")

    def _drain(self, pending: deque[tuple[int, Any]]) -> None:
        """Wait for (and drop) the chunks still queued: at most actors × in_flight; none once the actors are broken
        (one may never be placed again: they are all stopped before a next run)."""
        ray = _ray()
        while pending and not self.broken:
            actor, ref = pending.popleft()
            try:
                self._wait(actor, ref)
                ray.get(ref)
            except (ray.exceptions.RayError, ScoringError):
                continue  # that chunk's error was (or will be) reported by the run that queued it
        pending.clear()

    def actor_shares(self) -> dict[str, float]:
        """The shares of the actors' time over the last run (summed over its chunks) spent waiting for input
        (tokenizing their chunk) and in the model: whether the actors themselves are bound by their device."""
        seconds = self.actor_stats.seconds
        if not seconds:
            return {}
        return {"records": self.actor_stats.input_wait_seconds / seconds,
                "model": self.actor_stats.model_seconds / seconds}

    def _add(self, stats: ScoringStats) -> None:
        """An actor's chunk counts into the run's (its time and waits into ``actor_stats``: they are not this
        driver's)."""
        self.actor_stats.seconds += stats.seconds
        self.actor_stats.input_wait_seconds += stats.input_wait_seconds
        self.actor_stats.model_seconds += stats.model_seconds
        total = self.stats
        total.records += stats.records
        total.scored += stats.scored
        total.skipped += stats.skipped
        total.truncated += stats.truncated
        total.mc_samples += stats.mc_samples
        for reason, count in stats.skip_reasons.items():
            total.skip_reasons[reason] = total.skip_reasons.get(reason, 0) + count

    def close(self, unplaced: AbstractSet[int] = frozenset()) -> None:
        """Stop the actors (the local Ray, if this process started one, stays up for the next run); those at
        the ``unplaced`` indexes, still waiting for room, are only killed: they hold nothing to clean."""
        ray = _ray()
        unplaced = set(unplaced) | self.unplaced
        self.files = None  # the model's files leave the object store with the last reference
        if not ray.is_initialized():  # the connection is gone (Ray Client ends a lost client's actors itself)
            self.actors = []
            return
        for index, actor in enumerate(self.actors):
            try:
                if index not in unplaced:
                    try:
                        ray.get(actor.close.remote(), timeout=30)
                    except ray.exceptions.RayError:
                        pass
                ray.kill(actor)
            except ConnectionError:  # the cluster is gone (Ray Client lost it): nothing left to stop
                break
        self.actors = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Unanswered:
    """Actors (their numbers from 0) that did not answer ``ready()`` in time: ``unplaced``, not given a process within
    ``ray.start_timeout_s``; ``starting``, given one that has not started yet; ``hung``, those of them given one
    ``START_UP_S`` ago; ``table_read``: False where Ray's actor table could not be read (Ray Client), so that an actor
    counted unplaced may be placed, starting."""

    unplaced: list[int] = field(default_factory=list)
    starting: list[int] = field(default_factory=list)  # placed, their processes starting (``hung`` among them)
    hung: list[int] = field(default_factory=list)
    table_read: bool = True

    @property
    def actors(self) -> set[int]:
        """Every actor that did not answer: none holds anything to clean (its constructor has not run)."""
        return set(self.unplaced) | set(self.starting)


def _has_process(actor: Any) -> bool | None:
    """Whether Ray has placed ``actor``: being created on a node (or running) with a process of its own, which may
    still be importing its code; None where this driver cannot read Ray's actor table (a Ray Client driver: the table
    is on the cluster). Reads Ray's internal global state (``ray._private.state``, no public call without the
    dashboard) — guarded: a Ray that moved it reads None, and the run then words its error for both cases."""
    try:
        from ray._private.state import state
        from ray.util.client import ray as client

        if client.is_connected():
            return None
        info = state.actor_table(actor._actor_id.hex())
        return info.get("State") in ("PENDING_CREATION", "ALIVE") and bool(info.get("Pid"))
    except Exception as error:  # noqa: BLE001 — internal API: any failure only means "unknown"
        logger.debug("Ray's actor table could not be read: %s", _one_line(error))
        return None


def check_cluster(settings: RaySettings) -> str:
    """``config check``'s line on the Ray engine: joins (or starts) Ray as a score run would and says what the
    actors would reserve of what the cluster has; leaves Ray as it found it (a Ray it started is stopped). Starts
    no actor, loads no model.

    Raises:
        ConfigError: Ray is not installed, cannot be joined, or a local Ray can never place the actors.
    """
    ray = _ray()
    started = not ray.is_initialized()
    _join(settings)
    try:
        ask, cluster, shortfall = _plan(settings)
        nodes = _check_nodes_code(ask) if joins_cluster(settings) else ""
    finally:
        if started:
            ray.shutdown()
    address, _ = _address(settings)
    where = f"cluster {address!r}" if address else "a local Ray"
    return (f"scoring on {where} ({_resources(cluster)}): {ask}" + (f"; {nodes}" if nodes else "")
            + (f" — {shortfall}" if shortfall else ""))


def _check_nodes_code(ask: _Ask, timeout_s: float = NODE_CHECK_TIMEOUT_S) -> str:
    """On a joined cluster: which argilla-worker code each live node that could hold one actor runs (a task of no
    resources pinned to each node, running the actors' own ``installed()``), so that a node with other code is found
    by ``config check``, not by the first run whose actor lands there. O(nodes).

    Returns:
        the line's part on the nodes, e.g. "2 node(s) that can hold an actor run this worker's code".

    Raises:
        ConfigError: a node runs other code (names the node, both versions and fingerprints) or cannot import
            argilla-worker at all.
    """
    ray = _ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe_type = _probed(ray)
    version, code, _ = probe_type.installed(None)

    def installed_on_node() -> tuple[str, str, str]:
        return probe_type.installed(None)

    probe = ray.remote(num_cpus=0, max_retries=0)(installed_on_node)
    nodes = [node for node in ray.nodes() if node.get("Alive") and _fits(ask, node.get("Resources", {}))]
    asked = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote():
             node.get("NodeManagerAddress", node["NodeID"]) for node in nodes}
    answered, unanswered = ray.wait(list(asked), num_returns=len(asked), timeout=timeout_s)
    for ref in answered:
        try:
            their_version, their_code, _ = ray.get(ref)
        except ray.exceptions.RayError as error:
            raise ConfigError(f"Ray node {asked[ref]} cannot run the scoring actors' code: "
                              f"{_one_line(_cause(error))} (every node needs argilla-worker installed: "
                              "pip install 'argilla-worker[ray]')") from None
        if their_code != code:
            raise ConfigError(f"Ray node {asked[ref]} runs argilla-worker {their_version} (code {their_code}), this "
                              f"worker argilla-worker {version} (code {code}): a scoring actor placed there would be "
                              "refused; install the same argilla-worker on every node of the cluster")
    for ref in unanswered:
        ray.cancel(ref, force=True)
    late = f" ({len(unanswered)} more did not answer within {timeout_s:g} s)" if unanswered else ""
    return f"{len(answered)} node(s) that can hold an actor run this worker's code{late}"


def _fits(ask: _Ask, resources: dict[str, float]) -> bool:
    """Whether one of the actors fits a node of these total ``resources``."""
    return all(resources.get(name, 0) + 1e-9 >= each for name, each in (("GPU", ask.gpus), ("CPU", ask.cpus)))


def lost_connection(error: ConnectionError) -> ScoringError:
    """The one-line error of a run whose Ray Client (``ray://``) connection was lost."""
    return ScoringError(f"the connection to the Ray cluster was lost: {_one_line(error)}")


def joins_cluster(settings: RaySettings) -> bool:
    """Whether the Ray engine joins a cluster (``ray.address`` or ``RAY_ADDRESS``) rather than starting a local
    Ray."""
    return bool(cluster_address(settings))


def cluster_address(settings: RaySettings) -> str:
    """The cluster the Ray engine joins (``ray.address``, else ``RAY_ADDRESS``); "" for a local Ray."""
    return _address(settings)[0]


def leave_cluster(settings: RaySettings) -> None:
    """Disconnect from a joined cluster (a local Ray this process started stays up for the next run). Ray ends a
    driver process whose node's Ray processes stopped at its next call into Ray (measured with Ray 2.60: "The
    connection to the plasma store is failed. Terminate the process" in Ray's log, no Python exception): a worker
    that stayed connected while idle would end at its first run after a cluster restart."""
    ray = _ray()
    if not joins_cluster(settings):
        return
    joined = ray.is_initialized()
    ray.shutdown()  # also when a lost Ray Client connection says it is not: its context would refuse the next join
    if joined:
        logger.info("left the Ray cluster %r until the next score run", _address(settings)[0])


def _join(settings: RaySettings) -> None:
    """Start a local Ray, or join ``ray.address``, unless this process already did.

    Raises:
        ConfigError: the cluster cannot be joined (names the address).
    """
    ray = _ray()
    if ray.is_initialized():
        return
    address, setting = _address(settings)
    if address:
        check_reachable(address, setting)

    def init() -> None:  # "local": Ray would otherwise join a cluster that `ray start` runs on this machine, silently
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)

    def try_again(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        logger.warning("%s = %r: Ray Client's server could not start this worker's session (%s); joining again, "
                       "try %d of %d", setting, address, _last_line(failure), state.attempt_number + 1,
                       CLIENT_JOIN_TRIES)
        ray.shutdown()  # the failed client context would refuse the next ray.init

    retrying = Retrying(retry=retry_if_exception(_client_session_not_started),
                        stop=stop_after_attempt(CLIENT_JOIN_TRIES), before_sleep=try_again, reraise=True)
    try:
        retrying(init)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ConfigError(f"{setting or 'ray.address'} = {address!r}: cannot start or join Ray "
                          f"({_join_failure(error, joined=bool(address))})") from None


def _client_session_not_started(error: BaseException) -> bool:
    """Whether a Ray Client join failed on the server's side, starting the session's own server process (measured
    right after a head restarted: the process ended at once, with nothing in its log; the proxy says so, or fails
    looking at it): a new connection gets a new server. Ray Client's other failures (a refused token, a timeout, a
    runtime environment the server refused) are not tried again."""
    said = str(error)
    return isinstance(error, ConnectionAbortedError) and "Initialization failure from server" in said and any(
        cause in said for cause in CLIENT_SESSION_NOT_STARTED)


def _join_failure(error: BaseException, *, joined: bool) -> str:
    """Why ``ray.init`` failed, in one line: Ray's last words ("Failed to connect to Ray cluster at …") and the last
    line of the connection error it keeps as text in the exception under them — e.g. ``ray.exceptions.
    AuthenticationError: … RAY_AUTH_MODE is currently 'disabled' (not 'token') …`` from a cluster with token
    authentication joined without ``RAY_AUTH_MODE=token`` and its token. Joining a cluster (``joined``) without
    ``RAY_AUTH_MODE=token``, any other failure gets a hint at token authentication, which Ray Client reports as a
    timeout."""
    under = error.__cause__ or error.__context__
    lines = [line.strip() for line in str(under or "").splitlines() if line.strip()]
    said = f"{_one_line(error, 200)}: {_one_line(lines[-1], 700)}" if lines else _one_line(error)
    if joined and "AuthenticationError" not in said and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        said += ("; if the cluster uses token authentication, set RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN "
                 "or ~/.ray/auth_token): through Ray Client (ray://) a refused token only times out")
    return said


def _plan(settings: RaySettings) -> tuple[_Ask, dict[str, float], str]:
    """On the Ray this process joined: what the actors would reserve, the cluster's resources, and the shortfall
    (:func:`_room`: "" when it has room).

    Raises:
        ConfigError: a local Ray can never place the actors.
    """
    cluster = _ray().cluster_resources()
    ask = _Ask.of(settings, cluster)
    return ask, cluster, _room(ask, cluster, settings)


def _address(settings: RaySettings) -> tuple[str, str]:
    """The cluster Ray joins and the setting that names it: ``ray.address``, else the ``RAY_ADDRESS`` environment
    variable (``ray.init`` reads it); ("", "") for a local Ray."""
    if settings.address:
        return settings.address, "ray.address"
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"], "RAY_ADDRESS"
    return "", ""


def check_reachable(address: str, setting: str, timeout_s: float = 5.0) -> None:
    """Fail at once where nothing answers at a cluster's ``host:port`` address: Ray would retry for about 12 minutes
    (20 tries of its GCS client's timeouts) before it gave up. ``auto`` is the address Ray's file on this machine
    names (left by the last ``ray start``: a cluster that died leaves it behind); ``ray://`` addresses are Ray
    Client's to check (it gives up within a minute).

    Raises:
        ConfigError: no connection to ``address`` within ``timeout_s`` (names the setting, the address, the cause).
    """
    named = f"{setting} = {address!r}"
    if address == "auto":
        address = _auto_address() or ""
        named += f" (Ray's address file on this machine names {address})"
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as error:
        raise ConfigError(f"{named}: nothing answers there ({error or type(error).__name__}): give the head node's "
                          "address (host:6379), 'auto' on a node of a running cluster, or 'ray://head:10001'") from None


def _auto_address() -> str | None:
    """The cluster ``ray.init(address="auto")`` joins: the address in Ray's file in its temporary directory
    (``RAY_TMPDIR``, else ``TMPDIR``, else /tmp, then ``ray/ray_current_cluster``); None when there is none."""
    try:
        from ray._private.utils import read_ray_address  # Ray's own reader: its place may move between releases
    except ImportError:
        return None
    try:
        return read_ray_address() or None
    except OSError:
        return None


def _room(ask: _Ask, cluster: dict[str, float], settings: RaySettings) -> str:
    """What the actors ask beyond the ``cluster`` ("" when it has room). A Ray of fixed size (a local one) can never
    place them: refused; a joined cluster may add nodes: the shortfall, and the run waits up to
    ``ray.start_timeout_s``.

    Raises:
        ConfigError: the actors ask more GPUs or CPUs than the local Ray has (names both and the keys).
    """
    short = ask.beyond(cluster)
    if not short:
        return ""
    if not _address(settings)[0]:
        raise ConfigError(f"ray: {ask} ask {short}: lower ray.actors, ray.gpus_per_actor or "
                          "ray.cpus_per_actor (or join a larger cluster with ray.address)")
    return (f"ray: {ask} ask {short}: a run waits up to {settings.start_timeout_s:g} s (ray.start_timeout_s) for "
            "the cluster to add nodes")


@dataclass(frozen=True)
class _Ask:
    """What the scoring actors reserve on the cluster, all together."""

    count: int
    gpus: float
    cpus: float

    @classmethod
    def of(cls, settings: RaySettings, cluster: dict[str, float]) -> _Ask:
        """The ``[ray]`` table on this ``cluster``: GPUs per actor (default 1 when it has GPUs, else 0) and how
        many actors (default: one per GPU it has, at least 1)."""
        cluster_gpus = int(cluster.get("GPU", 0))
        gpus = settings.gpus_per_actor if settings.gpus_per_actor is not None else (1.0 if cluster_gpus else 0.0)
        return cls(settings.actors or max(1, int(cluster_gpus // gpus) if gpus else 1), gpus,
                   settings.cpus_per_actor)

    def __str__(self) -> str:
        return f"{self.count} actor(s) × ({self.gpus:g} GPU, {self.cpus:g} CPU)"

    def beyond(self, cluster: dict[str, float]) -> str:
        """What the actors ask beyond the ``cluster``'s total resources ("" when it has room), e.g.
        ``"3 CPU, the cluster has 2"``."""
        short = [f"{self.count * each:g} {name}, the cluster has {cluster.get(name, 0):g}"
                 for name, each in (("GPU", self.gpus), ("CPU", self.cpus))
                 if self.count * each > cluster.get(name, 0) + 1e-9]
        return "; ".join(short)


def _resources(resources: dict[str, float]) -> str:
    return f"{resources.get('GPU', 0):g} GPU, {resources.get('CPU', 0):g} CPU"


def _cause(error: BaseException) -> BaseException:
    """The exception an actor raised, out of Ray's wrapper (the wrapper itself when there is none)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def _last_line(error: BaseException | None) -> str:
    """The last line of an error's text (a server's traceback in it ends with the error raised there)."""
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return _one_line(lines[-1] if lines else type(error).__name__, 300)


def _one_line(error: BaseException | str, limit: int = 400) -> str:
    """Ray's account of a failure (several lines: the actor, its node, the task) in one line, cut at ``limit``."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
