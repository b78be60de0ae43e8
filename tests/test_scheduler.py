"""The scheduler: persistent jobs and next run times; two processes, one run per trigger."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from connectors.db.engine import make_engine
from connectors.db.schema import JobLock, ModelVersion
from pipeline.jobs.scheduler import build_scheduler, start
from pipeline.settings import Settings
from tests.alert_helpers import Hooks
from tests.conftest import FINSENT, wait_for
from tests.scheduler_helpers import burst_and_labels, scheduler_env
from tests.test_metrics import free_port, scrape, total


def _next_runs(settings: Settings, engine: Engine) -> dict[str, object]:
    scheduler = build_scheduler(settings, engine)
    start(scheduler, settings)
    try:
        return {job.id: job.next_run_time for job in scheduler.get_jobs()}
    finally:
        scheduler.shutdown(wait=False)


def test_jobs_and_next_run_times_survive_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=sqlite_url, retrain_check_s=3600)
    engine = make_engine(sqlite_url)
    first = _next_runs(settings, engine)
    assert set(first) == {
        "retrain-schedule",
        "retrain-labels",
        "alert-scan",
        "backfill",
        "rollup-fold",
        "housekeeping",
    }
    time.sleep(1.5)
    assert _next_runs(settings, engine) == first  # restarted: same jobs, same next run times
    changed = _next_runs(settings.model_copy(update={"retrain_check_s": 1800}), engine)
    assert changed["retrain-labels"] != first["retrain-labels"]  # a changed setting reschedules it
    assert changed["retrain-schedule"] == first["retrain-schedule"]


@pytest.mark.postgres
def test_two_schedulers_run_the_retrain_once_per_trigger_and_notify_once(
    pg_engine: Engine, pg_url: str, tmp_path: Path, data_dir: Path
) -> None:
    hooks = Hooks()
    hooks.start()
    metrics_port = free_port()
    burst_and_labels(pg_engine, data_dir)
    # The second process finds the metrics port taken: a warning, not an exit.
    env = scheduler_env(pg_url, tmp_path / "home", hooks.url, metrics_port)
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(2)]
    procs = [
        subprocess.Popen([FINSENT, "scheduler"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:

        def finished() -> bool:
            with Session(pg_engine) as session:
                lock = session.get(JobLock, "retrain")
                return lock is not None and not lock.running and lock.finished_at is not None

        wait_for(finished, 300, "the retrain job to finish")
        time.sleep(8)  # several more triggers in both processes: no new labels, no new run
        with Session(pg_engine) as session:
            versions = session.scalar(select(func.count()).select_from(ModelVersion))
            lock = session.get(JobLock, "retrain")
            assert lock is not None
            outcome = lock.last_outcome
        assert versions == 1, "the retrain ran more than once"
        assert outcome.startswith("promoted"), outcome
        assert all(p.poll() is None for p in procs)
        text = "".join(log.read_text(errors="replace") for log in logs)
        assert text.count('"retrain_triggered"') >= 1
        # the anomaly scan ran in both processes every 2 s: the one alert was sent once
        assert text.count('"alert_scan"') >= 4
        keys = [
            (json.loads(body)["alerts"][0]["key"], json.loads(body)["status"]) for _, body in hooks.received
        ]
        assert keys == [("ACME", "firing")]
        samples = scrape(metrics_port)  # one process's own counts: its runs, not the other's
        assert total(samples, "finsent_scheduler_job_runs_total", job="alert-scan", outcome="ok") >= 1
        assert total(samples, "finsent_scheduler_job_seconds_count", job="alert-scan") >= 1
    finally:
        hooks.stop()
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)
    assert [p.returncode for p in procs] == [0, 0]


def test_housekeeping_prunes_only_old_resolved_dead_letters(sqlite_url: str) -> None:

    from connectors.db.housekeeping import prune_dead_letters
    from connectors.db.schema import DeadLetter

    engine = make_engine(sqlite_url)
    old = datetime.now(UTC) - timedelta(days=40)
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        for offset, (created, resolved) in enumerate([(old, old), (old, None), (now, now)]):
            session.add(
                DeadLetter(
                    source_topic="news.raw",
                    source_partition=0,
                    source_offset=offset,
                    message_key=None,
                    reason_code="invalid_json",
                    reason="x",
                    size_bytes=1,
                    created_at=created,
                    resolved_at=resolved,
                )
            )
    assert prune_dead_letters(engine, older_than_days=30) == 1
    with Session(engine) as session:
        assert sorted(session.scalars(select(DeadLetter.source_offset))) == [1, 2]


def test_a_lock_left_by_a_dead_process_is_released_on_start(sqlite_url: str) -> None:
    from connectors.db import job_locks

    engine = make_engine(sqlite_url)
    assert job_locks.try_start(engine, "retrain", "host-a:999999", min_gap_s=0, stale_after_s=3600)
    assert not job_locks.try_start(engine, "retrain", "host-a:1", min_gap_s=0, stale_after_s=3600)
    assert job_locks.release_dead_owners(engine, "host-b", lambda pid: False) == []  # other host: not ours
    assert job_locks.release_dead_owners(engine, "host-a", lambda pid: pid != 999999) == ["retrain"]
    assert job_locks.last_started(engine, "retrain") is None  # its trigger still stands: run it again
    assert job_locks.try_start(engine, "retrain", "host-a:2", min_gap_s=0, stale_after_s=3600)


@pytest.mark.postgres
def test_schedulers_starting_together_on_a_fresh_database_both_get_the_job_table(pg_engine: Engine) -> None:
    """Without the retry, 9 of 10 such starts lost one process to a duplicate CREATE TABLE."""
    import threading

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import inspect

    from pipeline.jobs.scheduler import JOB_TABLE, create_job_table

    errors: list[BaseException] = []
    starting = threading.Barrier(4)

    def start_one() -> None:
        engine = make_engine(pg_engine.url.render_as_string(hide_password=False))
        store = SQLAlchemyJobStore(engine=engine, tablename=JOB_TABLE)
        starting.wait()
        try:
            create_job_table(store)
        except BaseException as exc:  # collected: an exception in a thread would not fail the test
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=start_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert inspect(pg_engine).has_table(JOB_TABLE)
