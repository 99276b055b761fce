"""The worker's long-lived parts, built once from the configuration and shared by the CLI, the jobs and
the runner: the gateway to Argilla, the model registry, the state files, the plugins, the current model.
Building it loads no ML library (``models list`` and ``status`` stay fast)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import pluggy

from worker.config import WorkerSettings
from worker.crowd import CrowdModel, CrowdStore, TaughtLookup
from worker.errors import ConfigError, NoModelError
from worker.full_pass import FullPassStore
from worker.gateway import ArgillaGateway
from worker.gateway.schema import WORKER_METADATA_TYPES
from worker.gateway.sync_state import FailedPushes, SyncState
from worker.plugins import WorkerContext, call_each, plugin_manager
from worker.registry import ModelRegistry, ModelVersion
from worker.stability import StopSetStore
from worker.test_set import TestSetStore
from worker.view import QuantileStore

if TYPE_CHECKING:
    from worker.scoring import Classifier, ModelHead
    from worker.scoring.distributed import RayScorer

logger = logging.getLogger(__name__)


class Services:
    """The worker's long-lived parts, built once from the configuration."""

    def __init__(self, settings: WorkerSettings, plugins: pluggy.PluginManager | None = None, *,
                 checking: bool = False):
        self.settings = settings
        self._given_plugins = plugins
        self.context = WorkerContext(settings, checking=checking)  # checking: `config check` (plugins send nothing)
        self._classifier: Classifier | None = None
        self._ray_scorer: RayScorer | None = None
        self._ray_idle_since: float | None = None  # time.monotonic() when the last Ray score run ended
        self.lock = threading.Lock()  # GPU / CPU-heavy work: strictly one job at a time

    @cached_property
    def plugins(self) -> pluggy.PluginManager:
        """The plugin manager, loaded and started (``startup`` hooks) on first use: a command that needs no
        plugin (``models list``) starts none; the running worker starts them before anything else."""
        manager = self._given_plugins if self._given_plugins is not None else plugin_manager(
            self.settings.plugin_modules)
        call_each(manager, "startup", context=self.context)
        return manager

    @cached_property
    def gateway(self) -> ArgillaGateway:
        if not self.settings.argilla.dataset:
            raise ConfigError("argilla.dataset is not set (the Argilla dataset the worker serves)")
        argilla = self.settings.argilla
        return ArgillaGateway(api_url=argilla.api_url, api_key=argilla.key(), dataset_name=argilla.dataset,
                              workspace=argilla.workspace, fields=argilla.fields, question=argilla.question,
                              reference=argilla.reference, guidelines=argilla.guidelines,
                              metadata_prefix=argilla.metadata_prefix, http=argilla.http(),
                              reference_map=argilla.reference_map)

    @cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.settings.registry.path, keep=self.settings.registry.keep)

    @cached_property
    def sync_state(self) -> SyncState:
        return SyncState(self.settings.state_dir / "sync.json")

    @cached_property
    def view_quantiles(self) -> QuantileStore:
        return QuantileStore(self.settings.state_dir / "view_quantiles.json")

    @cached_property
    def stop_sets(self) -> StopSetStore:
        return StopSetStore(self.settings.state_dir / "stop_sets.json")

    @cached_property
    def test_sets(self) -> TestSetStore:
        return TestSetStore(self.settings.state_dir / "test_sets.json")

    @cached_property
    def crowds(self) -> CrowdStore:
        return CrowdStore(self.settings.state_dir / "crowd.json")

    @cached_property
    def taught(self) -> TaughtLookup:
        """A model version → the ids of the records it was taught (:meth:`ModelRegistry.taught`), read once a
        version (they never change): the views that echo a training label (:func:`worker.crowd.echoes_training`), the
        test-set records a model may not be measured on. Room for every version the registry keeps (``registry.keep``)
        and two gone ones, so records carrying the views of several versions never read a file twice in a pass.
        Memory O(taught ids) a kept version."""
        return lru_cache(maxsize=self.settings.registry.keep + 2)(self.registry.taught)

    def crowd(self, labels: Sequence[str], estimate: CrowdModel | None = None) -> CrowdModel:
        """How votes become labels (``[consensus]``): ``estimate``, else the last one stored for this dataset
        (uniform weights before the first), or uniform weights with ``consensus.weighted = false``."""
        settings = self.settings.consensus
        crowd = estimate or self.crowds.get(self.gateway.dataset_key, labels)
        if not settings.weighted:
            crowd = CrowdModel.uniform(labels)
        return replace(crowd, resolve_ties=settings.ties == "resolve", taught=self.taught)

    @cached_property
    def failed_pushes(self) -> FailedPushes:
        return FailedPushes(self.settings.state_dir / "failed_pushes.json")

    @cached_property
    def full_passes(self) -> FullPassStore:
        return FullPassStore(self.settings.state_dir / "full_pass")

    def forget_dataset(self, key: str) -> None:
        """The bound dataset is gone from the server (deleted, perhaps created again under its name; see
        :class:`~worker.errors.DatasetReplacedError`): drop what was kept about its records — the watermark, the
        failed pushes, a stopped full run's checkpoint, the stop set, the test set — so the dataset of that name is
        read from the start. The models, the annotators' estimates and the counters stay. ``key``: the gone
        dataset's (``DatasetReplacedError``)."""
        self.sync_state.forget(key)
        self.failed_pushes.forget(key)
        self.full_passes.clear(key)
        self.stop_sets.forget(key)
        self.test_sets.forget(key)

    def labels(self) -> list[str]:
        """The bound question's labels: binds to the dataset (validated once). Reads only: nothing on the
        server changes (see :meth:`prepare_for_push`).

        Raises:
            ConfigError: the dataset does not exist, or does not fit the ``[argilla]`` config.
        """
        labels = self.gateway.existing_labels()
        if labels is None:
            raise ConfigError(f"dataset {self.settings.argilla.workspace}/{self.settings.argilla.dataset} does not "
                              f"exist on {self.settings.argilla.api_url}: create it with the Argilla SDK or "
                              f"`argilla-worker ingest` first")
        return labels

    def prepare_for_push(self) -> list[str]:
        """:meth:`labels`, then what a job that writes scores needs on the dataset: the dataset's metadata
        properties read again (the worker's are added on their first write) and its section of the guidelines
        (``argilla.guidelines = "append"``)."""
        self.labels()
        return list(self.gateway.prepare().labels)

    def ensure_dataset(self) -> None:
        """The long-running worker only: create the dataset from ``argilla.labels`` when it does not exist yet
        (reading commands never create one)."""
        if self.settings.argilla.labels and self.gateway.existing_labels() is None:
            self.gateway.ensure_dataset(self.settings.argilla.labels, multi_label=self.settings.argilla.multi_label)

    def extra_scorers(self) -> dict:
        """Plugin scorers by name (a name clashing with built-in metadata is refused and logged): those for
        class distributions, or for label sets when the dataset's question is multi-label."""
        hook = "register_label_set_scorers" if self.gateway.binding.multi_label else "register_scorers"
        scorers = {}
        for plugin, registered in call_each(self.plugins, hook, context=self.context):
            for name, function in registered.items():
                if name in WORKER_METADATA_TYPES or name in scorers:
                    logger.error("plugin %s: scorer name %r is already taken; ignored", plugin, name)
                else:
                    scorers[name] = function
        return scorers

    def publishers(self) -> list:
        return [sink for _, sinks in call_each(self.plugins, "register_publishers", context=self.context)
                for sink in sinks]

    def current_model(self) -> ModelVersion:
        current = self.registry.current()
        if current is None:
            raise NoModelError(f"no current model in {self.registry.root}: train one (`argilla-worker train`) or "
                                 f"register yours (`argilla-worker models register DIR`)")
        return current

    def ray_scorer(self, options: dict) -> RayScorer:
        """The Ray engine's actors for the current model (``scoring.engine = "ray"``), kept between score runs:
        a webhook's one-record rescore does not start actors and ship the model again. Replaced (the old
        actors stopped) when the model version or the scorer's options change, or an actor died in the last run
        (a joined cluster whose connection was lost is joined afresh)."""
        from worker.scoring.distributed import RayScorer, leave_cluster, lost_connection

        current = self.current_model()
        cached = self._ray_scorer
        self._ray_idle_since = None
        if (cached is not None and not cached.broken and cached.version == current.version
                and cached.options == options):
            return cached
        broken = cached is not None and cached.broken
        self.close_ray_scorer()
        if broken:  # a lost connection (Ray Client) stays lost: the cluster is joined afresh
            leave_cluster(self.settings.ray)
        try:
            self._ray_scorer = RayScorer(current.path, current.version, self.settings.ray,
                                         device=self.settings.scoring.device, options=options,
                                         trust_remote_code=self.settings.registry.trust_remote_code)
        except BaseException as error:
            self._leave_ray()  # joined for nothing (actors not placed, a model they cannot load): left at once
            if isinstance(error, ConnectionError):
                raise lost_connection(error) from None
            raise
        return self._ray_scorer

    def scoring_summary(self) -> dict:
        """The ``scoring`` part of the status: the engine; with Ray, the cluster and the actors held now
        (:meth:`RayScorer.summary`; none between runs once a joined cluster was left, or before the first run)."""
        if self.settings.scoring.engine != "ray":
            return {"engine": "local", "device": self.settings.scoring.device}
        from worker.scoring.distributed import cluster_address

        held = self._ray_scorer.summary() if self._ray_scorer is not None else {"actors": 0}
        return {"engine": "ray", "cluster": cluster_address(self.settings.ray) or "local", **held}

    def ray_run_ended(self) -> None:
        """A score run on the Ray engine ended (its caller holds :attr:`lock`, or is the only job): a joined cluster
        is left at once with ``ray.keep_joined_s = 0``, else when :meth:`release_idle_ray` finds it idle that long."""
        self._ray_idle_since = time.monotonic()
        if self.settings.ray.keep_joined_s == 0:
            self._leave_ray()

    def release_idle_ray(self) -> None:
        """Stop the actors and leave a joined cluster (``ray.address`` / ``RAY_ADDRESS``) once no score run has
        used them for ``ray.keep_joined_s``: the runner asks between jobs (about every second); a job running
        holds :attr:`lock` and the actors. A local Ray this process started is kept: nothing outside the worker
        stops it."""
        idle = self._ray_idle_since
        if idle is None or time.monotonic() - idle < self.settings.ray.keep_joined_s:
            return
        if not self.lock.acquire(blocking=False):
            return
        try:
            self._leave_ray()
        finally:
            self.lock.release()

    def _leave_ray(self) -> None:
        from worker.scoring.distributed import joins_cluster, leave_cluster

        self._ray_idle_since = None
        if joins_cluster(self.settings.ray):
            self.close_ray_scorer()
            leave_cluster(self.settings.ray)

    def close_ray_scorer(self) -> None:
        """Stop the Ray engine's actors, if any (the runner calls it on its way out)."""
        if self._ray_scorer is not None:
            self._ray_scorer.close()
            self._ray_scorer = None

    def classifier(self) -> Classifier:
        """The current model, loaded once per version on ``scoring.device``."""
        current = self.current_model()
        if self._classifier is None or self._classifier.version != current.version:
            self._classifier = self.load(current)
        return self._classifier

    def load(self, entry: ModelVersion) -> Classifier:
        """A registered version loaded afresh on ``scoring.device`` (running the code it ships only with
        ``registry.trust_remote_code``)."""
        from worker.scoring import load_classifier  # torch: only for the commands that score

        return load_classifier(entry.path, device=self.settings.scoring.device, version=entry.version,
                               trust_remote_code=self.settings.registry.trust_remote_code)

    def model_head(self) -> ModelHead:
        """The current model's labels, version and thresholds: from the loaded model with the local engine,
        from its config alone with ``scoring.engine = "ray"`` (the actors hold the models; the driver loads no
        weights, so a model too big for the driver's machine still scores)."""
        if self.settings.scoring.engine != "ray":
            return self.classifier().head
        from worker.scoring import read_head

        current = self.current_model()
        return read_head(current.path, current.version, trust_remote_code=self.settings.registry.trust_remote_code)
