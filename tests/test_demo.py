"""`finsent demo` end to end on the embedded default (SQLite), against the test broker."""

from __future__ import annotations

import os
import re
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
        timeout=600,  # the first run on a machine trains the quick model (about 2 min)
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "messages in:        305 (300 news items, 5 malformed)" in out
    assert "articles stored:    300" in out and "predictions stored: 600" in out
    assert "accounted for:      305 of 305" in out
    assert (tmp_path / "demo" / "finsent.db").exists()
    # A trained model, with its held-out accuracy printed: well above always-neutral (about 0.55
    # of the sentiment posts) and the largest topic (about 0.2).
    held_out = {
        m["name"]: float(m["accuracy"])
        for m in re.finditer(r"^  (?P<name>\w+)\s+accuracy (?P<accuracy>[0-9.]+)", out, re.MULTILINE)
    }
    assert set(held_out) == {"sentiment", "topic"}, out[-2000:]
    assert held_out["sentiment"] > 0.65 and held_out["topic"] > 0.6
    # Sentiment toward each entity of a headline (SEntFiN), held out the same way.
    entity = re.search(r"^  sentiment@entity\s+accuracy (?P<accuracy>[0-9.]+)", out, re.MULTILINE)
    assert entity is not None and float(entity["accuracy"]) > 0.6, out[-2000:]
    assert "zero-shot" not in out.split("=== summary ===")[0]
