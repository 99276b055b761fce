"""The long-running worker: one queue of work, one place that runs it.

Schedules (APScheduler, SQLite job store) and webhook events only *enqueue* work; the main thread
takes one item at a time and runs it, so model work never overlaps. Pending items of the same kind
merge (a burst of webhook events becomes one rescore of the records they name, after a short
debounce). Signals: the first SIGTERM/SIGINT lets the current batch finish and exits 0; a second
one exits immediately.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker.config import WorkerSettings
from worker.errors import (
    ArgillaGatewayError,
    ArgillaUnavailableError,
    ConfigError,
    DataError,
    Interrupted,
    NoModelError,
    WorkerError,
)
from worker.files import utc_now, write_json_atomic
from worker.jobs import Services, publish_job, score_job, train_job
from worker.registry import check_writable

if TYPE_CHECKING:
    from worker.webhooks import Registration

logger = logging.getLogger(__name__)

RESCORE, RETRAIN, FULL_SCORE, SCORE, PUBLISH = "rescore", "retrain", "full_score", "score", "publish"
PRIORITY = (RESCORE, RETRAIN, FULL_SCORE, SCORE, PUBLISH)
DEBOUNCE_S = 2.0
PING_WAIT_S = 15.0
MAX_BACKOFF_S = 300.0

_ACTIVE: Runner | None = None


def scheduled(kind: str) -> None:
    """What the persistent scheduler calls (by reference, so jobs survive restarts): enqueue only."""
    if _ACTIVE is not None:
        _ACTIVE.queue.put(kind)


@dataclass
class WorkItem:
    kind: str
    record_ids: set[str] | None = None  # server ids (a webhook's records); None: every record the job would consider
    not_before: float = 0.0
    attempts: int = 0


class WorkQueue:
    """At most one pending item per kind; a new request merges into it."""

    def __init__(self):
        self._items: dict[str, WorkItem] = {}
        self._changed = threading.Condition()

    def put(self, kind: str, record_ids: Iterable[str] | None = None, *, delay: float = 0.0,
            attempts: int = 0) -> None:
        with self._changed:
            due = time.monotonic() + delay
            item = self._items.get(kind)
            if item is None:
                self._items[kind] = WorkItem(kind, set(record_ids) if record_ids is not None else None, due, attempts)
            else:
                item.record_ids = None if item.record_ids is None or record_ids is None else (
                    item.record_ids | set(record_ids))
                item.not_before = max(item.not_before, due)
                item.attempts = max(item.attempts, attempts)
            self._changed.notify_all()

    def get(self, timeout: float) -> WorkItem | None:
        """The most urgent due item, waiting up to ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                due = [self._items[k] for k in PRIORITY if k in self._items and self._items[k].not_before <= now]
                if due:
                    return self._items.pop(due[0].kind)
                if now >= deadline:
                    return None
                soonest = min((i.not_before for i in self._items.values()), default=deadline)
                self._changed.wait(max(0.01, min(deadline, soonest) - now))

    def depth(self) -> int:
        with self._changed:
            return len(self._items)

    def pending(self) -> list[str]:
        with self._changed:
            return sorted(self._items)


@dataclass
class Status:
    """What ``argilla-worker status`` and ``/healthz`` show (no secrets)."""

    pid: int = field(default_factory=os.getpid)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    http_url: str | None = None
    mode: str = "starting"  # webhooks | polling
    mode_reason: str = ""
    argilla: dict = field(default_factory=lambda: {"reachable": None, "error": None, "since": None})
    model: dict = field(default_factory=dict)
    queue: list[str] = field(default_factory=list)
    corrections_pending: int = 0
    jobs: dict = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    stopping: bool = False


class Runner:
    def __init__(self, settings: WorkerSettings, services: Services | None = None):
        from worker.metrics import WorkerMetrics

        self.settings = settings
        self.services = services or Services(settings)
        self.queue = WorkQueue()
        self.stop = threading.Event()
        self.status = Status()
        self.metrics = WorkerMetrics()
        self.registration: Registration | None = None  # once Argilla accepted our webhook
        self.ping_received = threading.Event()
        self.dataset_id: str | None = None
        self._status_lock = threading.Lock()
        self._signals = 0
        check_writable(self.settings.state_dir, "state_dir")  # status, counters, watermark: written all the time
        check_writable(self.settings.registry.path, "registry.path")  # retraining writes there
        self.status.corrections_pending = self._load_counter()

    # -- lifecycle ---------------------------------------------------------------------------------
    def run(self) -> int:
        global _ACTIVE
        _ACTIVE = self
        from worker.http_server import start_http_server
        from worker.plugins import plugin_names

        self._install_signal_handlers()
        self.status.plugins = plugin_names(self.services.plugins)
        self._save_status()
        server = start_http_server(self)
        self.status.http_url = f"http://{self.settings.http.host}:{server.server_address[1]}"
        scheduler = self._start_scheduler()
        try:
            self._connect()
            self.queue.put(SCORE)
            self._save_status()
            logger.info("worker running: %s mode, HTTP on %s, plugins %s", self.status.mode, self.status.http_url,
                        self.status.plugins)
            while not self.stop.is_set():
                self._notice_model_change()
                item = self.queue.get(timeout=1.0)
                if item is not None:
                    self._execute(item)
                self._save_status()
        finally:
            scheduler.shutdown(wait=False)
            self._unregister_webhook()
            server.shutdown()
            self.status.stopping = True
            self._save_status()
            _ACTIVE = None
        logger.info("worker stopped cleanly")
        return 0

    def _install_signal_handlers(self) -> None:
        def handle(signum, frame):
            self._signals += 1
            if self._signals > 1:
                logger.warning("second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            logger.info("%s: finishing the current batch, then exiting (send again to exit now)",
                        signal.Signals(signum).name)
            self.status.stopping = True
            self.stop.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _start_scheduler(self):
        from worker.scheduling import start_scheduler

        return start_scheduler(self.settings)

    def _connect(self) -> None:
        """Reach Argilla (retrying with backoff while it is unavailable, the worker stays up), then set up
        webhooks or polling. A refusal (the dataset does not fit the config, a 4xx) is raised: retrying
        cannot help, the user must change something."""
        delay = 1.0
        while not self.stop.is_set():
            try:
                self.services.ensure_dataset()
                self.services.labels()
                self.dataset_id = self.services.gateway.dataset_id()
                self._argilla_ok()
                break
            except ArgillaUnavailableError as error:
                self._argilla_down(error)
                self._save_status()  # `argilla-worker status` shows what /healthz shows
                logger.warning("connecting again in %.0f s", delay)
                self.stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        if not self.stop.is_set():
            self._setup_webhooks()
            self._refresh_model_status()

    def _setup_webhooks(self) -> None:
        from worker import webhooks

        if not self.settings.webhooks.enabled:
            return self._set_mode("polling", "webhooks disabled in the config")
        url = (self.settings.http.public_url or self.status.http_url or "").rstrip("/") + "/webhooks/argilla"
        owner = f"{self.settings.argilla.dataset} {self.settings.state_dir.resolve()}"
        try:
            self.registration = webhooks.register(self.services.gateway, url, owner)
            webhooks.ping(self.services.gateway, self.registration)
        except ArgillaGatewayError as error:
            return self._set_mode("polling", f"webhook registration failed: {error}")
        if self.ping_received.wait(PING_WAIT_S):
            return self._set_mode("webhooks", f"Argilla delivers events to {url}")
        return self._set_mode("polling", f"no ping from Argilla at {url} within {PING_WAIT_S:.0f} s (is the worker "
                                         f"reachable from Argilla? http.public_url); webhooks take over when a "
                                         f"signed delivery arrives")

    def _unregister_webhook(self) -> None:
        from worker import webhooks

        if self.registration is None:
            return
        try:
            webhooks.unregister(self.services.gateway, self.registration)
        except ArgillaGatewayError as error:
            logger.warning("could not delete the Argilla webhook %s: %s", self.registration.webhook_id, error)

    def _set_mode(self, mode: str, reason: str) -> None:
        self.status.mode, self.status.mode_reason = mode, reason
        level = logging.INFO if mode == "webhooks" else logging.WARNING
        logger.log(level, "%s mode: %s", mode, reason)

    @property
    def webhook_secret(self) -> str | None:
        """The signing secret Argilla generated for our webhook (None before registration)."""
        return self.registration.secret if self.registration is not None else None

    # -- events ------------------------------------------------------------------------------------
    def on_delivery(self, delivery) -> None:
        """A verified webhook event: rescore its record (debounced); count submitted responses."""
        if self.status.mode not in ("webhooks", "starting"):
            self._set_mode("webhooks", "a signed delivery arrived from Argilla")
        if delivery.type == "ping":
            self.ping_received.set()
            return
        if self.dataset_id is not None and delivery.dataset_id not in (None, self.dataset_id):
            return
        if delivery.type.startswith("response.") and delivery.response_status == "submitted":
            self._count_corrections(1)
        if delivery.server_id:  # read by id: the event's cost does not grow with the dataset
            self.queue.put(RESCORE, [delivery.server_id], delay=DEBOUNCE_S)
        elif delivery.record_id:  # (Argilla's record events carry the id; an event without one)
            self.queue.put(SCORE, delay=DEBOUNCE_S)

    def _count_corrections(self, count: int) -> None:
        if count <= 0:
            return
        with self._status_lock:
            self.status.corrections_pending += count
            pending = self.status.corrections_pending
            write_json_atomic(self.settings.state_dir / "counters.json", {"corrections_pending": pending})
        self.metrics.corrections_pending.set(pending)
        if pending >= self.settings.retrain.min_new_corrections:
            self.queue.put(RETRAIN)

    def _load_counter(self) -> int:
        import json

        path = self.settings.state_dir / "counters.json"
        return json.loads(path.read_text()).get("corrections_pending", 0) if path.exists() else 0

    # -- running work ------------------------------------------------------------------------------
    def _execute(self, item: WorkItem) -> None:
        started = time.perf_counter()
        logger.info("job %s started%s", item.kind, f" ({len(item.record_ids)} records)" if item.record_ids else "")
        try:
            summary = self._run_item(item)
        except ArgillaUnavailableError as error:
            self._argilla_down(error)
            delay = min(2.0 ** (item.attempts + 1), MAX_BACKOFF_S)
            logger.warning("job %s: Argilla unavailable, retrying in %.0f s", item.kind, delay)
            self.queue.put(item.kind, item.record_ids, delay=delay, attempts=item.attempts + 1)
            return self._job_result(item.kind, "retrying", str(error), started)
        except (NoModelError, DataError, ConfigError, Interrupted) as error:
            logger.warning("job %s skipped: %s", item.kind, error)
            return self._job_result(item.kind, "skipped", str(error), started)
        except WorkerError as error:
            logger.error("job %s failed: %s", item.kind, error)
            return self._job_result(item.kind, "failed", str(error), started)
        except Exception as error:  # the loop must survive anything a job does
            logger.exception("job %s failed unexpectedly", item.kind)
            return self._job_result(item.kind, "failed", f"{type(error).__name__}: {error}", started)
        self._argilla_ok()
        self._job_result(item.kind, "ok", summary, started)

    def _run_item(self, item: WorkItem) -> str:
        with self.services.lock:
            if item.kind in (SCORE, FULL_SCORE, RESCORE):
                return self._score(item)
            if item.kind == RETRAIN:
                return self._retrain()
            if item.kind == PUBLISH:
                results = publish_job(self.services)
                return "; ".join(f"{r.sink} {r.location}: {'published' if r.published else 'unchanged'}"
                                 for r in results)
        raise WorkerError(f"unknown job kind {item.kind!r}")

    def _score(self, item: WorkItem) -> str:
        def on_batch(report, scores) -> None:
            self.metrics.records_scored.inc(len(scores))
            self.metrics.records_per_second.set(report.records_per_second)

        report = score_job(self.services, full=item.kind == FULL_SCORE, stop=self.stop, on_batch=on_batch,
                           server_ids=sorted(item.record_ids) if item.record_ids else None)
        self.metrics.push_failures.inc(report.failed)
        self.metrics.records_failing.set(len(self.services.failed_pushes.of(self.services.gateway.dataset_key)))
        if self.status.mode != "webhooks":
            self._count_corrections(report.new_submissions)
        return report.summary()

    def _retrain(self) -> str:
        with self._status_lock:
            counted = self.status.corrections_pending
        outcome = train_job(self.services, stop=self.stop)
        with self._status_lock:
            self.status.corrections_pending = max(0, self.status.corrections_pending - counted)
            write_json_atomic(self.settings.state_dir / "counters.json",
                              {"corrections_pending": self.status.corrections_pending})
        self.metrics.corrections_pending.set(self.status.corrections_pending)
        self._refresh_model_status()
        if outcome.promoted:
            self.queue.put(FULL_SCORE)
            if self.settings.publish.after_promotion and self.services.publishers():
                self.queue.put(PUBLISH)
        state = "promoted" if outcome.promoted else "rejected"
        return f"model {outcome.model.version} {state}: {outcome.decision.reason}"

    # -- status --------------------------------------------------------------------------------------
    def _job_result(self, kind: str, state: str, summary: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.status.jobs[kind] = {"status": state, "summary": summary, "seconds": round(seconds, 2),
                                  "at": datetime.now(UTC).isoformat(timespec="seconds")}
        self.metrics.job_result(kind, state == "ok", seconds)
        logger.info("job %s %s (ran %.1f s): %s", kind, state, seconds, summary)

    def _argilla_ok(self) -> None:
        if self.status.argilla.get("reachable") is not True:
            logger.info("Argilla reachable at %s", self.settings.argilla.api_url)
        self.status.argilla = {"reachable": True, "error": None, "since": utc_now()}
        self.metrics.argilla_up.set(1)

    def _argilla_down(self, error: Exception) -> None:
        if self.status.argilla.get("reachable") is not False:
            self.status.argilla = {"reachable": False, "error": str(error)[:300], "since": utc_now()}
            logger.error("Argilla unreachable at %s: %s", self.settings.argilla.api_url, error)
        self.metrics.argilla_up.set(0)

    def _notice_model_change(self) -> None:
        """A version promoted or rolled back outside the loop (``argilla-worker models promote / rollback``)
        becomes the model the worker reports and scores with: every record is rescored."""
        version = self.services.registry.current_version()  # every loop turn: the link only
        if version == self.status.model.get("version"):
            return
        logger.info("the current model changed to %s (was %s): rescoring every record", version,
                    self.status.model.get("version"))
        self._refresh_model_status()
        if version is not None:
            self.queue.put(FULL_SCORE)

    def _refresh_model_status(self) -> None:
        current = self.services.registry.current()
        if current is None:
            self.status.model = {}
            return
        validation = current.metrics.get("validation", {})
        self.status.model = {"version": current.version, "macro_f1": validation.get("macro_f1"),
                             "ece_deterministic": validation.get("ece_deterministic"),
                             "ece_mc": validation.get("ece_mc")}
        self.metrics.set_model(current.version, validation)

    def _save_status(self) -> None:
        self.status.queue = self.queue.pending()
        self.metrics.queue_depth.set(len(self.status.queue))
        with self._status_lock:
            write_json_atomic(self.settings.state_dir / "status.json", self.status.__dict__)
