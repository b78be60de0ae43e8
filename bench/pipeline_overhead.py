"""Pipeline overhead: Kafka → worker → committed PostgreSQL rows, classification a constant.

Prints messages per second with the core count, and the ratio to a baseline measured in the
same run on the same topic: a bare kafka-python consumer that only reads the messages.
Run with `make bench` (starts Kafka and PostgreSQL); not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from connectors.db.writer import count_rows  # noqa: E402
from connectors.kafka_io import NewsProducer, make_producer, read_topic  # noqa: E402
from connectors.sources.files import FileSource  # noqa: E402
from pipeline.devstack import postgres as devpg  # noqa: E402
from pipeline.service.worker import declare_topics  # noqa: E402
from pipeline.settings import Settings  # noqa: E402


def baseline_consume(bootstrap: str, topic: str, max_message_bytes: int) -> float:
    """Messages per second of a bare consumer that only reads the topic."""
    began = time.perf_counter()
    count = sum(1 for _ in read_topic(bootstrap, topic, max_message_bytes))
    return count / (time.perf_counter() - began)


def main() -> None:
    # A timeout or Ctrl-C must still run the `finally` below, which stops the worker it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("BENCH_DUMP_AFTER_S", "1e9")), exit=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    home = Path(os.environ["FINSENT_HOME"])
    pg = devpg.PostgresConfig(data_dir=devpg.default_data_dir(home, 55432), port=55432)
    url = devpg.create_database(pg, f"bench_{run}")
    upgrade(url)
    settings = Settings(
        kafka_bootstrap=os.environ.get("FINSENT_TEST_KAFKA", "127.0.0.1:19092"),
        database_url=url,
        classifier="standin",
        log_level="WARNING",
        log_format="text",
    ).isolated(f"bench{run}")
    env = {**os.environ, **settings.to_env()}
    declare_topics(settings)
    data = settings.data_dir / "tfn_topic" / "train.csv"
    items = list({item.id: item for item in FileSource(data).items()}.values())  # ids unique
    batch = []
    for i in range(args.items):  # distinct ids: the data set repeated with a suffix per round
        item = items[i % len(items)]
        round_ = i // len(items)
        batch.append(item if round_ == 0 else item.model_copy(update={"id": f"{item.id}r{round_}"}))
    producer = NewsProducer(
        make_producer(settings.kafka_bootstrap, settings.kafka_max_message_bytes), settings.topic_raw
    )
    producer.publish(batch)
    producer.close()

    baseline = baseline_consume(
        settings.kafka_bootstrap, settings.topic_raw, settings.kafka_max_message_bytes
    )
    engine = make_engine(url)
    worker = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], env=env)
    try:
        while count_rows(engine)["articles"] == 0:
            if worker.poll() is not None:
                raise SystemExit("worker exited before storing anything")
            time.sleep(0.05)
        began, first = time.perf_counter(), count_rows(engine)["articles"]
        while (done := count_rows(engine)["articles"]) < len(batch):
            if worker.poll() is not None:
                raise SystemExit("worker exited early")
            time.sleep(0.2)
        elapsed = time.perf_counter() - began
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        engine.dispose()
        devpg.drop_database(pg, f"bench_{run}")
    rate = (done - first) / elapsed
    print(f"cores: {os.cpu_count()}")
    print(f"items: {len(batch)} (rate measured over {done - first} after the first commit)")
    print(f"baseline, bare kafka-python consume:      {baseline:10.0f} msg/s")
    print(f"pipeline, Kafka -> committed PG rows:     {rate:10.0f} msg/s")
    print(f"ratio pipeline / bare consume:            {rate / baseline:10.3f}")


if __name__ == "__main__":
    main()
