"""`finsent alerts ...` end to end on SQLite: rules as data, a replayed scan, silences, the list."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.db.engine import make_engine
from tests.alert_helpers import Item, store
from tests.conftest import FINSENT


def _run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([FINSENT, *args], env=env, capture_output=True, text=True, timeout=120)
    if ok:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.heavy
def test_rules_silences_scan_and_list_from_the_command_line(sqlite_url: str, tmp_path: Path) -> None:
    env = {
        "FINSENT_HOME": str(tmp_path / "home"),
        "FINSENT_DATABASE_URL": sqlite_url,
        "FINSENT_LOG_FORMAT": "text",
        "FINSENT_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/unused",
        "PATH": "/usr/bin:/bin",
    }
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n"
        "  - {name: desk-acme, dimension: ticker, metric: negative_volume, bucket: 10m, baseline: 2h,\n"
        "     fire_above: 4, min_volume: 3, receivers: [webhook], keys: [ACME, BETA]}\n"
    )
    assert "stored 1 rule(s): desk-acme" in _run(env, "alerts", "rules", "add", str(rules_file)).stdout
    listing = _run(env, "alerts", "rules", "list").stdout
    assert "desk-acme" in listing and "ticker-negative-surge" in listing
    for name in ("ticker-negative-surge", "ticker-volume-spike"):
        _run(env, "alerts", "rules", "disable", name)
    assert "ticker-negative-surge        disabled" in _run(env, "alerts", "rules", "list").stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: x, dimension: ticker, metric: volume, bucket: 10m, baseline: 5m}\n")
    refused = _run(env, "alerts", "rules", "add", str(bad), ok=False)
    assert refused.returncode == 1 and "baseline must cover at least two buckets" in refused.stderr
    assert "Traceback" not in refused.stderr

    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    store(
        make_engine(sqlite_url),
        [
            Item(at - timedelta(minutes=2, seconds=i), "negative", "Legal", ["ACME", "BETA", "GAMMA"])
            for i in range(6)
        ],
    )
    _run(
        env,
        "alerts",
        "silence",
        "--match",
        "key=BETA",
        "--for",
        "1h",
        "--start",
        at.isoformat(),
        "--comment",
        "known",
    )
    silences = _run(env, "alerts", "silences", "list", "--all").stdout
    assert "key=BETA" in silences and "known" in silences
    report = json.loads(_run(env, "alerts", "scan", "--at", at.isoformat(), "--no-deliver").stdout)
    assert report["transitions"] == {"pending": 2, "firing": 2}  # ACME and BETA; GAMMA is not a key
    assert report["notifications"] == 1 and report["silenced"] == 1
    alerts = [json.loads(line) for line in _run(env, "alerts", "list", "--json").stdout.splitlines()]
    assert sorted((a["series_key"], a["state"], a["notified_state"]) for a in alerts) == [
        ("ACME", "firing", "firing"),
        ("BETA", "firing", ""),
    ]
    assert "#" in _run(env, "alerts", "list").stdout
