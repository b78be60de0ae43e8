"""`finsent demo` end to end on the embedded default (SQLite), against the test broker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FINSENT

pytestmark = pytest.mark.kafka


def test_demo_accounts_for_every_message_on_sqlite(
    kafka_bootstrap: str, tmp_path: Path, data_dir: Path
) -> None:
    env = {
        **os.environ,
        "FINSENT_HOME": str(tmp_path),
        "FINSENT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENT_DATA_DIR": str(data_dir),
    }
    env.pop("FINSENT_DATABASE_URL", None)
    result = subprocess.run(
        [FINSENT, "--text-logs", "demo", "--items", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "messages in:        305 (300 news items, 5 malformed)" in out
    assert "articles stored:    300" in out and "predictions stored: 600" in out
    assert "accounted for:      305 of 305" in out
    assert (tmp_path / "demo" / "finsent.db").exists()
