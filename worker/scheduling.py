"""The persistent schedule (APScheduler 3.11, SQLite job store): jobs only enqueue work.

The stored jobs name a function that does nothing (``worker.runner:scheduled``: a store persists
callables by reference); when one comes due, the listener of the scheduler that :func:`start_scheduler`
started calls ``on_due`` with its job kind — an explicit reference to the runner's queue, no global.

A job whose trigger is unchanged keeps its stored next run time across restarts; a changed trigger
replaces it; a job no longer configured is removed. ``coalesce`` runs a backlog of missed runs once,
``max_instances=1`` never overlaps a job with itself, and missed runs within the grace time still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import WorkerSettings
from worker.errors import ConfigError
from worker.work_queue import JobKind

logger = logging.getLogger(__name__)

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 300}
JOB_FUNCTION = "worker.runner:scheduled"


def desired_jobs(settings: WorkerSettings) -> dict[str, object]:
    """Job id → trigger, from the config (cron strings validated here: errors name the key)."""
    jobs: dict[str, object] = {"score": IntervalTrigger(minutes=settings.scoring.interval_minutes)}
    for key, cron in (("retrain", settings.retrain.cron), ("publish", settings.publish.cron),
                      ("copies", settings.copies.cron)):
        if cron:
            try:
                jobs[key] = CronTrigger.from_crontab(cron, timezone="UTC")
            except ValueError as error:
                raise ConfigError(f"{key}.cron = {cron!r}: {error}") from None
    return jobs


def job_store_url(settings: WorkerSettings) -> str:
    return f"sqlite:///{settings.state_dir / 'jobs.sqlite'}"


def start_scheduler(settings: WorkerSettings, on_due: Callable[[JobKind], object]) -> BackgroundScheduler:
    """Start the configured schedule; ``on_due(kind)`` is called (from the scheduler's thread) each time a
    job comes due."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(url=job_store_url(settings))},
                                    job_defaults=JOB_DEFAULTS, timezone="UTC")

    def due(event: JobSubmissionEvent) -> None:
        on_due(_kind(event.job_id))

    scheduler.add_listener(due, EVENT_JOB_SUBMITTED)
    scheduler.start(paused=True)
    wanted = desired_jobs(settings)
    for job in scheduler.get_jobs():
        if job.id not in wanted:
            logger.info("schedule: removing job %s (no longer configured)", job.id)
            job.remove()
    for job_id, trigger in wanted.items():
        existing = scheduler.get_job(job_id)
        if existing is not None and str(existing.trigger) == str(trigger):
            logger.info("schedule: %s kept (%s, next run %s)", job_id, trigger, existing.next_run_time)
            continue
        scheduler.add_job(JOB_FUNCTION, trigger=trigger, args=[str(_kind(job_id))], id=job_id,
                          name=job_id, replace_existing=True)
        logger.info("schedule: %s set to %s", job_id, trigger)
    scheduler.resume()
    return scheduler


def _kind(job_id: str) -> JobKind:
    return JobKind(job_id)  # job ids are job kinds: score, retrain, publish, copies
