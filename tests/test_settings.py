"""The settings object: a child process given `to_env()` reads back exactly the same settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from pipeline.settings import Settings


def test_to_env_round_trips_every_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Settings(
        home=tmp_path / "home",
        kafka_bootstrap="127.0.0.1:1,127.0.0.1:2",
        batch_within_s=0.25,
        fetch_allow_hosts=["127.0.0.1", "feeds.internal"],
        dashboard_token=SecretStr("s3cret"),
        log_format="text",
    ).isolated("run42")
    for key in list(os.environ):
        if key.startswith("FINSENT_"):
            monkeypatch.delenv(key)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    child = Settings()
    assert child.model_dump() == original.model_dump()
    assert child.dashboard_token is not None and child.dashboard_token.get_secret_value() == "s3cret"
    assert child.topic_raw == "run42.news.raw" and child.consumer_group == "run42.finsent-worker"
    assert child.database_url == f"sqlite:///{tmp_path / 'home' / 'finsent.db'}"
