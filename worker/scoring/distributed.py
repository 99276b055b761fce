"""Scoring on a Ray cluster (``scoring.engine = "ray"``): a pool of actors, one model each, fed from the
streaming pull; the scores come back in input order to the one process that pushes them.

Each actor holds one :class:`~worker.scoring.engine.Scorer` (tokenizing, MC dropout and the per-record
arrays all run there) on the GPU its reservation gives it (``ray.gpus_per_actor``; Ray sets each actor's
``CUDA_VISIBLE_DEVICES``). The driver cuts the record stream into chunks of ``ray.chunk_records``, sends
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
import shutil
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from worker.config import RaySettings
from worker.errors import ConfigError, ScoringError, WorkerError
from worker.iterables import batched
from worker.scoring.batching import ScoringInput
from worker.scoring.engine import RecordScore, ScoringStats

logger = logging.getLogger(__name__)


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
    """One model on one device, scoring the chunks it is sent (runs inside a Ray actor)."""

    def __init__(self, files: dict[str, bytes], version: str, device: str, options: dict,
                 trust_remote_code: bool = False):
        import torch

        from worker.scoring import Scorer, load_classifier

        self.directory = Path(tempfile.mkdtemp(prefix="argilla-worker-model-"))
        for name, content in files.items():
            target = self.directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        threads = options.pop("threads", None)
        if threads:
            torch.set_num_threads(threads)
        self.failure: WorkerError | None = None
        try:
            classifier = load_classifier(self.directory, device=device, version=version,
                                         trust_remote_code=trust_remote_code)
        except WorkerError as error:  # raised by device(): Ray hands a task's error back whole, a constructor's
            self.failure = error      # only as a traceback in a message
            return
        self.scorer = Scorer(classifier, progress=False, **options)

    def device(self) -> str:
        """The device the model runs on; the model's load failure (a WorkerError) if it could not load."""
        if self.failure is not None:
            raise self.failure
        return str(self.scorer.classifier.device)

    def score(self, chunk: list[ScoringInput]) -> tuple[list[RecordScore], ScoringStats]:
        scores = list(self.scorer.score(chunk))
        return scores, self.scorer.stats

    def close(self) -> None:
        if self.failure is None:
            self.scorer.close()
        shutil.rmtree(self.directory, ignore_errors=True)


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
        ConfigError: Ray is not installed, or the cluster cannot be joined.
    """

    def __init__(self, model_dir: Path, version: str, settings: RaySettings, *, device: str = "auto",
                 options: dict | None = None, trust_remote_code: bool = False):
        ray = _ray()
        self.settings = settings
        self.version = version
        self.options = dict(options or {})  # as given (the cache in Services compares them)
        self.stats = ScoringStats()
        if not ray.is_initialized():
            try:
                ray.init(address=settings.address or None, include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ConfigError(f"ray.address = {settings.address!r}: cannot start or join Ray ({error})") from error
        cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
        gpus = settings.gpus_per_actor if settings.gpus_per_actor is not None else (1.0 if cluster_gpus else 0.0)
        count = settings.actors or max(1, int(cluster_gpus // gpus) if gpus else 1)
        options = dict(options or {})
        if not gpus and settings.cpus_per_actor >= 1:
            options["threads"] = int(settings.cpus_per_actor)
        ask = _Ask(count, gpus, settings.cpus_per_actor)
        self._check_room(ask, ray.cluster_resources())
        files = ray.put(model_files(Path(model_dir)))
        actor_class = ray.remote(num_gpus=gpus, num_cpus=settings.cpus_per_actor)(ScoringActor)
        self.actors = [actor_class.remote(files, version, device, options, trust_remote_code) for _ in range(count)]
        devices = self._started(ask)
        logger.info("scoring with %d Ray actor(s) (%s GPU, %s CPU each) on %s", count, gpus,
                    settings.cpus_per_actor, ", ".join(devices))

    def _check_room(self, ask: _Ask, cluster: dict[str, float]) -> None:
        """Refuse at once what a Ray of fixed size (a local one) can never place; on a cluster (``ray.address``
        set: it may add nodes) only warn, and :meth:`_started` waits up to ``ray.start_timeout_s``.

        Raises:
            ConfigError: the actors ask more GPUs or CPUs than the local Ray has (names both and the keys).
        """
        short = ask.beyond(cluster)
        if not short:
            return
        if not self.settings.address and not os.environ.get("RAY_ADDRESS"):
            raise ConfigError(f"ray: {ask} ask {short}: lower ray.actors, ray.gpus_per_actor or "
                              "ray.cpus_per_actor (or join a larger cluster with ray.address)")
        logger.warning("ray: %s ask %s: waiting up to %g s (ray.start_timeout_s) for the cluster to add nodes",
                       ask, short, self.settings.start_timeout_s)

    def _started(self, ask: _Ask) -> list[str]:
        """Wait until every actor has loaded its model; its device each.

        Raises:
            ScoringError: an actor could not load the model, or had not started (placed, model loaded) within
                ``ray.start_timeout_s`` (names how many, what they ask and what the cluster has free); every actor
                is stopped.
        """
        ray = _ray()
        refs = [actor.device.remote() for actor in self.actors]
        _, waiting = ray.wait(refs, num_returns=len(refs), timeout=self.settings.start_timeout_s)
        if waiting:
            free = ray.available_resources()
            self.close(unplaced={index for index, ref in enumerate(refs) if ref in set(waiting)})
            raise ScoringError(
                f"{len(waiting)} of {ask.count} Ray scoring actor(s) did not start within "
                f"{self.settings.start_timeout_s:g} s (ray.start_timeout_s): {ask} ask more than the cluster gives "
                f"(free now: {_resources(free)}), or the model loads slower: lower ray.actors, ray.gpus_per_actor "
                "or ray.cpus_per_actor, add nodes, or raise ray.start_timeout_s")
        try:
            return ray.get(refs)
        except ray.exceptions.RayError as error:
            self.close()
            raise ScoringError(f"the Ray scoring actors could not load model {self.version}: "
                               f"{_cause(error)}") from None

    def __repr__(self) -> str:
        return f"RayScorer({len(self.actors)} actors, chunk_records={self.settings.chunk_records})"

    def score(self, records: Iterable[ScoringInput]) -> Iterator[RecordScore]:
        """One RecordScore per input record, in input order (as :meth:`Scorer.score`).

        Chunk i goes to actor i mod n; each actor holds up to ``in_flight`` chunks in its own queue (Ray runs
        an actor's calls one after the other), so it starts the next chunk while the driver collects the last
        one. Results are taken in submission order.

        Raises:
            DataError / ScoringError: as the local engine (an actor's error is re-raised as it was), or
                ScoringError when an actor died.
        """
        ray = _ray()
        pending: deque = deque()  # object refs of submitted chunks, oldest first
        limit = len(self.actors) * self.settings.in_flight
        self.stats = ScoringStats()
        try:
            for index, chunk in enumerate(batched(records, self.settings.chunk_records)):
                pending.append(self.actors[index % len(self.actors)].score.remote(list(chunk)))
                while len(pending) >= limit:
                    yield from self._collect(pending.popleft())
            while pending:
                yield from self._collect(pending.popleft())
        except ray.exceptions.RayError as error:
            cause = _cause(error)
            if isinstance(cause, WorkerError):
                raise cause from None
            raise ScoringError(f"a Ray scoring actor failed: {cause}") from None
        finally:
            _drain(pending)  # a run stopped or failed midway: the queued chunks finish before the actors are reused

    def _collect(self, ref) -> list[RecordScore]:
        scores, stats = _ray().get(ref)
        self._add(stats)
        return scores

    def _add(self, stats: ScoringStats) -> None:
        total = self.stats
        total.records += stats.records
        total.scored += stats.scored
        total.skipped += stats.skipped
        total.truncated += stats.truncated
        total.seconds += stats.seconds
        total.mc_samples += stats.mc_samples
        for reason, count in stats.skip_reasons.items():
            total.skip_reasons[reason] = total.skip_reasons.get(reason, 0) + count

    def close(self, unplaced: AbstractSet[int] = frozenset()) -> None:
        """Stop the actors (the local Ray, if this process started one, stays up for the next run); those at
        the ``unplaced`` indexes, still waiting for room, are only killed: they hold nothing to clean."""
        ray = _ray()
        for index, actor in enumerate(self.actors):
            if index not in unplaced:
                try:
                    ray.get(actor.close.remote(), timeout=30)
                except ray.exceptions.RayError:
                    pass
            ray.kill(actor)
        self.actors = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class _Ask:
    """What the scoring actors reserve on the cluster, all together."""

    count: int
    gpus: float
    cpus: float

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


def _drain(pending: deque) -> None:
    """Wait for (and drop) the chunks still queued: at most actors × in_flight."""
    ray = _ray()
    while pending:
        try:
            ray.get(pending.popleft())
        except ray.exceptions.RayError:
            continue  # that chunk's error was (or will be) reported by the run that queued it


def _cause(error: BaseException) -> BaseException:
    """The exception an actor raised, out of Ray's wrapper (the wrapper itself when there is none)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error
