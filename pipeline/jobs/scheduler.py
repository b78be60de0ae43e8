"""`finsent scheduler`: retraining, the anomaly scan and housekeeping on a schedule that survives restarts.

APScheduler keeps the jobs and their next run times in the database (SQLAlchemy job store), so a
restarted scheduler continues where it stopped. Several scheduler processes may run for
availability: each may fire the same trigger, and a `job_locks` row decides which one runs it;
the same row keeps runs of one job from overlapping across processes. Triggers missed while no
scheduler ran are run once (coalesced) if they are younger than the misfire grace time.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, ProgrammingError

from alerts.rules import current_rules
from connectors.db import job_locks, rollups
from connectors.db.engine import ping_database
from connectors.db.housekeeping import Retention, apply_retention
from connectors.db.label_store import count_labels_since
from connectors.processes import pid_alive
from models.classifier import Classifier
from pipeline.jobs.alert_scan import run_alert_cycle
from pipeline.jobs.retrain import run_retrain
from pipeline.settings import Settings
from pipeline.telemetry import metrics

log = logging.getLogger(__name__)

RETRAIN_LOCK = "retrain"  # one lock for both retrain triggers: they never overlap
STALE_AFTER_S = 6 * 3600.0  # a run "running" for longer than this died with its process


@dataclass
class JobContext:
    settings: Settings
    engine: Engine
    owner: str


_context: JobContext | None = None


def _ctx() -> JobContext:
    if _context is None:
        raise RuntimeError("scheduler jobs run only inside `finsent scheduler`")
    return _context


def _guarded(
    lock_id: str,
    min_gap_s: float,
    work: Callable[[JobContext], str],
    stale_after_s: float = STALE_AFTER_S,
) -> None:
    ctx = _ctx()
    if not job_locks.try_start(ctx.engine, lock_id, ctx.owner, min_gap_s, stale_after_s):
        log.info("job skipped: another run holds it", extra={"event": "job_skipped", "job": lock_id})
        return
    outcome = "failed"
    started = time.perf_counter()
    try:
        outcome = work(ctx)
    finally:
        job_locks.finish(ctx.engine, lock_id, ctx.owner, outcome)
        metrics.JOB_SECONDS.labels(lock_id).observe(time.perf_counter() - started)
        metrics.JOB_RUNS.labels(lock_id, "failed" if outcome == "failed" else "ok").inc()


def _retrain(ctx: JobContext) -> str:
    outcome = run_retrain(ctx.settings, ctx.engine)
    log.info(
        "retrain job finished",
        extra={
            "event": "retrain_job",
            "status": outcome.status,
            "version": outcome.version,
            "reason": outcome.reason,
        },
    )
    return f"{outcome.status}: {outcome.reason}"


def retrain_on_schedule() -> None:
    _guarded(RETRAIN_LOCK, 60.0, _retrain)


def retrain_on_labels() -> None:
    ctx = _ctx()
    new = count_labels_since(ctx.engine, job_locks.last_started(ctx.engine, RETRAIN_LOCK))
    if new >= ctx.settings.retrain_min_new_labels:
        log.info("enough new labels: retraining", extra={"event": "retrain_triggered", "new_labels": new})
        _guarded(RETRAIN_LOCK, ctx.settings.retrain_check_s / 2, _retrain)


def housekeeping() -> None:
    def work(ctx: JobContext) -> str:
        settings = ctx.settings
        removed = apply_retention(
            ctx.engine,
            Retention(
                settings.dlq_retention_days,
                settings.body_retention_days,
                settings.superseded_retention_days,
                settings.raw_history_retention_days,
            ),
        )
        log.info("housekeeping", extra={"event": "housekeeping", **removed})
        return ", ".join(f"{what}: {n}" for what, n in removed.items())

    _guarded("housekeeping", 60.0, work)


def alert_scan() -> None:
    def work(ctx: JobContext) -> str:
        outcome = run_alert_cycle(ctx.settings, ctx.engine)
        return json.dumps(outcome, sort_keys=True)

    # One runner at a time across processes: two delivering the outbox at once would double-send.
    interval = _ctx().settings.alert_scan_interval_s
    _guarded("alert-scan", interval / 2, work, stale_after_s=max(600.0, 10 * interval))


_backfill_model: Callable[[], Classifier] | None = None


def backfill() -> None:
    def work(ctx: JobContext) -> str:
        global _backfill_model
        from alerts.series import live_version
        from connectors.db.schema import utcnow
        from pipeline.jobs.backfill import backfill_horizon_s, count_due, run_backfill
        from pipeline.service.runtime import ClassifierProvider, InstructionProvider, entity_recogniser

        settings = ctx.settings
        horizon = settings.backfill_horizon_s or backfill_horizon_s(current_rules(ctx.engine))
        now = utcnow()
        live = live_version(ctx.engine, now)
        # Nothing labelled by another version than the one answering live traffic: no model is
        # loaded into the scheduler (most runs; a promotion makes the next one work).
        due = count_due(ctx.engine, now - timedelta(seconds=horizon), live) if live is not None else 0
        if due == 0:
            return "nothing due"
        if _backfill_model is None:  # loaded once per process; it follows promotions by itself
            _backfill_model = ClassifierProvider.from_settings(settings, ctx.engine).current
        model = _backfill_model()
        report = run_backfill(
            ctx.engine,
            model,
            InstructionProvider(ctx.engine).current(),
            entity_recogniser(settings),
            horizon,
            items_per_s=settings.backfill_items_per_s,
            # Leaves the rest of the interval idle: the next run starts on time, not on top.
            time_budget_s=0.8 * settings.backfill_interval_s,
            now=now,
            # The count just made is the run's starting figure when it was made for the version
            # the run answers with (a full count is a scan of the window: not done twice).
            due_at_start=due if model.version == live else None,
        )
        return json.dumps(report.as_dict(), sort_keys=True)

    interval = _ctx().settings.backfill_interval_s
    _guarded("backfill", interval / 2, work)


def rollup_fold() -> None:
    def work(ctx: JobContext) -> str:
        folded = rollups.fold_all(ctx.engine)
        if folded:
            log.info("rollups folded", extra={"event": "rollup_fold", "hours": folded})
        return f"hours: {folded}"

    interval = _ctx().settings.rollup_fold_interval_s
    _guarded("rollup-fold", interval / 2, work)


def job_specs(settings: Settings) -> dict[str, tuple[Callable[[], None], BaseTrigger]]:
    return {
        "retrain-schedule": (
            retrain_on_schedule,
            CronTrigger.from_crontab(settings.retrain_cron, timezone=UTC),
        ),
        "retrain-labels": (
            retrain_on_labels,
            IntervalTrigger(seconds=settings.retrain_check_s, timezone=UTC),
        ),
        "alert-scan": (
            alert_scan,
            IntervalTrigger(seconds=settings.alert_scan_interval_s, timezone=UTC),
        ),
        "backfill": (backfill, IntervalTrigger(seconds=settings.backfill_interval_s, timezone=UTC)),
        "rollup-fold": (
            rollup_fold,
            IntervalTrigger(seconds=settings.rollup_fold_interval_s, timezone=UTC),
        ),
        "housekeeping": (housekeeping, IntervalTrigger(hours=1, timezone=UTC)),
    }


JOB_TABLE = "apscheduler_jobs"


def create_job_table(store: SQLAlchemyJobStore, attempts: int = 5) -> None:
    """The job store's table, created if missing before the scheduler starts.

    Two schedulers started together on a fresh PostgreSQL database both find no table and both
    CREATE it; the loser fails on the catalogue's unique index (pg_type) or "already exists", and
    the job store's own start() would end that process. Another attempt finds the table there."""
    for attempt in range(attempts):
        try:
            store.jobs_t.create(store.engine, checkfirst=True)
            return
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def build_scheduler(settings: Settings, engine: Engine) -> BackgroundScheduler:
    global _context
    _context = JobContext(settings, engine, f"{socket.gethostname()}:{os.getpid()}")
    store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
    create_job_table(store)
    options = {
        "jobstores": {"default": store},
        "executors": {"default": ThreadPoolExecutor(4)},
        "job_defaults": {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(settings.scheduler_misfire_grace_s),
        },
        "timezone": UTC,
    }
    return BackgroundScheduler(**options)


def sync_jobs(scheduler: BaseScheduler, settings: Settings) -> None:
    """Add missing jobs and reschedule changed ones; an unchanged job keeps its next run time."""
    for job_id, (func, trigger) in job_specs(settings).items():
        existing = scheduler.get_job(job_id)
        if existing is None:
            scheduler.add_job(func, trigger, id=job_id, name=job_id, replace_existing=True)
        elif str(existing.trigger) != str(trigger):
            existing.reschedule(trigger)


def start(scheduler: BaseScheduler, settings: Settings) -> None:
    ctx = _ctx()
    released = job_locks.release_dead_owners(ctx.engine, socket.gethostname(), pid_alive)
    if released:
        log.warning("released locks of dead processes", extra={"event": "locks_released", "jobs": released})
    scheduler.start(paused=True)
    sync_jobs(scheduler, settings)
    for job in scheduler.get_jobs():
        log.info(
            "job scheduled",
            extra={"event": "job_scheduled", "job": job.id, "next_run": str(job.next_run_time)},
        )
    scheduler.resume()


def _require_running(scheduler: BaseScheduler) -> None:
    if not scheduler.running:
        raise RuntimeError("the scheduler is not running")


def run_forever(settings: Settings, engine: Engine) -> None:
    """Until SIGTERM/SIGINT. A job running at that moment is abandoned, not awaited: its lock is
    released by the next start on this host, and a half-done retrain never activates anything."""
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    scheduler = build_scheduler(settings, engine)
    start(scheduler, settings)
    metrics.serve(
        settings.metrics_host,
        settings.scheduler_metrics_port,
        {"database": lambda: ping_database(engine), "scheduler": lambda: _require_running(scheduler)},
    )
    stop.wait()
    scheduler.shutdown(wait=False)
