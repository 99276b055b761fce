"""What the running worker reports: its status (``status.json``, ``/healthz``, ``argilla-worker status``),
its Prometheus metrics, and the count of corrections since the last retrain — each kept in one place."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from worker.binding import DatasetBinding
from worker.crowd import CrowdModel
from worker.files import read_json, utc_now, write_json_atomic
from worker.metrics import WorkerMetrics
from worker.registry import ModelVersion

logger = logging.getLogger(__name__)


class Mode(StrEnum):
    """How the worker learns about changes."""

    STARTING = "starting"
    WEBHOOKS = "webhooks"  # Argilla delivers signed events
    POLLING = "polling"  # incremental runs every scoring.interval_minutes


class JobState(StrEnum):
    OK = "ok"
    RETRYING = "retrying"  # Argilla was unavailable: queued again after a backoff
    SKIPPED = "skipped"  # nothing to do yet (no model, too few annotations) or stopped on request
    FAILED = "failed"


@dataclass
class Status:
    """What ``argilla-worker status`` and ``/healthz`` show (no secrets)."""

    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=utc_now)
    http_url: str | None = None
    mode: str = Mode.STARTING
    mode_reason: str = ""
    argilla: dict = field(default_factory=lambda: {"reachable": None, "error": None, "since": None})
    binding: dict = field(default_factory=dict)  # which dataset, fields and question this worker serves
    model: dict = field(default_factory=dict)
    annotators: dict = field(default_factory=dict)  # the team lead's view of the crowd estimate (worker.crowd)
    scoring: dict = field(default_factory=dict)  # the engine; on Ray, the actors held (Services.scoring_summary)
    queue: list[str] = field(default_factory=list)
    corrections_pending: int = 0
    retrain_at: int = 0  # the pending corrections that start a retrain (0: none while there is no model)
    jobs: dict = field(default_factory=dict)
    running: dict = field(default_factory=dict)  # the job under way: {"job", "since", "progress"} (empty: none)
    plugins: list[str] = field(default_factory=list)
    stopping: bool = False


class StatusBook:
    """The status and the metrics, updated together and saved atomically to ``path`` (thread-safe)."""

    def __init__(self, path: Path, api_url: str):
        self.path = path
        self.api_url = api_url
        self.status = Status()
        self.metrics = WorkerMetrics()
        self._lock = threading.Lock()
        self._last_outcome: dict[str, tuple[str, str]] = {}  # job kind -> (state, summary) last logged

    def job_result(self, kind: str, state: JobState, summary: str, started: float) -> None:
        """Record how a job ended (``started``: its ``time.perf_counter()`` at start). The log gets the line at INFO
        when the outcome differs from that kind's last one, at DEBUG when it repeats it (an idle incremental run
        every few minutes, a wait for the first model): a service's log says what changed, not that nothing did;
        ``status`` and ``/metrics`` still show every run."""
        seconds = time.perf_counter() - started
        self.status.jobs[str(kind)] = {"status": str(state), "summary": summary, "seconds": round(seconds, 2),
                                       "at": utc_now()}
        self.metrics.job_result(str(kind), state == JobState.OK, seconds)
        outcome = (str(state), summary)
        repeated = self._last_outcome.get(str(kind)) == outcome
        self._last_outcome[str(kind)] = outcome
        logger.log(logging.DEBUG if repeated else logging.INFO, "job %s %s (ran %.1f s): %s", kind, state, seconds,
                   summary)

    def set_running(self, kind: str | None, progress: str = "") -> None:
        """The job under way (None: none) and how far it got — a full rescore of 10^6 records runs for hours."""
        if kind is None:
            self.status.running = {}
        elif self.status.running.get("job") != str(kind):
            self.status.running = {"job": str(kind), "since": utc_now(), "progress": progress}
        else:
            self.status.running = {**self.status.running, "progress": progress}

    def argilla_ok(self) -> None:
        if self.status.argilla.get("reachable") is not True:
            logger.info("Argilla reachable at %s", self.api_url)
        self.status.argilla = {"reachable": True, "error": None, "since": utc_now()}
        self.metrics.argilla_up.set(1)

    def argilla_down(self, error: Exception) -> None:
        if self.status.argilla.get("reachable") is not False:
            self.status.argilla = {"reachable": False, "error": str(error)[:300], "since": utc_now()}
            logger.error("Argilla unreachable at %s: %s", self.api_url, error)
        self.metrics.argilla_up.set(0)

    def set_mode(self, mode: Mode, reason: str) -> None:
        self.status.mode, self.status.mode_reason = mode, reason
        logger.log(logging.INFO if mode == Mode.WEBHOOKS else logging.WARNING, "%s mode: %s", mode, reason)

    def set_model(self, current: ModelVersion | None) -> None:
        """The current model's version and validation figures (empty without a model)."""
        if current is None:
            self.status.model = {}
            return
        self.status.model = current.summary()
        self.metrics.set_model(current.version, current.metrics.get("validation", {}),
                               current.metrics.get("stability") or {}, current.metrics.get("test"))

    def set_annotators(self, crowd: CrowdModel | None) -> None:
        """The last estimate of the annotators' agreement, weight and quality (empty before the first)."""
        self.status.annotators = crowd.summary() if crowd is not None else {}
        self.metrics.set_annotators(crowd.annotators if crowd is not None else {})

    def set_binding(self, dataset: str, binding: DatasetBinding) -> None:
        """What this worker serves (two workers on one dataset's two questions tell themselves apart here)."""
        self.status.binding = {"dataset": dataset, "fields": list(binding.fields), "question": binding.question,
                               "multi_label": binding.multi_label, "rating": binding.rating,
                               "chat_fields": list(binding.chat_fields), "reference": str(binding.reference),
                               "metadata_prefix": binding.metadata_prefix}

    def set_scoring(self, summary: dict) -> None:
        """Where scoring runs (:meth:`~worker.jobs.Services.scoring_summary`); a Ray actor started again since the
        last call is said in the log by the engine itself."""
        self.status.scoring = summary

    def set_corrections(self, pending: int, retrain_at: int = 0) -> None:
        """The corrections counted since the last retrain, and how many start the next (0: no model to retrain)."""
        self.status.corrections_pending = pending
        self.status.retrain_at = retrain_at
        self.metrics.corrections_pending.set(pending)

    def save(self, queue: list[str]) -> None:
        self.status.queue = queue
        self.metrics.queue_depth.set(len(queue))
        with self._lock:
            write_json_atomic(self.path, self.status.__dict__)


class CorrectionCounter:
    """Submitted responses since the last retrain, persisted (``counters.json``) so that a restart does not
    forget them. Thread-safe: webhook deliveries count from the HTTP thread."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self.pending: int = int((read_json(path, {}) or {}).get("corrections_pending", 0))

    def add(self, count: int) -> int:
        """Count ``count`` more corrections; the new total."""
        with self._lock:
            self.pending += max(0, count)
            self._save()
            return self.pending

    def consume(self, counted: int) -> int:
        """A retrain saw ``counted`` corrections: those are no longer pending (ones counted since stay)."""
        with self._lock:
            self.pending = max(0, self.pending - counted)
            self._save()
            return self.pending

    def _save(self) -> None:
        write_json_atomic(self.path, {"corrections_pending": self.pending})
