"""A real single-node Apache Kafka broker (KRaft) for the demo and the tests.

The release tarball cannot be downloaded here, so the broker is assembled from Apache Kafka's
artifacts on Maven Central: a tiny POM (shipped beside this file) lists `kafka_2.13`, and
`mvn dependency:copy-dependencies` drops the whole runtime classpath into a cache folder once.
Every step is idempotent: fetching skips a complete cache, formatting skips formatted storage,
starting skips a broker that already answers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

KAFKA_VERSION = "4.4.0"
_POM = Path(__file__).with_name("kafka-pom.xml")


class BrokerError(RuntimeError):
    """The broker could not be fetched, started or stopped; the message says why."""


@dataclass(frozen=True)
class BrokerConfig:
    """Where the broker keeps its data and which loopback ports it listens on."""

    data_dir: Path
    cache_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "lib"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"


def fetch_classpath(config: BrokerConfig) -> Path:
    """Download the broker's jars into the cache once; later calls return at once."""
    marker = config.lib_dir / ".complete"
    if marker.exists():
        return config.lib_dir
    if shutil.which("mvn") is None:
        raise BrokerError(
            "Maven (mvn) is needed to fetch Kafka from Maven Central; install it (apt-get install maven)"
        )
    staging = config.lib_dir.with_name("lib.partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        str(_POM),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        raise BrokerError(
            f"fetching Kafka {KAFKA_VERSION} from Maven Central failed:\n{result.stdout[-4000:]}"
        )
    shutil.rmtree(config.lib_dir, ignore_errors=True)
    staging.rename(config.lib_dir)
    marker.touch()
    return config.lib_dir


def _server_properties(config: BrokerConfig) -> str:
    logs = config.data_dir / "log"
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{config.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{config.port},CONTROLLER://127.0.0.1:{config.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{config.port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={logs}",
            "num.partitions=4",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # News bodies can be large and hostile ones larger: they must reach the worker so it
            # can dead-letter them with a reason instead of the producer failing silently.
            "message.max.bytes=33554432",
            "replica.fetch.max.bytes=33554432",
            "log.retention.hours=168",
            "",
        ]
    )


_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.kafkaorg.name = org.apache.kafka
logger.kafkaorg.level = WARN
"""


def _java(config: BrokerConfig, main_class: str, *args: str, heap: str = "256m") -> list[str]:
    return [
        "java",
        f"-Xms{heap}",
        f"-Xmx{heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config.data_dir / 'log4j2.properties'}",
        "-cp",
        f"{config.lib_dir}/*",
        main_class,
        *args,
    ]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def is_ready(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Ready means a metadata request succeeds, not merely that the port accepts connections."""
    from kafka import KafkaAdminClient  # deferred: importing kafka-python is slow
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _read_pid(config: BrokerConfig) -> int | None:
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(config: BrokerConfig, ready_timeout_s: float = 60.0) -> float:
    """Start the broker (fetching and formatting first if needed); return seconds until ready."""
    if _read_pid(config) is not None and is_ready(config.bootstrap):
        return 0.0
    if _port_open(config.port):
        raise BrokerError(f"port {config.port} is taken by another process; stop it or pick another port")
    fetch_classpath(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    props = config.data_dir / "server.properties"
    props.write_text(_server_properties(config))
    (config.data_dir / "log4j2.properties").write_text(_LOG4J.format(log=config.log_file))
    if not (config.data_dir / "log" / "meta.properties").exists():
        fmt = _java(
            config,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            str(uuid.uuid4()),
            "-c",
            str(props),
        )
        result = subprocess.run(fmt, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}")
    began = time.monotonic()
    with open(config.data_dir / "broker.out", "ab") as out:
        proc = subprocess.Popen(
            _java(config, "kafka.Kafka", str(props), heap=config.heap),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it, like a service
        )
    config.pid_file.write_text(str(proc.pid))
    deadline = began + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"the Kafka broker exited with {proc.returncode}:\n{_tail(config)}")
        if _port_open(config.port) and is_ready(config.bootstrap):
            return time.monotonic() - began
        time.sleep(0.3)
    raise BrokerError(f"the Kafka broker was not ready within {ready_timeout_s:.0f} s:\n{_tail(config)}")


def _tail(config: BrokerConfig, chars: int = 4000) -> str:
    texts = []
    for path in (config.data_dir / "broker.out", config.log_file):
        if path.exists():
            texts.append(path.read_text(errors="replace")[-chars:])
    return "\n".join(texts)


def stop(config: BrokerConfig, timeout_s: float = 30.0) -> bool:
    """Stop the broker cleanly (SIGTERM, then SIGKILL after the timeout); False if none ran."""
    pid = _read_pid(config)
    if pid is None:
        config.pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        _reap(pid)
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    config.pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """Collect the broker if this process started it, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
