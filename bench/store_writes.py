"""What the derived tables cost the worker's writes: batches through `write_batch` on PostgreSQL.

Writes batches like the worker's (256 articles, a topic and a sentiment answer each, half with a
ticker and an entity answer toward it) into a fresh database, twice per round, alternating:
with every trigger as migrated, and with the `rollup_items` triggers disabled (the write path
before migration 0011). Prints articles per second of each and their ratio. Not part of the tests.

    .venv/bin/python bench/store_writes.py --batches 30 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from connectors.db import rollup_items  # noqa: E402
from connectors.db.engine import make_engine  # noqa: E402
from connectors.db.migrate import upgrade  # noqa: E402
from connectors.db.writer import ArticleRow, EntityPredictionRow, PredictionRow, write_batch  # noqa: E402
from pipeline.devstack import postgres as devpg  # noqa: E402

BATCH = 256
SENTIMENT = {"negative": 0.2, "neutral": 0.5, "positive": 0.3}


def batch(prefix: str, start: datetime) -> list[ArticleRow]:
    rows = []
    for n in range(BATCH):
        ticker = f"T{n % 97}" if n % 2 else None
        rows.append(
            ArticleRow(
                id=f"{prefix}-{n}",
                source="bench",
                url=None,
                title=f"Headline {prefix} {n}",
                body="",
                published_at=start + timedelta(seconds=n),
                fetched_at=start,
                lang="en",
                tickers=[ticker] if ticker else [],
                predictions=[
                    PredictionRow("topic", f"topic_{n % 20}", 0.8, {f"topic_{n % 20}": 0.8}, "bench"),
                    PredictionRow("sentiment", "neutral", 0.5, SENTIMENT, "bench"),
                ],
                entity_predictions=(
                    [
                        EntityPredictionRow(
                            f"Company {ticker}",
                            "company",
                            ticker,
                            True,
                            "sentiment",
                            "neutral",
                            0.5,
                            SENTIMENT,
                            "bench",
                        )
                    ]
                    if ticker
                    else []
                ),
            )
        )
    return rows


def set_items_triggers(engine: Engine, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    with engine.begin() as conn:
        for table, name in rollup_items.trigger_names():
            conn.execute(text(f"ALTER TABLE {table} {verb} TRIGGER {name}"))


def timed_round(engine: Engine, label: str, batches: int, start: datetime) -> float:
    began = time.perf_counter()
    for b in range(batches):
        write_batch(engine, batch(f"{label}{b}", start + timedelta(minutes=b)))
    return batches * BATCH / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=55432)
    args = parser.parse_args()
    config = devpg.PostgresConfig(
        data_dir=devpg.default_data_dir(ROOT / ".finsent-test", args.port), port=args.port
    )
    devpg.start(config)
    devpg.drop_database(config, "finsent_bench_writes")
    url = devpg.create_database(config, "finsent_bench_writes")
    upgrade(url)
    engine = make_engine(url)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    write_batch(engine, batch("warm", start))  # connections and cached plans, in neither figure
    figures: dict[bool, list[float]] = {True: [], False: []}
    for r in range(args.rounds):
        for enabled in (False, True):
            set_items_triggers(engine, enabled)
            figures[enabled].append(
                timed_round(engine, f"r{r}{'on' if enabled else 'off'}", args.batches, start)
            )
    set_items_triggers(engine, True)
    engine.dispose()
    devpg.drop_database(config, "finsent_bench_writes")
    with_items, without = max(figures[True]), max(figures[False])
    print(f"# write_batch on PostgreSQL: {args.batches} batches of {BATCH} articles, best of {args.rounds}")
    print(f"without rollup_items triggers (before 0011): {without:8.0f} articles/s  {figures[False]}")
    print(f"with rollup_items triggers:                  {with_items:8.0f} articles/s  {figures[True]}")
    print(f"ratio with / without:                        {with_items / without:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
