"""Tools of the fault tests: a steady stream of real items, and a watch on a process's memory."""

from __future__ import annotations

import csv
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from connectors.kafka_io import NewsProducer, make_producer
from connectors.news_item import NewsItem, make_item

log = logging.getLogger(__name__)


def real_items(data_dir: Path, n: int, run: str) -> list[NewsItem]:
    """`n` items with real headlines from the shared data sets, each with its own URL (so its own
    id: the data sets repeat some headlines, and a repeat would be one row, not two)."""
    texts: list[str] = []
    for name, column in (
        ("tfn_topic/train.csv", "text"),
        ("tfns_sentiment/train.csv", "text"),
        ("sentfin/train.csv", "Title"),
    ):
        with open(data_dir / name, newline="", encoding="utf-8") as handle:
            texts.extend(row[column] for row in csv.DictReader(handle))
    return [
        make_item(source="fault-test", title=texts[i % len(texts)], url=f"https://news.test/{run}/{i}")
        for i in range(n)
    ]


@dataclass
class SteadyProducer:
    """Publishes `items` at `rate` per second through the project's durable producer, in small
    chunks, in a thread. A chunk that Kafka did not acknowledge in time is sent again (the
    producer itself is never rebuilt): whatever it reports as `acked` Kafka holds."""

    bootstrap: str
    topic: str
    items: list[NewsItem]
    rate: float
    chunk: int = 20
    acked: int = 0
    resent_chunks: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyProducer:
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        producer = make_producer(self.bootstrap, 16 * 1024 * 1024, "fault-test")
        publisher = NewsProducer(producer, self.topic)
        began = time.monotonic()
        try:
            for start in range(0, len(self.items), self.chunk):
                if self._stop.is_set():
                    return
                due = began + start / self.rate
                time.sleep(max(0.0, due - time.monotonic()))
                chunk = self.items[start : start + self.chunk]
                while not self._stop.is_set():
                    try:
                        publisher.publish(chunk, timeout_s=30)
                        self.acked += len(chunk)
                        break
                    except Exception as exc:  # the broker is away: the same chunk again
                        self.errors.append(repr(exc)[:200])
                        self.resent_chunks += 1
        finally:
            producer.close(timeout=10)

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the producer is still sending after {timeout} s"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)


def rss_mib(pid: int) -> float:
    """Resident memory of a live process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


@dataclass
class MemoryWatch:
    """Samples a process's resident memory every `interval` s; `peak` and `peak_since(mark)`."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time, MiB)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_mib(self.pid)
            if value:
                self.samples.append((time.monotonic(), value))
            time.sleep(self.interval)

    def peak_between(self, start: float, end: float = float("inf")) -> float:
        return max((mib for at, mib in self.samples if start <= at <= end), default=0.0)

    @property
    def peak(self) -> float:
        return self.peak_between(0.0)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
