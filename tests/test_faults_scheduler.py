"""The scheduler SIGKILLed while it retrains and while it delivers an alert, then restarted:
no half-registered model becomes active, and the alert is neither lost nor sent twice."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from alerts import outbox
from connectors.db.schema import JobLock
from models.registry import ModelRegistry
from tests.alert_helpers import Hooks
from tests.conftest import FINSENT, wait_for
from tests.scheduler_helpers import burst_and_labels, scheduler_env
from tests.test_faults import report

pytestmark = [pytest.mark.postgres]


def _versions(registry: ModelRegistry) -> dict[str, str]:
    return {v.version: v.status for v in registry.versions()}


def _staging(models_dir: Path) -> list[Path]:
    return [p for p in models_dir.glob(".*.pid*.*") if p.is_dir()] if models_dir.exists() else []


@pytest.mark.heavy
def test_scheduler_killed_during_retrain_and_delivery_activates_nothing_half_done_and_alerts_once(
    pg_engine: Engine, pg_url: str, tmp_path: Path, data_dir: Path
) -> None:
    hooks = Hooks()
    hooks.delay_s = 8.0  # the receiver holds the first request: the kill lands while it waits
    hooks.start()
    burst_and_labels(pg_engine, data_dir)
    home = tmp_path / "home"
    models_dir = home / "models"
    registry = ModelRegistry(models_dir, pg_engine)
    env = scheduler_env(pg_url, home, hooks.url)
    logs: list[Path] = []

    def scheduler() -> subprocess.Popen[bytes]:
        logs.append(tmp_path / f"scheduler-{len(logs)}.log")
        return subprocess.Popen(
            [FINSENT, "scheduler"], env=env, stdout=logs[-1].open("wb"), stderr=subprocess.STDOUT
        )

    def kill(proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def running(job: str) -> bool:
        with Session(pg_engine) as session:
            lock = session.get(JobLock, job)
            return lock is not None and lock.running

    last: subprocess.Popen[bytes] | None = None
    try:
        # Kill 1: the retrain is training and the webhook request is in flight.
        first = scheduler()
        wait_for(lambda: hooks.in_flight > 0 and running("retrain"), 120, "a retrain and a delivery at once")
        kill(first)
        assert _versions(registry) == {}, "nothing may be registered before training ended"
        hooks.delay_s = 0.0

        # Kill 2: the next scheduler re-runs the abandoned retrain; killed while it saves the model.
        second = scheduler()
        wait_for(lambda: bool(_staging(models_dir)), 180, "the candidate being written", interval=0.02)
        kill(second)
        killed_while_saving = [p.name for p in _staging(models_dir)]
        assert killed_while_saving, "the kill should land while the model folder is half-written"
        assert "active" not in _versions(registry).values()

        # The third one finishes the work: the leftovers are cleared, a complete model is active.
        last = scheduler()

        def decided() -> bool:
            with Session(pg_engine) as session:
                lock = session.get(JobLock, "retrain")
                return lock is not None and not lock.running and lock.finished_at is not None

        wait_for(decided, 300, "the retrain to finish after the restarts")
        wait_for(lambda: outbox.counts(pg_engine) == {"delivered": 1}, 60, "the notification to be delivered")
        versions = _versions(registry)
        active = [v for v, status in versions.items() if status == "active"]
        assert len(active) == 1, versions
        assert "candidate" not in versions.values()
        assert (models_dir / active[0] / "manifest.json").is_file()
        assert (models_dir / active[0] / "heads.safetensors").is_file()
        assert _staging(models_dir) == [], "the killed registration's staging folder must be removed"

        time.sleep(5)  # more scans: the firing alert is not sent again
        keys = [headers["Idempotency-Key"] for headers, _ in hooks.received]
        bodies = {json.loads(body)["status"] for _, body in hooks.received}
        # The request in flight at kill 1 was received, then sent again after the restart with
        # the same idempotency key: the receiver sees one alert, never a second, different one.
        assert len(set(keys)) == 1 and bodies == {"firing"}
        assert 1 <= len(keys) <= 2
        assert last.poll() is None
        text = "".join(path.read_text(errors="replace") for path in logs)
        assert '"locks_released"' in text
    finally:
        hooks.stop()
        if last is not None and last.poll() is None:
            last.send_signal(signal.SIGTERM)
            last.wait(timeout=30)
    report(
        "scheduler SIGKILLed during retrain+delivery, then during model registration",
        kills=2,
        model_versions=versions,
        active=active[0],
        staging_left_by_kill=killed_while_saving,
        webhook_requests=len(keys),
        distinct_idempotency_keys=len(set(keys)),
        alerts_lost=0,
    )
