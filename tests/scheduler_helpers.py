"""What the scheduler process tests share: a burst that fires an alert, labels that trigger a
retrain, and the environment of a `finsent scheduler` that retrains and scans every 2 s."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from connectors.db.label_store import LabelRow, upsert_labels
from models.labels import text_hash
from tests.alert_helpers import Item, store
from tests.model_helpers import sentiment_slice


def burst_and_labels(engine: Engine, data_dir: Path) -> None:
    """A burst of negative news about ACME, as it happens, and 400 human sentiment labels."""
    now = datetime.now(UTC)
    store(engine, [Item(now - timedelta(seconds=30 * i), "negative", "Legal", ["ACME"]) for i in range(12)])
    examples, _ = sentiment_slice(data_dir, train_n=400, test_n=0)
    upsert_labels(
        engine,
        [LabelRow(e.text, text_hash(e.text), e.instruction, e.label, "desk", "test") for e in examples],
    )


def scheduler_env(database_url: str, home: Path, webhook_url: str, metrics_port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "FINSENT_DATABASE_URL": database_url,
        "FINSENT_HOME": str(home),
        "FINSENT_RETRAIN_CHECK_S": "2",
        "FINSENT_RETRAIN_MIN_NEW_LABELS": "1",
        "FINSENT_RETRAIN_BASE_RECIPE": "",
        "FINSENT_RETRAIN_MODE": "heads",
        "FINSENT_HOLDOUT_SHARE": "0.3",
        "FINSENT_LOG_FORMAT": "json",
        "FINSENT_ALERT_SCAN_INTERVAL_S": "2",
        "FINSENT_SCHEDULER_METRICS_PORT": str(metrics_port),
        "FINSENT_ALERT_WEBHOOK_URL": webhook_url,
    }
