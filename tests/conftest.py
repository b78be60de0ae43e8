"""Fixtures on real services: the project's Kafka broker and PostgreSQL cluster.

`make test` starts both; run alone, pytest starts them itself through the same devstack code.
Each test gets its own topics, consumer group and PostgreSQL database, so tests never see
each other's messages or rows.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine

from connectors.db.engine import make_engine
from connectors.db.migrate import upgrade
from connectors.db.writer import count_rows
from pipeline.devstack import kafka as devkafka
from pipeline.devstack import postgres as devpg
from pipeline.settings import REPO_ROOT, Settings

TEST_HOME = Path(os.environ.get("FINSENT_HOME", REPO_ROOT / ".finsent-test"))
KAFKA = os.environ.get("FINSENT_TEST_KAFKA", "127.0.0.1:19092")
PG_PORT = int(os.environ.get("FINSENT_TEST_PG_PORT", "55432"))
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
FINSENT = str(Path(sys.executable).with_name("finsent"))


@pytest.fixture(scope="session")
def kafka_broker() -> devkafka.BrokerConfig:
    """The broker's configuration (the fault tests stop and start it)."""
    port = int(KAFKA.rsplit(":", 1)[1])
    config = devkafka.BrokerConfig(
        data_dir=TEST_HOME / "kafka", cache_dir=Settings().cache_dir, port=port, controller_port=port + 1
    )
    if not devkafka.is_ready(KAFKA):
        devkafka.start(config)
    return config


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: devkafka.BrokerConfig) -> str:
    return KAFKA


@pytest.fixture(scope="session")
def pg_server() -> devpg.PostgresConfig:
    config = devpg.PostgresConfig(data_dir=devpg.default_data_dir(TEST_HOME, PG_PORT), port=PG_PORT)
    devpg.start(config)
    return config


@pytest.fixture
def pg_url(pg_server: devpg.PostgresConfig) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = devpg.create_database(pg_server, name)
    upgrade(url)
    yield url
    devpg.drop_database(pg_server, name)


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'finsent.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """A migrated database of each kind, for what must hold on SQLite and PostgreSQL alike."""
    return engine_for(request, request.param)


def engine_for(request: pytest.FixtureRequest, kind: str) -> Engine:
    url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "pg_url")
    return make_engine(url)


def _data_dir() -> Path:
    if not (DATA_DIR / "tfn_topic" / "train.csv").exists():
        pytest.skip(f"shared data sets not found in {DATA_DIR}")
    return DATA_DIR


@pytest.fixture
def data_dir() -> Path:
    return _data_dir()


@pytest.fixture(scope="module")
def data_dir_module() -> Path:
    return _data_dir()


@dataclass
class Stack:
    """Settings of one test's pipeline: its own topics, group and database."""

    kafka: str
    database_url: str
    home: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    overrides: dict[str, object] = field(default_factory=dict)

    def settings(self) -> Settings:
        return Settings(
            home=self.home,
            kafka_bootstrap=self.kafka,
            database_url=self.database_url,
            kafka_session_timeout_s=6,
            kafka_heartbeat_interval_s=1,
            batch_within_s=0.3,
            log_format="json",
            log_level="INFO",
            # Plumbing tests use the constant stand-in; model tests override it with "model".
            **{"classifier": "standin", **self.overrides},  # type: ignore[arg-type]
        ).isolated(f"t{self.run_id}")

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings().to_env()}

    def finsent(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FINSENT, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, (
            f"finsent {' '.join(args)} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        )
        return result


class WorkerProcess:
    """`finsent worker` as a real OS process, so tests can SIGKILL it like a crash would."""

    def __init__(self, stack: Stack, log_path: Path, chaos: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - kept open for the process's life
        # With `chaos`, the same worker runs with a misbehaving stand-in model (tests/chaos_worker).
        command = [sys.executable, "-m", "tests.chaos_worker"] if chaos is not None else [FINSENT, "worker"]
        self.proc = subprocess.Popen(
            command,
            env={**stack.env, **(chaos or {})},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def batch_logs(self) -> list[dict[str, object]]:
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"batch stored"' in line:
                entries.append(json.loads(line))
        return entries


@pytest.fixture
def stack(kafka_bootstrap: str, pg_url: str, tmp_path: Path) -> Stack:
    return Stack(kafka=kafka_bootstrap, database_url=pg_url, home=tmp_path / "home")


@pytest.fixture
def workers(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(chaos: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(stack, tmp_path / f"worker-{len(started)}.log", chaos)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def free_port() -> int:
    """A TCP port nothing listens on now (for servers a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def counts(stack: Stack) -> dict[str, int]:
    engine = make_engine(stack.database_url)
    try:
        return count_rows(engine)
    finally:
        engine.dispose()


def wait_stored(stack: Stack, expected: int, timeout: float = 240) -> dict[str, int]:
    """Wait until `expected` messages are each an article or a dead letter; return the counts."""

    def accounted() -> bool:
        now = counts(stack)
        return now["articles"] + now["dlq_records"] >= expected

    wait_for(accounted, timeout, f"{expected} items accounted for")
    return counts(stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `heavy` tests first, in their collected order otherwise: xdist hands tests out in this
    order, and a long test handed out last kept one worker busy minutes after the other ran out
    of tests (scripts/pytest-phases.sh)."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
