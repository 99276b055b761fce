"""The long-running worker: one queue of work, one place that runs it (the shape of rq's worker).

Schedules (APScheduler, SQLite job store) and webhook events only *enqueue* work; :meth:`Runner.work`
takes one item at a time and runs it, so model work never overlaps. Pending items of the same kind
merge (a burst of webhook events becomes one rescore of the records they name, after a short
debounce). ``work(burst=True)`` drains the queue and returns (no schedule): tests run the loop
in-process. Signals: the first SIGTERM/SIGINT lets the current batch finish and exits 0; a second
one exits immediately.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from worker.coldstart import RANK_PROPERTY
from worker.config import WorkerSettings
from worker.constants import TEST_SET_PROPERTY
from worker.duplicates import text_key
from worker.errors import (
    ArgillaGatewayError,
    ArgillaUnavailableError,
    ConfigError,
    DataError,
    DatasetReplacedError,
    Interrupted,
    NoModelError,
    NothingNewError,
    WorkerError,
)
from worker.files import ServiceLock
from worker.jobs import (
    cold_start_job,
    copies_job,
    measure_job,
    publish_job,
    ranks_first_batch_itself,
    score_job,
    train_job,
)
from worker.memory import return_freed_memory
from worker.registry import check_writable
from worker.services import Services
from worker.status import CorrectionCounter, JobState, Mode, Status, StatusBook
from worker.work_queue import JobKind, WorkItem, WorkQueue

OWN_LABELS_PAGE = 100  # records read before the first model to tell a dataset that came with labels of its own

if TYPE_CHECKING:
    from worker.metrics import WorkerMetrics
    from worker.webhooks import Delivery, Subscription

logger = logging.getLogger(__name__)

DEBOUNCE_S = 2.0
MEASURE_DEBOUNCE_S = 30.0  # a measure on the test set waits for a reviewer's next answers (each one postpones it)
PING_WAIT_S = 15.0
MAX_BACKOFF_S = 300.0
# a score run over every record (hours at 10^6 on a CPU) pauses for more urgent work — a rescore of the records just
# answered, a retrain, a measure — once it has run this long, and goes on from its checkpoint after it
PAUSE_AFTER_S = 20.0
PROGRESS_SAVE_S = 10.0  # a score run's progress reaches status.json this often
SCORING_JOBS = (JobKind.SCORE, JobKind.FULL_SCORE, JobKind.RESCORE)


def scheduled(kind: str) -> None:
    """The persistent schedule's job function, stored by reference (``worker.runner:scheduled``) so that
    jobs survive restarts. It does nothing itself: the runner's listener, registered with the scheduler
    it started (:func:`worker.scheduling.start_scheduler`), enqueues the work when a job comes due."""


class Runner:
    def __init__(self, settings: WorkerSettings, services: Services | None = None):
        self.settings = settings
        self.services = services or Services(settings)
        self.queue = WorkQueue()
        self.stop = threading.Event()
        self.book = StatusBook(settings.state_dir / "status.json", settings.argilla.api_url)
        self.subscription: Subscription | None = None  # our webhook on Argilla, once set up
        self.dataset_id: str | None = None
        self.dataset_key: str | None = None  # the bound dataset's key in the state directory
        self._signals = 0
        check_writable(self.settings.state_dir, "state_dir")  # status, counters, watermark: written all the time
        check_writable(self.settings.registry.path, "registry.path")  # retraining writes there
        self.corrections = CorrectionCounter(self.settings.state_dir / "counters.json")
        self._first_model_at = 0  # before the first model: reviewed records a training is tried at (once failed)
        self._first_model_tried = 0  # the reviewed-record count the last first-model training was started at
        self._retrain_at = 0  # pending corrections a triggered retrain waits for after one failed
        self._book_corrections(self.corrections.pending)
        self._retraining = False  # a retrain is running: corrections counted now ask for the next one at its end
        self._first_batch: str | None = None  # "asked": the cold start queued by this process; "ranked": on the dataset
        self._own_labels_looked = False  # a first page was read for labels the records carry (once a process)

    @property
    def status(self) -> Status:
        return self.book.status

    @property
    def metrics(self) -> WorkerMetrics:
        return self.book.metrics

    # -- the loop ----------------------------------------------------------------------------------
    def work(self, *, burst: bool = False) -> int:
        """Connect, then run queued work until stopped (exit status 0). With ``burst``: no schedule; return
        once nothing is pending but retries waiting out a backoff, or at once (status 1) when Argilla cannot
        be reached."""
        with self._directories_claimed(), self._running(schedule=not burst):
            if not self._connect(retry=not burst):
                return 0 if self.stop.is_set() else 1  # stopped while connecting: a clean stop
            self.queue.put(JobKind.SCORE)
            self._resume_retrain()
            self._save_status()
            logger.info("worker running: %s mode, HTTP on %s, plugins %s", self.status.mode, self.status.http_url,
                        self.status.plugins)
            while not self.stop.is_set():
                self._notice_model_change()
                item = self.queue.get(timeout=1.0)
                if item is not None:
                    self._execute(item)
                self.services.release_idle_ray()  # a joined Ray cluster is left once its actors idle
                self._save_status()
                if burst and self.queue.drained():
                    break
        logger.info("worker stopped cleanly")
        return 0

    def run(self) -> int:
        """Run until stopped (``argilla-worker run``)."""
        return self.work()

    @contextlib.contextmanager
    def _directories_claimed(self) -> Iterator[None]:
        """This service's claims on its state_dir and registry.path, taken before anything is written there (see
        ServiceLock)."""
        argilla = self.settings.argilla
        owner = f"{argilla.workspace}/{argilla.dataset}" + (f" question {argilla.question!r}" if argilla.question
                                                            else "")
        claims = [ServiceLock(self.settings.state_dir, owner, "state_dir")]
        if self.settings.registry.path.resolve() != self.settings.state_dir.resolve():
            claims.append(ServiceLock(self.settings.registry.path, owner, "registry.path"))
        with contextlib.ExitStack() as held:
            for claim in claims:
                claim.acquire()
                held.callback(claim.release)
            yield

    @contextlib.contextmanager
    def _running(self, *, schedule: bool) -> Iterator[None]:
        """Signal handlers, the HTTP server and (``schedule``) the scheduler for the loop's lifetime; on the way
        out the webhook is deleted and every handler restored."""
        from worker.http_server import start_http_server
        from worker.plugins import plugin_names

        self.status.plugins = plugin_names(self.services.plugins)
        server = start_http_server(self)  # before anything is changed: a port in use is one line, nothing to undo
        previous = self._install_signal_handlers()
        self._save_status()
        self.status.http_url = f"http://{self.settings.http.host}:{server.server_address[1]}"
        scheduler = self._start_scheduler() if schedule else None
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if self.subscription is not None:
                self.subscription.stop()
            server.shutdown()
            self.services.close_ray_scorer()
            self.status.stopping = True
            self._save_status()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_signal_handlers(self) -> dict:
        """First SIGTERM/SIGINT: warm shutdown; second: exit now. Answers the handlers they replace."""
        def handle(signum, frame):
            self._signals += 1
            if self._signals > 1:
                logger.warning("second %s: exiting now", signal.Signals(signum).name)
                os._exit(1)
            logger.info("%s: finishing the current batch, then exiting (send again to exit now)",
                        signal.Signals(signum).name)
            self.status.stopping = True
            self.stop.set()

        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may install handlers (an in-process test may run elsewhere)
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
        for signum in previous:
            signal.signal(signum, handle)
        return previous

    def _start_scheduler(self):
        from worker.scheduling import start_scheduler

        return start_scheduler(self.settings, on_due=self.queue.put)

    def _connect(self, *, retry: bool = True) -> bool:
        """Reach Argilla (``retry``: with backoff while it is unavailable, the worker stays up), then set up
        webhooks or polling; False when it was not reached. A refusal (the dataset does not fit the config,
        a 4xx) is raised: retrying cannot help, the user must change something."""
        delay = 1.0
        while not self.stop.is_set():
            try:
                self.services.ensure_dataset()
                self.services.labels()
                self._note_binding()
                self.book.argilla_ok()
                break
            except ArgillaUnavailableError as error:
                self.book.argilla_down(error)
                self._save_status()  # `argilla-worker status` shows what /healthz shows
                if not retry:
                    return False
                logger.warning("connecting again in %.0f s", delay)
                self.stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        if self.stop.is_set():
            return False
        self._setup_webhooks()
        self.book.set_model(self.services.registry.current())
        self.book.set_annotators(self.services.crowds.latest(self.services.gateway.dataset_key))
        return True

    def _setup_webhooks(self) -> None:
        from worker.webhooks import Subscription

        if not self.settings.webhooks.enabled:
            return self.book.set_mode(Mode.POLLING, "webhooks disabled in the config")
        url = (self.settings.http.public_url or self.status.http_url or "").rstrip("/") + "/webhooks/argilla"
        owner = f"{self.settings.argilla.dataset} {self.settings.state_dir.resolve()}"
        self.subscription = Subscription(self.services.gateway, url, owner)
        problem = self.subscription.start(PING_WAIT_S)
        if problem is None:
            return self.book.set_mode(Mode.WEBHOOKS, f"Argilla delivers events to {url}")
        return self.book.set_mode(Mode.POLLING, problem)

    @property
    def webhook_secret(self) -> str | None:
        """The signing secret of our webhook (None before registration)."""
        return self.subscription.secret if self.subscription is not None else None

    # -- events ------------------------------------------------------------------------------------
    def on_delivery(self, delivery: Delivery) -> None:
        """A verified webhook event: rescore its record (debounced); count submitted responses."""
        if self.status.mode not in (Mode.WEBHOOKS, Mode.STARTING):
            self.book.set_mode(Mode.WEBHOOKS, "a signed delivery arrived from Argilla")
        if delivery.type == "ping":
            if self.subscription is not None:
                self.subscription.ping_received.set()
            return
        if self.dataset_id is not None and delivery.dataset_id not in (None, self.dataset_id):
            return
        if delivery.type.startswith("response.") and delivery.response_status == "submitted":
            if self._is_test_answer(delivery):
                self._test_answered()
            else:
                self._count_corrections(1)
        if delivery.server_id:  # read by id: the event's cost does not grow with the dataset
            self.queue.put(JobKind.RESCORE, [delivery.server_id], delay=DEBOUNCE_S)
        elif delivery.record_id:  # (Argilla's record events carry the id; an event without one)
            self.queue.put(JobKind.SCORE, delay=DEBOUNCE_S)

    def _is_test_answer(self, delivery: Delivery) -> bool:
        """Whether the delivery's record is one of the stored test set's (read from the state directory: `test-set`
        may have drawn it since the start) or carries a test record's text (by the field values the event carries,
        read as the model reads them): a copy of a test text is not trained on, so its answer is no correction.
        O(1): one hash of the text."""
        if self.dataset_key is None:
            return False
        test_set = self.services.test_sets.get(self.dataset_key)
        if test_set is None:
            return False
        if delivery.server_id is not None and delivery.server_id in test_set.server_ids:
            return True
        if not delivery.fields or not test_set.keys:
            return False
        text, text_pair = self.services.gateway.binding.model_input(delivery.fields)
        return isinstance(text, str) and text_key(text, text_pair) in test_set.keys

    def _test_answered(self) -> None:
        """A test record's answer teaches no model (it is never trained on), so it is not a correction toward
        ``retrain.min_new_corrections``; it asks for the current model to be measured on the test set again. With
        no model yet (none, or the first still training) the first promotion asks for it (:meth:`_retrain`): the
        training measured the answers it read when it started, not those that came while it trained."""
        if self.services.registry.current_version() is not None:
            self.queue.put(JobKind.MEASURE, delay=MEASURE_DEBOUNCE_S)

    def _count_corrections(self, count: int) -> None:
        if count <= 0:
            return
        pending = self.corrections.add(count)
        self._book_corrections(pending)
        if self._retraining or self.services.registry.current_version() is None:
            return  # asked for when the running retrain ends; the first model by the scoring jobs' count
        self._retrain_if_enough(pending)

    def _resume_retrain(self) -> None:
        """At the start: corrections counted before a stop (a retrain it cut short — a deploy, a restart) that are
        enough ask for the retrain now, not once the next correction comes."""
        if self.services.registry.current_version() is not None and self.corrections.pending:
            logger.info("%d corrections counted before the last stop are not trained on yet",
                        self.corrections.pending)
            self._retrain_if_enough(self.corrections.pending)

    def _retrain_if_enough(self, pending: int) -> None:
        """Ask for a retrain once ``pending`` corrections are enough; debounced like the rescores of the records
        they came with, so those (queued first) are rescored before the retrain holds the runner for minutes."""
        if pending >= self._retrain_threshold():
            self.queue.put(JobKind.RETRAIN, delay=DEBOUNCE_S)

    def _retrain_threshold(self) -> int:
        """The pending corrections that ask for a retrain: ``retrain.min_new_corrections``, more after a retrain
        that found too few labels."""
        return max(self.settings.retrain.min_new_corrections, self._retrain_at)

    def _book_corrections(self, pending: int) -> None:
        """``status`` shows the corrections pending and, with a model to retrain, how many start the next retrain."""
        has_model = self.services.registry.current_version() is not None
        self.book.set_corrections(pending, self._retrain_threshold() if has_model else 0)

    def _consume_corrections(self, counted: int) -> None:
        """The ``counted`` corrections a retrain saw are spent; enough that came meanwhile ask for the next one."""
        pending = self.corrections.consume(counted)
        self._book_corrections(pending)
        if self.services.registry.current_version() is not None:
            self._retrain_if_enough(pending)

    # -- running work ------------------------------------------------------------------------------
    def _execute(self, item: WorkItem) -> None:
        """Run one job (``status`` shows it while it runs), then give back to the system the memory it freed (see
        :mod:`worker.memory`): a worker that once scored every record would otherwise stay at that run's peak."""
        try:
            self._execute_item(item)
        finally:
            self.book.set_running(None)
            return_freed_memory(after=f"job {item.kind}")

    def _execute_item(self, item: WorkItem) -> None:
        started = time.perf_counter()
        # an incremental score runs every few minutes, mostly on nothing: its start is a debug line (its outcome is
        # logged when it differs from the last one); other jobs say when they start
        logger.log(logging.DEBUG if item.kind == JobKind.SCORE else logging.INFO, "job %s started%s", item.kind,
                   f" ({len(item.record_ids)} records)" if item.record_ids else "")
        self.book.set_running(item.kind)
        self._save_status()
        try:
            summary = self._run_item(item)
        except DatasetReplacedError as error:
            return self._on_dataset_replaced(item, error, started)
        except ArgillaUnavailableError as error:
            self.book.argilla_down(error)
            delay = min(2.0 ** (item.attempts + 1), MAX_BACKOFF_S)
            logger.warning("job %s: Argilla unavailable, retrying in %.0f s", item.kind, delay)
            self.queue.put(item.kind, item.record_ids, delay=delay, attempts=item.attempts + 1)
            return self.book.job_result(item.kind, JobState.RETRYING, str(error), started)
        except NoModelError as error:  # a state the worker waits out (annotations to come), not a fault: logged below
            return self.book.job_result(item.kind, JobState.SKIPPED, str(error), started)
        except (DataError, ConfigError, Interrupted) as error:
            logger.warning("job %s skipped: %s", item.kind, error)
            return self.book.job_result(item.kind, JobState.SKIPPED, str(error), started)
        except WorkerError as error:
            logger.error("job %s failed: %s", item.kind, error)
            return self.book.job_result(item.kind, JobState.FAILED, str(error), started)
        except Exception as error:  # the loop must survive anything a job does
            logger.exception("job %s failed unexpectedly", item.kind)
            return self.book.job_result(item.kind, JobState.FAILED, f"{type(error).__name__}: {error}", started)
        self.book.argilla_ok()
        if self.dataset_key is not None:  # a training, a copies or publish job estimates the crowd anew
            self.book.set_annotators(self.services.crowds.latest(self.dataset_key))
        self.book.job_result(item.kind, JobState.OK, summary, started)
        if self.dataset_id is None:  # bound anew by this job (after the dataset was replaced)
            self._note_binding()

    def _on_dataset_replaced(self, item: WorkItem, error: DatasetReplacedError, started: float) -> None:
        """The dataset was deleted (perhaps created again under its name) while the worker ran: forget what was kept
        about its records and run the job again (a record list names records of the gone dataset: a plain score
        instead), which binds to the dataset of that name — or says, in the status, that there is none."""
        logger.warning("job %s: %s", item.kind, error)
        self.services.forget_dataset(error.dataset_key)
        self.dataset_id = self.dataset_key = None  # until bound again: deliveries are not filtered by a gone id
        kind = JobKind.SCORE if item.record_ids else item.kind
        self.queue.put(kind, attempts=item.attempts)  # not a backoff: the next attempt binds, or finds nothing
        self.book.job_result(item.kind, JobState.RETRYING, str(error), started)

    def _note_binding(self) -> None:
        """The bound dataset's id (to filter webhook deliveries) and binding (for the status)."""
        gateway = self.services.gateway
        self.dataset_id = gateway.dataset_id()
        self.dataset_key = gateway.dataset_key
        self.book.set_binding(f"{gateway.workspace}/{gateway.dataset_name}", gateway.binding)

    def _run_item(self, item: WorkItem) -> str:
        with self.services.lock:
            if item.kind in SCORING_JOBS:
                return self._score(item)
            if item.kind == JobKind.RETRAIN:
                return self._retrain()
            if item.kind == JobKind.PUBLISH:
                results = publish_job(self.services, stop=self.stop)
                return "; ".join(f"{r.sink} {r.location}: {'published' if r.published else 'unchanged'}"
                                 for r in results)
            if item.kind == JobKind.MEASURE:
                summary = measure_job(self.services)
                self.book.set_model(self.services.registry.current())
                return summary
            if item.kind == JobKind.COLD_START:
                report = cold_start_job(self.services, stop=self.stop)
                name = self.services.gateway.binding.stored_name(RANK_PROPERTY)
                return (f"first batch: {report.sent} records ranked ({len(report.failed) + len(report.rejected)} "
                        f"failed): in the Argilla UI sort by {name}, ascending, and annotate from the top")
            if item.kind == JobKind.COPIES:
                counts, report = copies_job(self.services, stop=self.stop)
                return (f"{counts.in_copies} of {counts.records} records share {counts.texts} texts, "
                        f"{counts.disagreeing_texts} with different labels; pushed {report.sent}, "
                        f"{len(report.failed) + len(report.rejected)} failed")
        raise WorkerError(f"unknown job kind {item.kind!r}")

    def _score(self, item: WorkItem) -> str:
        lost = self._webhook_lost() if item.kind == JobKind.SCORE else None
        try:
            return self._score_records(item)
        finally:
            if lost is not None and not self.stop.is_set():  # a stop deletes the webhook anyway
                self._setup_webhooks()

    def _webhook_lost(self) -> str | None:
        """Before a scheduled score run: whether the worker's webhook is still there as registered (one request; see
        :meth:`~worker.webhooks.Subscription.lost`). Without it no event arrives — nothing is rescored as it is
        reviewed, and the corrections are not counted toward a retrain — so the worker polls for this run (it
        counts the responses submitted since the records were last scored, as polling does) and registers the
        webhook again once the run is over; so too after a registration that failed (Argilla was down then).
        What was lost, else None."""
        subscription = self.subscription
        if subscription is None:
            return None
        if subscription.registration is None:
            return "never registered"
        if self.status.mode != Mode.WEBHOOKS:
            return None
        try:
            lost = subscription.lost()
        except ArgillaGatewayError as error:  # the score run meets it too, and says so
            logger.debug("could not check the Argilla webhook: %s", error)
            return None
        if lost is not None:
            logger.warning("the worker's Argilla webhook %s was %s while the worker ran: this score run counts the "
                           "responses submitted meanwhile, then the webhook is registered again",
                           subscription.registration.webhook_id, lost)
            self.book.set_mode(Mode.POLLING, f"the webhook was {lost}: registering it again after this score run")
        return lost

    def _score_records(self, item: WorkItem) -> str:
        if self.services.registry.current_version() is None:
            return self._before_first_model()

        saved = time.monotonic()

        def on_batch(report, scores) -> None:  # (the pusher thread)
            nonlocal saved
            self.metrics.records_scored.inc(len(scores))
            self.metrics.records_per_second.set(report.records_per_second)
            if time.monotonic() - saved >= PROGRESS_SAVE_S:
                self.book.set_running(item.kind, report.progress())
                self.book.save(self.queue.pending())
                saved = time.monotonic()

        report = score_job(self.services, full=item.kind == JobKind.FULL_SCORE, stop=self.stop, on_batch=on_batch,
                           server_ids=sorted(item.record_ids) if item.record_ids else None,
                           pause=self._urgent_work_waiting(item) if item.record_ids is None else None)
        if report.paused:
            self.queue.put(item.kind)  # after the urgent work: the rest, from the checkpoint a full run left
        self.metrics.push_failures.inc(report.failed)
        for stage, share in report.time_shares().items():
            self.metrics.scoring_wait_share.labels(stage).set(share)
        self.metrics.records_failing.set(len(self.services.failed_pushes.of(self.services.gateway.dataset_key)))
        if self.status.mode != Mode.WEBHOOKS:
            self._count_corrections(report.new_submissions - report.new_test_answers)
            if report.new_test_answers:
                self._test_answered()
        return report.summary()

    def _urgent_work_waiting(self, item: WorkItem) -> Callable[[], bool]:
        """What a score run of ``item`` asks after each batch: whether to pause for a more urgent item that is due,
        once it has run :data:`PAUSE_AFTER_S` (each run gets that far: annotators answering all the time cannot
        starve a full run; nor it their rescores, for hours)."""
        started = time.monotonic()

        def waiting() -> bool:
            return time.monotonic() - started >= PAUSE_AFTER_S and self.queue.waiting_before(item.kind)

        return waiting

    def _before_first_model(self) -> str:
        """No model yet, so nothing to score: count the reviewed records (one search request, whatever the
        dataset's size) and train the first model once ``training.min_annotated`` of them have a submitted
        response — a new team need not wait for ``retrain.min_new_corrections``. After a first training that
        could not start (ties, a label nobody gave yet) the next try waits for a quarter of that many more.

        Raises:
            NoModelError: too few reviewed records yet (says how many, and what else the user can do).
        """
        gateway = self.services.gateway
        tested = gateway.count_submitted(marked=TEST_SET_PROPERTY) \
            if self.services.test_sets.get(gateway.dataset_key) is not None else 0
        reviewed = gateway.count_submitted() - tested
        needed = max(self.settings.training.min_annotated, self._first_model_at)
        if reviewed >= needed:
            self._first_model_tried = reviewed
            self.queue.put(JobKind.RETRAIN)
            return f"no model yet; {reviewed} records reviewed (≥ {needed}): the first model is training next"
        carrying, read = self._own_labels_in_first_page()
        if carrying:
            self._first_model_tried = reviewed
            self.queue.put(JobKind.RETRAIN)
            return (f"no model yet; {reviewed} records reviewed, and {carrying} of the first {read} carry a label of "
                    f"their own (argilla.reference): the first model trains on those labels next")
        also = (f" (and {tested} test-set records: they measure models and train none)" if tested else "")
        raise NoModelError(
            f"no model yet: {reviewed} of {needed} records reviewed{also}; the first model trains by itself at "
            f"{needed} ({self._first_batch_note()}), or now by hand: `argilla-worker train` (it also learns the labels "
            f"the records carry) / `argilla-worker models register DIR`")

    def _own_labels_in_first_page(self) -> tuple[int, int]:
        """(how many of the dataset's first :data:`OWN_LABELS_PAGE` records carry a label of their own — an ingested
        ``original_label``, another agent's suggestion: ``argilla.reference`` — when at least
        ``training.min_annotated`` of them do, else 0; the records read). Looked at once a process, before the first
        model: a dataset that came labelled trains its first model on those labels (as `argilla-worker train` does)
        instead of waiting for reviews. One page read, O(page)."""
        if self._own_labels_looked:
            return 0, 0
        self._own_labels_looked = True
        first_page = list(itertools.islice(self.services.gateway.pull(page_size=OWN_LABELS_PAGE), OWN_LABELS_PAGE))
        carrying = sum(record.reference is not None for record in first_page)
        return (carrying if carrying >= self.settings.training.min_annotated else 0), len(first_page)

    def _first_batch_note(self) -> str:
        """How annotators get a first batch to review — queuing the cold start the first time it is wanted:
        ``cold_start.auto``, an encoder (``training.base_model``) or ``cold_start.vector`` to rank by, and no
        ``cold_start_rank`` on the dataset yet (one request, until it is there: the cold start this process queued
        says so once it has ranked)."""
        name = self.services.gateway.binding.stored_name(RANK_PROPERTY)
        if self._first_batch != "ranked" and name in self.services.gateway.metadata_property_names():
            self._first_batch = "ranked"
        if self._first_batch == "ranked":
            return f"annotate in {name} order, ascending"
        if self._first_batch == "asked":
            return f"the worker ranks a first batch: annotate in {name} order once it is there"
        if ranks_first_batch_itself(self.settings):
            self._first_batch = "asked"
            self.queue.put(JobKind.COLD_START)
            return f"the worker ranks a first batch now (cold_start.auto): annotate in {name} order once it is there"
        return f"annotate in {name} order after `argilla-worker cold-start`"

    def _retrain(self) -> str:
        """Train, gate, promote (see :func:`train_job`); the corrections counted when it started are consumed. Those
        that arrive while it trains count toward the next one, which is asked for here once they are enough — not
        by each of them while this one runs (it would then start again at once, with what this one had)."""
        counted = self.corrections.pending
        first = self.services.registry.current_version() is None
        self._retraining = True
        try:
            outcome = train_job(self.services, stop=self.stop)
        except DataError:  # too few labels yet: wait for more before pulling every record again
            if first:
                minimum = self.settings.training.min_annotated
                self._first_model_at = max(self._first_model_tried, minimum) + max(1, minimum // 4)
            else:
                self._retrain_at = counted + self.settings.retrain.min_new_corrections
                self._book_corrections(self.corrections.pending)
            raise
        except NothingNewError as repeat:  # the schedule, or corrections that changed no label: nothing to learn
            self._consume_corrections(counted)
            self.book.set_model(self.services.registry.current())  # reviewed test records may have re-measured it
            return str(repeat)
        finally:
            self._retraining = False
        self._retrain_at = 0
        self._consume_corrections(counted)
        self.book.set_model(self.services.registry.current())
        if outcome.promoted:
            self.queue.put(JobKind.FULL_SCORE)
            if first and self.dataset_key is not None and self.services.test_sets.get(self.dataset_key) is not None:
                self.queue.put(JobKind.MEASURE)  # test records answered while no model was there to measure
            if self.settings.publish.after_promotion and self.services.publishers():
                self.queue.put(JobKind.PUBLISH)
        state = "promoted" if outcome.promoted else "rejected"
        return f"model {outcome.model.version} {state}: {outcome.decision.reason}"

    # -- status --------------------------------------------------------------------------------------
    def _notice_model_change(self) -> None:
        """A version promoted or rolled back outside the loop (``argilla-worker models promote / rollback``)
        becomes the model the worker reports and scores with: every record is rescored."""
        version = self.services.registry.current_version()  # every loop turn: the link only
        if version == self.status.model.get("version"):
            return
        logger.info("the current model changed to %s (was %s): rescoring every record", version,
                    self.status.model.get("version"))
        self.book.set_model(self.services.registry.current())
        if version is not None:
            self.queue.put(JobKind.FULL_SCORE)

    def _save_status(self) -> None:
        self.book.set_scoring(self.services.scoring_summary())
        self.book.save(self.queue.pending())
